"""What the Gaussian and binomial diffusions share: argument checks and random draws
on a ``generator``'s device.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_t(t, x: Tensor, T: int) -> Tensor:
    """``t`` (an int or a (B,) integer tensor) as a (B,) long tensor in 1..T."""
    t = torch.as_tensor(t, device=x.device)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"t must hold integer steps in 1..{T}; got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(
            f"t must be an int or a (B,) tensor with B = {x.shape[0]} (the batch of "
            f"x); got shape {tuple(t.shape)}"
        )
    if bool((t < 1).any()) or bool((t > T).any()):
        raise ValueError(
            f"t must lie in 1..T = 1..{T} (t = 0 is the data itself); got values in "
            f"{int(t.min())}..{int(t.max())}"
        )
    return t.long()


def check_same(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what} must have the same shape; got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


def at(buf: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """buf[t - 1] shaped (B, 1, ..., 1) to broadcast against x (B, ...)."""
    return buf.to(x.dtype)[t - 1].reshape(-1, *([1] * (x.ndim - 1)))


def random_t(T: int, x: Tensor, generator) -> Tensor:
    """t ~ U{1..T}, (B,) on x's device."""
    where = generator.device if generator is not None else x.device
    t = torch.randint(1, T + 1, (x.shape[0],), generator=generator, device=where)
    return t.to(x.device)


def randn(shape, generator, like: Tensor) -> Tensor:
    where = generator.device if generator is not None else like.device
    z = torch.randn(shape, generator=generator, device=where, dtype=like.dtype)
    return z.to(like.device)


def rand(shape, generator, like: Tensor) -> Tensor:
    where = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=where, dtype=like.dtype)
    return u.to(like.device)


def data_shape(model, shape) -> tuple[int, ...]:
    if shape is None:
        shape = getattr(model, "data_shape", None)
    if shape is None:
        raise ValueError(
            "sample needs the shape of one example: pass shape=(D,) or give the model "
            "a data_shape attribute"
        )
    return tuple(shape)
