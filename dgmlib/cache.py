"""Train once, load afterwards: a checkpoint cache keyed by the training configuration.

    model = train_or_load("rbm-digits", {"n_hidden": 64, "epochs": 20, "profile":
    profile()},
                          build=lambda: BernoulliRBM(64, 64), train=lambda m:
                          fit_rbm(m, x, ...))

The key is a hash of the name, the configuration and the dgmlib version, so changing any
hyper-parameter trains afresh. Checkpoints are loaded with ``weights_only=True``; one
that cannot be read, or whose stored configuration differs, is reported with a warning,
moved aside (``*.corrupt``) and retrained: it is never silently used. Writes are atomic.

The folder is ``DGMLIB_CACHE_DIR/checkpoints`` (default ``~/.cache/dgmlib``);
``DGMLIB_CACHE=off`` disables loading and saving (the tests use it so they always
train).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from . import __version__

__all__ = ["CheckpointWarning", "cache_dir", "checkpoint_path", "train_or_load"]

M = TypeVar("M", bound=torch.nn.Module)
FORMAT = 1


class CheckpointWarning(UserWarning):
    """A cached checkpoint could not be used and the model was retrained."""


def cache_dir() -> Path:
    """The root of dgmlib's caches: ``DGMLIB_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/dgmlib``, else ``~/.cache/dgmlib``.
    """
    root = os.environ.get("DGMLIB_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dgmlib"


def _enabled() -> bool:
    return os.environ.get("DGMLIB_CACHE", "on").strip().lower() not in (
        "off",
        "0",
        "false",
        "no",
    )


def _canonical(config: dict) -> str:
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"))
    except TypeError as err:
        raise ValueError(
            "train_or_load needs a JSON-serialisable config (numbers, strings, "
            f"lists, dicts); {err}"
        ) from None


def checkpoint_path(name: str, config: dict) -> Path:
    """Where the checkpoint for ``name`` trained with ``config`` lives."""
    if not name or any(c in name for c in "/\\"):
        raise ValueError(
            f"checkpoint name must be non-empty with no path separators; got {name!r}"
        )
    key = hashlib.sha256(
        f"{name}|{__version__}|{_canonical(config)}".encode()
    ).hexdigest()[:16]
    return cache_dir() / "checkpoints" / f"{name}-{key}.pt"


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _try_load(model: torch.nn.Module, path: Path, config: dict) -> str | None:
    """Load ``path`` into ``model``; return None on success, else the reason it is
    unusable.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle error, disallowed type ...
        return f"it cannot be read ({type(err).__name__}: {err})"
    if (
        not isinstance(blob, dict)
        or blob.get("format") != FORMAT
        or "state_dict" not in blob
    ):
        return "it is not a dgmlib checkpoint"
    if blob.get("config") != _canonical(config):
        return "its stored configuration differs from the requested one"
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as err:
        return f"its weights do not fit the model ({err})"
    return None


def train_or_load(
    name: str, config: dict, *, build: Callable[[], M], train: Callable[[M], object]
) -> M:
    """Return a trained model: loaded from the cache when a valid checkpoint exists,
    else trained and saved.

    ``build()`` makes the untrained model; ``train(model)`` trains it in place (its
    return value is ignored). The model comes back on the device ``build`` put it on.
    """
    model = build()
    if not _enabled():
        train(model)
        return model
    path = checkpoint_path(name, config)
    if path.exists():
        device = next(
            itertools.chain(model.parameters(), model.buffers()), torch.empty(0)
        ).device
        reason = _try_load(model, path, config)
        if reason is None:
            return model.to(device)
        bad = path.with_suffix(".corrupt")
        os.replace(path, bad)
        warnings.warn(
            f"checkpoint {path} is unusable: {reason}. It was moved to {bad.name} and "
            "the model is being retrained.",
            CheckpointWarning,
            stacklevel=2,
        )
        model = build()
    train(model)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    _save_atomic(
        {
            "format": FORMAT,
            "name": name,
            "config": _canonical(config),
            "state_dict": state,
        },
        path,
    )
    return model
