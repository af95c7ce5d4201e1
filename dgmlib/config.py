"""Execution profiles, device choice and seeding.

One chapter source runs at three sizes, chosen by the environment variable
``DGMLIB_PROFILE``:

========  ==========================================  ==============================
profile   what it is for                               budget per chapter
========  ==========================================  ==============================
quick     the test suite (nbval)                       <= 60 s on 2 CPU cores
book      the rendered book, built on a CPU            <= 5 min on 2 CPU cores
gpu       Colab or any accelerator: more data, longer  <= 5 min on a T4-class GPU
========  ==========================================  ==============================

Without ``DGMLIB_PROFILE`` the profile is ``gpu`` when CUDA is available, else ``book``.
Chapters read sizes from the profile with :func:`pick`::

    n_epochs = pick(quick=2, book=20, gpu=100)
"""

from __future__ import annotations

import math
import os
import random
import time
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "PROFILES",
    "profile",
    "pick",
    "device",
    "seed_everything",
    "describe",
    "best_time",
]

PROFILES = ("quick", "book", "gpu")
T = TypeVar("T")


def profile() -> str:
    """The active profile: ``DGMLIB_PROFILE`` if set, else ``gpu`` with CUDA, else
    ``book``.
    """
    name = os.environ.get("DGMLIB_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "book"
    if name not in PROFILES:
        raise ValueError(
            f"DGMLIB_PROFILE must be one of {', '.join(PROFILES)}; got {name!r}. "
            "Unset it to choose automatically (gpu with CUDA, else book)."
        )
    return name


def pick(*, quick: T, book: T, gpu: T) -> T:
    """Return the value for the active profile, e.g.
    ``pick(quick=2, book=20, gpu=100)``.
    """
    return {"quick": quick, "book": book, "gpu": gpu}[profile()]


def device() -> torch.device:
    """The best available device: ``DGMLIB_DEVICE`` if set, else cuda, then mps, then
    cpu.
    """
    name = os.environ.get("DGMLIB_DEVICE", "").strip()
    if name:
        dev = torch.device(name)  # raises on a malformed name
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"DGMLIB_DEVICE={name!r} but CUDA is not available here. "
                "Unset DGMLIB_DEVICE or set it to 'cpu'."
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(
    seed: int, device: torch.device | str | None = None
) -> torch.Generator:
    """Seed Python, NumPy and torch once, at the top of a notebook.

    The library itself never seeds global state; its samplers take ``generator=``.
    This returns a :class:`torch.Generator` on ``device`` (default: :func:`device`)
    seeded with ``seed``, to pass to them.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    where = torch.device(device) if device is not None else _best_device()
    return torch.Generator(device=where).manual_seed(seed)


_best_device = device  # seed_everything's ``device`` argument shadows the function


def describe() -> str:
    """One line saying which profile, device and torch version are in use
    (chapters print it).
    """
    dev = device()
    threads = torch.get_num_threads()
    return (
        f"dgmlib profile={profile()!r}, device={dev.type}, torch {torch.__version__}, "
        f"{threads} CPU thread{'s' if threads != 1 else ''}"
    )


def best_time(fn, repeat: int = 3) -> float:
    """The shortest wall-clock time, in seconds, of ``repeat`` calls of ``fn()``.

    The minimum is the run least disturbed by other processes. With CUDA the device is
    synchronised before and after each call, so queued kernels are counted.
    """
    if repeat < 1:
        raise ValueError(f"best_time needs repeat >= 1; got {repeat}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    best = math.inf
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best
