"""Normalizing flows for variational inference (Rezende & Mohamed 2015).

Notation
--------
p~(z) = exp(-U(z))       an unnormalised target density (energy U), log Z = log of its
integral q(z)                     the approximate posterior: a flow we can sample and
score ELBO(q) = E_q[log p~(z) - log q(z)] = log Z - KL(q || p)        (eq. 20.76, with
p~ for p(h, v))

Maximising the ELBO over q minimises the *reverse* KL divergence KL(q || p). It needs
reparametrised samples z = g(eps), eps ~ N(0, I), and their log q(z) = log N(eps) -
log|det dg/deps|; :meth:`dgmlib.flows.base.Flow.rsample_with_log_prob` returns both. A
richer q (a deeper flow) can only lower the KL; a diagonal Gaussian q is
``Flow([ElementwiseAffine(D)], D)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..train import History, fit
from .base import Flow

__all__ = ["ENERGIES", "energy_2d", "elbo", "fit_reverse_kl", "log_normaliser_2d"]


def _w1(z: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _u1(z: Tensor) -> Tensor:  # a ring with two lobes
    r = z.norm(dim=1)
    two = torch.stack(
        [-0.5 * ((z[:, 0] - 2) / 0.6) ** 2, -0.5 * ((z[:, 0] + 2) / 0.6) ** 2], 1
    )
    return 0.5 * ((r - 2) / 0.4) ** 2 - torch.logsumexp(two, 1)


def _u2(z: Tensor) -> Tensor:  # a sine wave
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2


def _u3(z: Tensor) -> Tensor:  # a sine wave that splits in two
    two = torch.stack(
        [
            -0.5 * ((z[:, 1] - _w1(z)) / 0.35) ** 2,
            -0.5 * ((z[:, 1] - _w1(z) + _w2(z)) / 0.35) ** 2,
        ],
        1,
    )
    return -torch.logsumexp(two, 1)


def _u4(z: Tensor) -> Tensor:  # two sine waves joined by a step
    two = torch.stack(
        [
            -0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2,
            -0.5 * ((z[:, 1] - _w1(z) + _w3(z)) / 0.35) ** 2,
        ],
        1,
    )
    return -torch.logsumexp(two, 1)


# Table 1 of Rezende & Mohamed (2015); U2-U4 also carry an implicit restriction of z_1
# to [-4, 4] in their figures; here a soft wall 0.5 * (|z_1| - 4)_+^2 / 0.1 keeps the
# mass finite.
ENERGIES: dict[str, Callable[[Tensor], Tensor]] = {
    "U1": _u1,
    "U2": _u2,
    "U3": _u3,
    "U4": _u4,
}


def energy_2d(name: str) -> Callable[[Tensor], Tensor]:
    """The energy U(z) of a 2-D target p~(z) = exp(-U(z)) of Rezende & Mohamed (2015),
    (B, 2) -> (B,).

    ``"U1"`` is a ring with two lobes; ``"U2"``-``"U4"`` are sine-shaped ridges, made
    normalisable by a soft wall outside |z_1| <= 4.
    """
    if name not in ENERGIES:
        raise ValueError(
            f"energy_2d: unknown target {name!r}; choose one of {sorted(ENERGIES)}"
        )
    u = ENERGIES[name]

    def energy(z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != 2:
            raise ValueError(
                f"energy {name} expects z of shape (B, 2); got {tuple(z.shape)}"
            )
        wall = 0.5 * torch.relu(z[:, 0].abs() - 4) ** 2 / 0.1 if name != "U1" else 0.0
        return u(z) + wall

    energy.__name__ = f"energy_{name}"
    return energy


def log_normaliser_2d(
    energy: Callable[[Tensor], Tensor], *, extent: float = 6.0, n: int = 601
) -> float:
    """log Z = log of the integral of exp(-U) over [-extent, extent]^2, by the midpoint
    rule on an n x n grid.
    """
    h = 2 * extent / n
    c = torch.linspace(-extent + h / 2, extent - h / 2, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(c, c, indexing="xy")
    u = energy(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))
    return float(torch.logsumexp(-u, 0)) + 2 * math.log(h)


def elbo(
    q: Flow,
    energy: Callable[[Tensor], Tensor],
    n: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte Carlo ELBO E_q[-U(z) - log q(z)] with ``n`` reparametrised samples (a 0-d
    tensor with gradients).

    ``log Z - ELBO`` is the reverse KL divergence KL(q || p), in nats.
    """
    z, log_q = q.rsample_with_log_prob(n, generator=generator)
    return (-energy(z) - log_q).mean()


def fit_reverse_kl(
    q: Flow,
    energy: Callable[[Tensor], Tensor],
    *,
    steps: int,
    n_samples: int = 256,
    lr: float = 1e-2,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Fit q to p~ = exp(-U) by maximising the ELBO with Adam (a cosine-decayed learning
    rate).

    Returns the :class:`~dgmlib.train.History` with ``"elbo"`` per step (nats).
    """
    opt = torch.optim.Adam(q.parameters(), lr=lr, foreach=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))

    def step():
        opt.zero_grad()
        value = elbo(q, energy, n_samples, generator=generator)
        (-value).backward()
        opt.step()
        sched.step()
        return {"elbo": float(value.detach())}

    return fit(step, n_steps=steps, desc="reverse KL", quiet=quiet)
