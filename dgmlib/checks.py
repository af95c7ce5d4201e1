"""Input checks that models run on their arguments, with errors that say what to do.

    check_binary(v, name="v", model="BernoulliRBM")      # v must be in {0, 1}
    check_shape(v, ndim=2, last_dim=784, name="v", model="BernoulliRBM")  # (B, 784)

Both return ``None`` and raise :class:`ValueError` naming what was expected, what was
given and how to fix it. They are re-exported by :mod:`dgmlib.data`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_binary", "check_shape"]

_CHUNK = 1 << 18  # elements per chunk of check_binary (1 MiB of float32)


def check_binary(x: Tensor, name: str = "x", model: str = "this model") -> None:
    """Raise ``ValueError`` unless every entry of ``x`` is exactly 0 or 1
    (NaN fails too).

    Parameters
    ----------
    x : Tensor, any shape
        The values to check (bool, integer or floating).
    name : str
        How the message refers to ``x``, e.g. ``"v"``.
    model : str
        Who expects binary input, e.g. ``"BernoulliRBM"``.
    """
    if x.numel() == 0:
        return
    # in cache-sized chunks: no temporaries the size of the data (about twice as fast
    # on a 50,000-image training set), one host sync at the end
    x = x.detach()
    rows = x.reshape(1) if x.ndim == 0 else x  # split along dim 0: views, any strides
    per = max(1, _CHUNK * len(rows) // rows.numel())
    oks = [((c == 0) | (c == 1)).all() for c in rows.split(per)]
    if bool(torch.stack(oks).all()):
        return
    ok = (x == 0) | (x == 1)
    xf = x.double()
    lo, hi = xf.min().item(), xf.max().item()  # NaN propagates through min/max
    example = xf[~ok.detach()].flatten()[0].item()
    raise ValueError(
        f"{model} expects binary {name} in {{0,1}}; got values in [{lo:.4g}, {hi:.4g}] "
        f"(e.g. {example:.4g}). Binarize first: dgmlib.data.binarize({name})"
    )


def _describe(ndim: int, last_dim: int | None) -> str:
    """``(B, 784)`` for ndim=2, last_dim=784; ``(B, *, *)`` for ndim=3, no last_dim."""
    dims = ["B"] + ["*"] * (ndim - 1)
    if last_dim is not None and ndim >= 1:
        dims[-1] = str(last_dim)
    return "(" + ", ".join(dims) + ")"


def check_shape(
    x: Tensor,
    ndim: int,
    last_dim: int | None = None,
    name: str = "x",
    model: str = "this model",
) -> None:
    """Raise ``ValueError`` unless ``x.ndim == ndim`` and (if given)
    ``x.shape[-1] == last_dim``.

    Parameters
    ----------
    x : Tensor
        The tensor to check.
    ndim : int
        Expected number of dimensions, batch first: ``ndim=2`` means ``(B, D)``.
    last_dim : int or None
        Expected size of the last dimension (``D``); ``None`` accepts any.
    name, model : str
        How the message refers to ``x`` and to whoever expects it.
    """
    if x.ndim == ndim and (last_dim is None or x.shape[-1] == last_dim):
        return
    expected, got = _describe(ndim, last_dim), tuple(x.shape)
    hint = ""
    if x.ndim == ndim - 1 and (
        last_dim is None or (x.ndim > 0 and x.shape[-1] == last_dim)
    ):
        hint = f" Add a batch dimension: {name}.unsqueeze(0)."
    elif ndim == 2 and x.ndim > 2 and last_dim is not None and x[0].numel() == last_dim:
        hint = f" Flatten each example: {name}.reshape(len({name}), -1)."
    raise ValueError(
        f"{model} expects {name} of shape {expected}; got shape {got}.{hint}"
    )
