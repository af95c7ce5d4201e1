"""The two data sets of Sohl-Dickstein et al. (2015), table 1."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import toy_2d

__all__ = ["heartbeat", "swiss_roll"]


def heartbeat(
    n: int, *, generator: torch.Generator, length: int = 20, period: int = 5
) -> Tensor:
    """(n, length) binary sequences with a 1 in every ``period``-th bin, starting at a
    uniformly random phase: ``period`` equiprobable sequences, so the best possible
    log-likelihood is log(1 / period) per sequence.
    """
    if length < period or period < 1:
        raise ValueError(f"need 1 <= period <= length; got {period}, {length}")
    where = generator.device
    phase = torch.randint(0, period, (n, 1), generator=generator, device=where)
    return ((torch.arange(length, device=where)[None] - phase) % period == 0).float()


def swiss_roll(
    n_train: int, n_test: int, *, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The noise-free 2-D Swiss roll (``toy_2d("swiss_roll", noise=0)``: scikit-learn's
    roll in its (x, z) plane), each coordinate standardised to zero mean and unit
    variance with the training points' statistics. Returns (train, test).
    """
    x = toy_2d("swiss_roll", n_train + n_test, generator=generator, noise=0.0)
    mu, sd = x[:n_train].mean(0), x[:n_train].std(0)
    x = (x - mu) / sd
    return x[:n_train], x[n_train:]
