"""A variational recurrent neural network (VRNN; Chung et al., 2015) and its RNN
baseline.

A sequential latent-variable model (§20.10.3 mentions VAEs for sequences): at every step
t a latent z_t is drawn from a prior that depends on the past through the RNN state
h_{t-1}, and x_t is drawn given z_t and h_{t-1}::

    prior      p(z_t | x_<t, z_<t) = N(mu_0(h_{t-1}), diag sigma_0^2(h_{t-1}))
    decoder    p(x_t | z_<=t, x_<t) = N(mu_x(phi_z(z_t), h_{t-1}), diag sigma_x^2(...))
    encoder    q(z_t | x_<=t, z_<t) = N(mu_z(phi_x(x_t), h_{t-1}), diag sigma_z^2(...))
    recurrence h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1})

The ELBO is a sum over steps of eq. 20.77 with a learned, time-varying prior:

    L = sum_t E_q [ log p(x_t | z_<=t, x_<t) - KL(q(z_t | x_<=t, z_<t) ||
    p(z_t | x_<t, z_<t)) ].

Because p(x_t | past) = integral p(z_t | past) p(x_t | z_t, past) dz_t is a continuous
mixture of Gaussians, a VRNN can model multimodal steps, which :class:`GaussianRNN`
(Chung et al.'s "RNN-Gauss": one Gaussian per step, exact log-likelihood) cannot.
:func:`telegraph_signal` makes such data, and :func:`telegraph_log_prob` gives its exact
log-likelihood (a two-state HMM).

Notation
--------
x : (B, T, D) sequences;  z_t : (B, q);  h_t : (B, H) GRU state;  all log-densities in
nats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgmlib.checks import check_shape

__all__ = [
    "VRNN",
    "GaussianRNN",
    "telegraph_signal",
    "telegraph_log_prob",
    "gaussian_kl_diag",
]

LOG_2PI = math.log(2 * math.pi)


def _draw_normal(
    mu: Tensor, logvar: Tensor, generator: torch.Generator | None
) -> Tensor:
    """mu + sigma * eps with eps ~ N(0, I): a reparametrized draw from N(mu, diag
    exp(logvar)).
    """
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def _log_normal(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(x; mu, diag exp(logvar)), summed over the last axis."""
    return -0.5 * ((x - mu) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def gaussian_kl_diag(
    mu: Tensor, logvar: Tensor, mu0: Tensor, logvar0: Tensor
) -> Tensor:
    """KL(N(mu, diag e^logvar) || N(mu0, diag e^logvar0)), summed over the last axis.
    (..., q) -> (...).
    """
    return 0.5 * (
        logvar0 - logvar + (logvar.exp() + (mu - mu0) ** 2) * torch.exp(-logvar0) - 1.0
    ).sum(-1)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))


def _check_seq(x: Tensor, D: int, who: str) -> Tensor:
    check_shape(x, ndim=3, last_dim=D, name="x", model=who)  # (B, T, D)
    return x


