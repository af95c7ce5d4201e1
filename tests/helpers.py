"""Shared test helpers: small random models with fixed seeds."""

from __future__ import annotations

import torch

from dgmlib.energy import DBM, BernoulliRBM
from dgmlib.mcmc import AnnealingPath, annealing_path


def random_rbm(
    d: int = 5, h: int = 3, seed: int = 0, scale: float = 1.0, dtype=torch.float64
) -> BernoulliRBM:
    """A BernoulliRBM with N(0, scale^2) weights and biases drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(d, h, init_std=scale, generator=g, dtype=dtype)
    rbm.b = (torch.randn(d, generator=g, dtype=torch.float64) * scale).to(dtype)
    rbm.c = (torch.randn(h, generator=g, dtype=torch.float64) * scale).to(dtype)
    return rbm


def random_dbm(
    sizes=(3, 2, 3), seed: int = 0, scale: float = 1.0, centered: bool = False
) -> DBM:
    """A float64 DBM with N(0, scale^2) weights and biases (and offsets in (0, 1)
    when ``centered``), all drawn from ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    dbm = DBM(list(sizes), init_std=scale, generator=g, dtype=torch.float64)
    for bl in dbm.b:
        bl.copy_(scale * torch.randn(len(bl), generator=g, dtype=torch.float64))
    if centered:
        for ml in dbm.mu:
            ml.copy_(torch.rand(len(ml), generator=g, dtype=torch.float64))
    return dbm


class WithoutTransitions(AnnealingPath):
    """A broken annealing path: ``path`` with every transition the identity.

    AIS over it is plain importance sampling from the base model written as AIS: the
    weights telescope to log p*_1(x_0) - log p*_0(x_0), whatever the schedule.
    """

    def __init__(self, path: AnnealingPath):
        self.path = path
        self.log_z_base, self.device = path.log_z_base, path.device

    def sample_base(self, n, generator=None):
        return self.path.sample_base(n, generator=generator)

    def log_p_star(self, x, beta):
        return self.path.log_p_star(x, beta)

    def check_init(self, x, n):
        return self.path.check_init(x, n)

    def transition(self, x, beta, generator=None):
        return x  # the broken line: the chain never moves


def ais_without_transitions(ais):
    """A broken variant of :func:`dgmlib.mcmc.ais`: the same path (RBM, DBM, or any
    AnnealingPath) with every transition replaced by the identity
    (:class:`WithoutTransitions`); call it as ``ais`` is called.
    """

    def broken(model, *, base="uniform", **kw):
        return ais(WithoutTransitions(annealing_path(model, base=base)), **kw)

    return broken
