"""Shared test helpers: small random models with fixed seeds."""

from __future__ import annotations

import torch

from dgmlib.energy import BernoulliRBM


def random_rbm(
    d: int = 5, h: int = 3, seed: int = 0, scale: float = 1.0, dtype=torch.float64
) -> BernoulliRBM:
    """A BernoulliRBM with N(0, scale^2) weights and biases drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(d, h, init_std=scale, generator=g, dtype=dtype)
    rbm.b = (torch.randn(d, generator=g, dtype=torch.float64) * scale).to(dtype)
    rbm.c = (torch.randn(h, generator=g, dtype=torch.float64) * scale).to(dtype)
    return rbm
