"""Approximate Bayesian computation by rejection (Rubin 1984; §20.13), and the moment
matching it is contrasted with.

Notation
--------
theta ~ p(theta)                       prior, ``prior_sample(n, generator) -> (n, P)``
x ~ simulate(theta)                    a simulator with no likelihood to evaluate,
                                       ``simulate(theta, generator) -> (n, ...)``
s(x)                                   summary statistics, ``summary(x) -> (n, S)``
rho = || (s(x) - s(x_obs)) / scale ||  distance of a simulated data set from the data

Rejection ABC keeps the theta whose simulated data lie within epsilon of the observed
data (here: the closest ``quantile`` of the draws); the kept thetas are samples of
p(theta | rho < epsilon), which tends to the posterior p(theta | s(x_obs)) as epsilon
goes to 0, and equals p(theta | x_obs) when s is sufficient. Moment matching instead
*changes theta* by gradient descent until the simulator's summaries match the data's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["rejection_abc", "match_moments"]


def rejection_abc(
    simulate: Callable[[Tensor, torch.Generator | None], Tensor],
    prior_sample: Callable[[int, torch.Generator | None], Tensor],
    summary: Callable[[Tensor], Tensor],
    s_obs: Tensor,
    n_draws: int,
    *,
    quantile: float = 0.01,
    scale: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw ``n_draws`` thetas from the prior, simulate one data set each, and keep the
    ``quantile`` fraction whose summaries are closest to ``s_obs`` (S,).

    ``scale`` (S,): the distance divides each summary by it (default: the summaries'
    standard deviation over the draws, so no statistic dominates by its units).
    Returns the accepted thetas (m, P) and their distances (m,), m = ceil(quantile
    n_draws); the largest distance is the epsilon this quantile implies.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must lie in (0, 1]; got {quantile}")
    theta = prior_sample(n_draws, generator)  # (n, P)
    s = summary(simulate(theta, generator))  # (n, S)
    if s.shape[1:] != s_obs.shape:
        raise ValueError(
            f"summary gives {tuple(s.shape[1:])} statistics per data set but s_obs has "
            f"shape {tuple(s_obs.shape)}"
        )
    if scale is None:
        scale = s.std(0)
    # [maths:abc.rejection]
    rho = ((s - s_obs) / scale).norm(dim=1)  # (n,) distances to the data
    m = max(1, int(-(-quantile * n_draws // 1)))
    keep = rho.argsort()[:m]  # the closest draws: rho <= epsilon
    # [/maths:abc.rejection]
    return theta[keep], rho[keep]


def match_moments(
    simulate: Callable[[Tensor, torch.Generator | None], Tensor],
    summary: Callable[[Tensor], Tensor],
    s_obs: Tensor,
    theta0: Tensor,
    *,
    n_sim: int = 256,
    steps: int = 500,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, list[float]]:
    """Moment matching: Adam on theta (P,) to minimise || mean_j s(x_j) - s_obs ||^2
    over ``n_sim`` simulated data sets x_j ~ simulate(theta), the simulator being
    differentiable in theta (reparametrised noise). Returns theta and the losses.
    """
    theta = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    losses = []
    for _ in range(steps):
        # [maths:abc.moment_matching]
        s = summary(simulate(theta.expand(n_sim, -1), generator))  # (n_sim, S)
        loss = ((s.mean(0) - s_obs) ** 2).sum()
        # [/maths:abc.moment_matching]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return theta.detach(), losses
