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


class _TorchWithBernoulli:
    """``torch`` with ``bernoulli`` replaced: everything else is looked up on torch."""

    def __init__(self, bernoulli):
        self.bernoulli = bernoulli

    def __getattr__(self, name):
        return getattr(torch, name)


def ais_without_transitions(ais):
    """A broken variant of :func:`dgmlib.mcmc.ais`: the same weights, but every Gibbs
    transition replaced by the identity (the visible states drawn first are kept).

    It is plain importance sampling from the base model written as AIS: the weights
    telescope to log p*_1(v_0) - log p*_0(v_0), whatever the schedule. Works by handing
    the module a ``torch`` whose ``bernoulli`` returns the first visible draw (or
    ``init_v`` in reverse) every time it is asked for visible units; needs
    n_visible != n_hidden to tell the two layers' draws apart.
    """
    import sys

    ais_module = sys.modules["dgmlib.mcmc.ais"]  # the name ais is the function

    def broken(rbm, **kw):
        d = rbm.n_visible
        assert d != rbm.n_hidden, "the variant tells the layers apart by their width"
        init = kw.get("init_v") if kw.get("reverse") else None
        frozen = [None if init is None else init.to(rbm.W.dtype)]

        def bernoulli(p, generator=None):
            if p.shape[-1] != d:  # hidden units: drawn as usual, and unused
                return torch.bernoulli(p, generator=generator)
            if frozen[0] is None:  # the exact draw from the base model
                frozen[0] = torch.bernoulli(p, generator=generator)
            return frozen[0]

        saved = ais_module.torch
        ais_module.torch = _TorchWithBernoulli(bernoulli)
        try:
            return ais(rbm, **kw)
        finally:
            ais_module.torch = saved

    return broken
