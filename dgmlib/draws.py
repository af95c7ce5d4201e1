"""Bernoulli draws from 64-bit random words: the sampler every Gibbs step needs.

    x = bernoulli(p, generator)          # x_i ~ Bernoulli(p_i), a bool tensor
    bernoulli(p, g, out=buf)             # into a float buffer (the fused steps)

A draw is ``u < p`` for ``u`` uniform on a grid of 2^24 points, the grid
``torch.rand`` uses for float32. Here ``u`` comes from random 64-bit words, two
24-bit integers per word: on the two CPUs measured, 1.5 and 2.5 times as fast as
``torch.rand`` and its comparison (whose draws were a fifth of a bfloat16 RBM update),
and faster still than ``torch.bernoulli``. With ``j = u + 2^23`` uniform on
``{0, ..., 2^24 - 1}``,

    P(x = 1) = #{j : j < p 2^24 - 1/2} / 2^24 = round(p 2^24) / 2^24,

within 2^-24 of ``p`` (the threshold's float32 rounding), and exact at ``p = 0`` and
``p = 1`` (tests/test_draws.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["bernoulli", "reuse", "uniform_ints"]

BITS = 24  # the grid of u: 2^24 points, as torch.rand's float32 draws
_HALF = float(2 ** (BITS - 1))


def reuse(buffers: dict | None, key, shape, dtype, device) -> Tensor:
    """``buffers[key]`` if it has this shape, dtype and device, else a new empty
    tensor stored there (a fresh one each call when ``buffers`` is None). The fused
    training steps keep their buffers this way: fresh large tensors cost page faults.
    """
    if buffers is None:
        return torch.empty(shape, dtype=dtype, device=device)
    t = buffers.get(key)
    if t is None or t.shape != shape or t.dtype != dtype or t.device != device:
        t = buffers[key] = torch.empty(shape, dtype=dtype, device=device)
    return t


def uniform_ints(
    shape: torch.Size | tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    *,
    buffers: dict | None = None,
) -> Tensor:
    """int32 tensor of ``shape``, uniform on ``{-2^23, ..., 2^23 - 1}``: the top 24
    bits of each half of random 64-bit words. ``buffers`` (a dict the caller keeps)
    reuses the words' memory between calls of the same shape.
    """
    n = 1
    for s in shape:
        n *= s
    words = reuse(buffers, ("words", n), ((n + 1) // 2,), torch.int64, device)
    words.random_(-(2**63), None, generator=generator)  # all 64 bits uniform
    # arithmetic shift: 24 signed bits, exactly representable in float32
    return words.view(torch.int32)[:n].bitwise_right_shift_(32 - BITS).view(shape)


def bernoulli(
    p: Tensor,
    generator: torch.Generator | None = None,
    *,
    out: Tensor | None = None,
    buffers: dict | None = None,
) -> Tensor:
    """Draw ``x ~ Bernoulli(p)`` elementwise: ``u < p 2^24 - 2^23 - 1/2`` with ``u``
    from :func:`uniform_ints`. Returns a bool tensor, or writes 0/1 into ``out`` (any
    dtype, may be ``p`` itself) and returns it. ``buffers`` as in
    :func:`uniform_ints`; the draws are the same with or without it.
    """
    u = uniform_ints(p.shape, generator, p.device, buffers=buffers)
    # the threshold in float32 at least: p 2^24 would round in bfloat16
    dt = torch.promote_types(p.dtype, torch.float32)
    thr = reuse(buffers, ("thr", p.shape), p.shape, dt, p.device)
    torch.mul(p, 2.0 * _HALF, out=thr).sub_(_HALF + 0.5)
    return torch.lt(u, thr) if out is None else torch.lt(u, thr, out=out)