class VRNN(nn.Module):
    """Variational RNN (Chung et al., 2015) with Gaussian observations.

    Parameters
    ----------
    x_dim : int
        D, the size of each step x_t.
    z_dim : int
        q, the size of each latent z_t.
    h_dim : int
        H, the GRU state size.
    hidden : int
        Width of the feature extractors phi_x, phi_z and of the one-hidden-layer MLPs.
    """

    def __init__(self, x_dim: int, z_dim: int, h_dim: int = 64, hidden: int = 64):
        super().__init__()
        for name, v in (
            ("x_dim", x_dim),
            ("z_dim", z_dim),
            ("h_dim", h_dim),
            ("hidden", hidden),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"VRNN: {name} must be an int >= 1; got {v!r}")
        self.x_dim, self.z_dim, self.h_dim = x_dim, z_dim, h_dim
        self.phi_x = nn.Sequential(
            nn.Linear(x_dim, hidden), nn.Tanh()
        )  # x_t -> features
        self.phi_z = nn.Sequential(
            nn.Linear(z_dim, hidden), nn.Tanh()
        )  # z_t -> features
        self.prior = _mlp(h_dim, hidden, 2 * z_dim)  # h_{t-1} -> (mu_0, logvar_0)
        self.encoder = _mlp(
            hidden + h_dim, hidden, 2 * z_dim
        )  # [phi_x(x_t), h_{t-1}] -> (mu_z, logvar_z)
        self.decoder = _mlp(
            hidden + h_dim, hidden, 2 * x_dim
        )  # [phi_z(z_t), h_{t-1}] -> (mu_x, logvar_x)
        self.rnn = nn.GRUCell(2 * hidden, h_dim)

    def elbo(
        self, x: Tensor, *, beta: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """The sequence ELBO, sum over t of E_q[log p(x_t|...)] - KL(q(z_t|...) ||
        p(z_t|...)).

        One reparametrized sample of z_t per step; the KLs between the Gaussians in
        closed form.

        Parameters
        ----------
        x : Tensor, shape (B, T, D)
        beta : float
            Weight of the KL terms (1: the ELBO; ramping it up from 0 is "KL warm-up").

        Returns
        -------
        Tensor, shape (B,), nats per sequence
        """
        x = _check_seq(x, self.x_dim, "VRNN")
        # [maths:vrnn.elbo]
        B, T, _ = x.shape
        h = x.new_zeros(B, self.h_dim)  # (B, H)
        total = x.new_zeros(B)
        for t in range(T):
            fx = self.phi_x(x[:, t])  # (B, hidden)
            mu0, lv0 = self.prior(h).chunk(2, -1)  # (B, q) each
            mu, lv = self.encoder(torch.cat([fx, h], -1)).chunk(2, -1)  # (B, q) each
            z = _draw_normal(mu, lv, generator)  # (B, q), reparametrized
            fz = self.phi_z(z)
            mx, lvx = self.decoder(torch.cat([fz, h], -1)).chunk(2, -1)  # (B, D) each
            total = (
                total
                + _log_normal(x[:, t], mx, lvx)
                - beta * gaussian_kl_diag(mu, lv, mu0, lv0)
            )
            h = self.rnn(torch.cat([fx, fz], -1), h)
        return total
        # [/maths:vrnn.elbo]

    @torch.no_grad()
    def sample(
        self, n: int, T: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Ancestral samples: z_t from the prior, x_t from the decoder, then the GRU.
        Returns (n, T, D).
        """
        p = self.rnn.weight_hh
        h = torch.zeros(n, self.h_dim, dtype=p.dtype, device=p.device)
        out = []
        for _ in range(T):
            mu0, lv0 = self.prior(h).chunk(2, -1)
            z = _draw_normal(mu0, lv0, generator)
            fz = self.phi_z(z)
            mx, lvx = self.decoder(torch.cat([fz, h], -1)).chunk(2, -1)
            x_t = _draw_normal(mx, lvx, generator)
            out.append(x_t)
            h = self.rnn(torch.cat([self.phi_x(x_t), fz], -1), h)
        return torch.stack(out, 1)  # (n, T, D)


class GaussianRNN(nn.Module):
    """An RNN whose every step is one Gaussian: p(x_t | x_<t) = N(mu(h_{t-1}), diag
    sigma^2(h_{t-1})).

    Chung et al.'s (2015) "RNN-Gauss" baseline. No latent variables, so :meth:`log_prob`
    is exact.
    """

    def __init__(self, x_dim: int, h_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.x_dim, self.h_dim = x_dim, h_dim
        self.phi_x = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh())
        self.out = _mlp(h_dim, hidden, 2 * x_dim)  # h_{t-1} -> (mu, logvar)
        self.rnn = nn.GRUCell(hidden, h_dim)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = sum_t log N(x_t; mu(h_{t-1}), diag sigma^2(h_{t-1})). (B, T, D) ->
        (B,), nats.
        """
        x = _check_seq(x, self.x_dim, "GaussianRNN")
        B, T, _ = x.shape
        h = x.new_zeros(B, self.h_dim)
        total = x.new_zeros(B)
        for t in range(T):
            mx, lvx = self.out(h).chunk(2, -1)
            total = total + _log_normal(x[:, t], mx, lvx)
            h = self.rnn(self.phi_x(x[:, t]), h)
        return total

    @torch.no_grad()
    def sample(
        self, n: int, T: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Ancestral samples, (n, T, D)."""
        p = self.rnn.weight_hh
        h = torch.zeros(n, self.h_dim, dtype=p.dtype, device=p.device)
        out = []
        for _ in range(T):
            mx, lvx = self.out(h).chunk(2, -1)
            x_t = _draw_normal(mx, lvx, generator)
            out.append(x_t)
            h = self.rnn(self.phi_x(x_t), h)
        return torch.stack(out, 1)


def telegraph_signal(
    n: int,
    T: int,
    *,
    generator: torch.Generator,
    p_keep: float = 0.8,
    step: float = 1.0,
    noise: float = 0.1,
) -> Tensor:
    """A noisy random telegraph signal: x_t = step * s_t + noise * eps_t with a Markov
    sign s_t.

    s_1 = +-1 with equal probability, s_t = s_{t-1} with probability p_keep
    (else -s_{t-1}), eps_t ~ N(0, 1). Given the past, x_t is bimodal
    (near +step or -step).

    Returns
    -------
    Tensor, shape (n, T, 1)
    """
    if not 0 <= p_keep <= 1 or step <= 0 or noise <= 0 or T < 1 or n < 0:
        raise ValueError(
            "telegraph_signal: need 0 <= p_keep <= 1, step > 0, noise > 0, T >= 1; "
            f"got p_keep={p_keep}, step={step}, noise={noise}, T={T}"
        )
    dev = generator.device
    first = torch.randint(2, (n, 1), generator=generator, device=dev) * 2 - 1  # (n, 1)
    flips = torch.where(
        torch.rand(n, T - 1, generator=generator, device=dev) < p_keep, 1, -1
    )
    s = torch.cumprod(torch.cat([first, flips], 1), 1).float()  # (n, T) states
    return (step * s + noise * torch.randn(n, T, generator=generator, device=dev))[
        ..., None
    ]  # (n, T, 1)


def telegraph_log_prob(
    x: Tensor, *, p_keep: float = 0.8, step: float = 1.0, noise: float = 0.1
) -> Tensor:
    """Exact log p(x) of :func:`telegraph_signal` data by the forward algorithm over the
    sign s_t.

    The signal is a two-state HMM: hidden s_t in {-1, +1}, emissions
    N(x_t; step * s_t, noise^2). (B, T, 1) -> (B,), nats.
    """
    d = x[..., 0].double()  # (B, T)
    s = torch.tensor([-1.0, 1.0], dtype=torch.float64, device=x.device)
    log_emit = -0.5 * (((d[..., None] - step * s) / noise) ** 2 + LOG_2PI) - math.log(
        noise
    )  # (B, T, 2)
    log_trans = torch.log(
        torch.tensor(
            [[p_keep, 1 - p_keep], [1 - p_keep, p_keep]],
            dtype=torch.float64,
            device=x.device,
        )
    )  # (2, 2): from s_{t-1} (row) to s_t (column)
    alpha = math.log(0.5) + log_emit[:, 0]  # (B, 2)
    for t in range(1, d.shape[1]):
        alpha = torch.logsumexp(alpha[:, :, None] + log_trans, dim=1) + log_emit[:, t]
    return torch.logsumexp(alpha, dim=1)
