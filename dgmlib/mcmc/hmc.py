"""Hamiltonian (hybrid) Monte Carlo on any differentiable log-density (Neal 1993,
2011; Deep Learning §20.5.2, where the mcRBM and mPoT sample x this way).

Notation::

    x  (n, D)  positions: n chains at once      p  (n, D)  momenta ~ N(0, I)
    U(x) = -log p*(x)                           H(x, p) = U(x) + 1/2 |p|^2

One step: draw p, run ``n_leapfrog`` leapfrog steps of size ``step_size``

    p <- p - eps/2 grad U(x);  x <- x + eps p;  p <- p - eps/2 grad U(x)

(the half steps of neighbouring iterations merged), then accept the end point with
probability min(1, exp(H(x, p) - H(x', p'))). Leapfrog is reversible and preserves
volume, so the Metropolis test makes p*(x) exactly invariant; without it the chain
samples a distorted density (it conserves a "shadow" Hamiltonian, not H).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HMCResult", "hmc", "hmc_step", "leapfrog"]


def _grad_log_p(log_p: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_p(x).sum(), x)
    return g


def leapfrog(
    log_p: Callable[[Tensor], Tensor],
    x: Tensor,
    p: Tensor,
    step_size: float,
    n_leapfrog: int,
) -> tuple[Tensor, Tensor]:
    """``n_leapfrog`` leapfrog steps of the dynamics of H = -log p*(x) + |p|^2 / 2."""
    # [maths:hmc.leapfrog]
    p = p + 0.5 * step_size * _grad_log_p(log_p, x)  # half step in p (grad U = -grad)
    for i in range(n_leapfrog):
        x = x + step_size * p  # full step in x
        last = i == n_leapfrog - 1
        p = p + (0.5 if last else 1.0) * step_size * _grad_log_p(log_p, x)
    # [/maths:hmc.leapfrog]
    return x, p


@torch.no_grad()
def hmc_step(
    log_p: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    step_size: float,
    n_leapfrog: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One HMC transition of every chain; returns (new x (n, D), accepted (n,) bool).

    ``log_p`` maps (n, D) to (n,): an unnormalised log-density (e.g. ``-F(x)``).
    """
    p = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    # [maths:hmc.step]
    x_new, p_new = leapfrog(log_p, x, p, step_size, n_leapfrog)
    h_old = -log_p(x) + 0.5 * (p**2).sum(-1)  # (n,)
    h_new = -log_p(x_new) + 0.5 * (p_new**2).sum(-1)
    u = torch.rand(h_old.shape, generator=generator, dtype=x.dtype, device=x.device)
    accept = torch.log(u) < h_old - h_new  # Metropolis: min(1, exp(H - H'))
    x = torch.where(accept[:, None], x_new, x)
    # [/maths:hmc.step]
    return x, accept


@dataclass
class HMCResult:
    """Final positions ``x`` (n, D), the acceptance rate per step ``accept_rate``
    (n_steps,), and the tuned ``step_size``.
    """

    x: Tensor
    accept_rate: Tensor
    step_size: float


def hmc(
    log_p: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    n_steps: int = 100,
    step_size: float = 0.1,
    n_leapfrog: int = 10,
    target_accept: float | None = None,
    generator: torch.Generator | None = None,
) -> HMCResult:
    """Run ``n_steps`` HMC transitions from ``x0`` (n, D), every row a chain.

    ``target_accept`` (e.g. 0.9): adapt the step size after each step, multiplying it
    by 1.02 when the acceptance rate was above the target and by 0.98 below (as
    Ranzato & Hinton 2010 did); the chain is then only approximately invariant, so
    leave it None where exactness matters (tests, AIS) or stop adapting after burn-in.
    """
    if x0.ndim != 2:
        raise ValueError(
            f"hmc expects x0 of shape (n_chains, D); got {tuple(x0.shape)}. Add a "
            "chain dimension: x0[None]"
        )
    if step_size <= 0 or n_leapfrog < 1 or n_steps < 0:
        raise ValueError(
            "hmc needs step_size > 0, n_leapfrog >= 1 and n_steps >= 0; got "
            f"{step_size}, {n_leapfrog}, {n_steps}"
        )
    x, rates = x0.detach(), []
    for _ in range(n_steps):
        x, accept = hmc_step(
            log_p, x, step_size=step_size, n_leapfrog=n_leapfrog, generator=generator
        )
        rate = float(accept.double().mean())
        rates.append(rate)
        if target_accept is not None:
            step_size *= 1.02 if rate > target_accept else 0.98
    return HMCResult(x, torch.tensor(rates, dtype=torch.float64), step_size)
