"""Block Gibbs sampling in RBMs (§20.2.2): h ~ P(h | v), then v ~ P(v | h), chains as
the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_h", "sample_v", "gibbs_step", "gibbs_chain"]


def sample_h(rbm, v: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """h ~ P(h | v), every hidden unit at once (eq. 20.14); (B, D) -> (B, H)."""
    return torch.bernoulli(rbm.p_h_given_v(v), generator=generator)


def sample_v(rbm, h: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """v ~ P(v | h), every visible unit at once (eq. 20.16); (B, H) -> (B, D)."""
    return torch.bernoulli(rbm.p_v_given_h(h), generator=generator)


@torch.no_grad()
def gibbs_step(rbm, v: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """One block-Gibbs sweep v -> h -> v'. Leaves P(v) invariant."""
    return sample_v(rbm, sample_h(rbm, v, generator=generator), generator=generator)


@torch.no_grad()
def gibbs_chain(
    rbm,
    v0: Tensor,
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    record_every: int | None = None,
    mean_field_last: bool = False,
):
    """Run ``n_steps`` block-Gibbs sweeps from ``v0`` (B, D), one chain per row.

    Returns the final state, or ``(final, frames)`` when ``record_every`` is set, with
    ``frames`` the list of states after steps 0, r, 2r, ... (step 0 is ``v0``). With
    ``mean_field_last`` the last half-step returns P(v | h) instead of a sample, which
    is what sample figures usually show.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0; got {n_steps}")
    v = v0.to(rbm.W.dtype)
    frames = [v.clone()] if record_every else None
    for t in range(1, n_steps + 1):
        h = sample_h(rbm, v, generator=generator)
        if mean_field_last and t == n_steps:
            v = rbm.p_v_given_h(h)
        else:
            v = sample_v(rbm, h, generator=generator)
        if record_every and t % record_every == 0:
            frames.append(v.clone())
    return (v, frames) if record_every else v
