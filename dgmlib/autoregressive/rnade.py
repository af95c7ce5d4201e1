"""RNADE: NADE for real-valued vectors, with mixture-of-Gaussians conditionals
(§20.10.10; Uria et al. 2013).

Notation
--------
x : (B, D) real                 generated in the order ``o``
W : (H, D), c : (H,)            as in NADE: a_t = c + sum_{s<t} W[:, o_s] x_{o_s}
(shared, eq. 20.83)
rho : (D,)                      a scale per conditional: h_t = relu(rho_{o_t} a_t)
(Uria et al.)
V : (D, H, 3K), b : (D, 3K)     the mixture parameters of conditional t from h_t:
    log alpha_t = log_softmax(.)   (K,)   mixing proportions
    mu_t                           (K,)   means
    log sigma_t                    (K,)   log standard deviations
p(x_{o_t} | x_{o_<t}) = sum_k alpha_tk N(x_{o_t}; mu_tk, sigma_tk^2)

The hidden pre-activations are NADE's cumulative sum, now over real inputs; each
conditional is a one-dimensional density, so ``log p(x)`` is exact and every conditional
integrates to 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_shape

from .base import check_order, check_orders, inverse_order
from .nade import prefix_preactivations

__all__ = ["RNADE"]

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -7.0, 5.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mixture_log_density(
    x: Tensor, log_alpha: Tensor, mu: Tensor, log_sigma: Tensor
) -> Tensor:
    """``log sum_k alpha_k N(x; mu_k, sigma_k^2)``: x (...), parameters (..., K) ->
    (...).
    """
    z = (x[..., None] - mu) / log_sigma.exp()
    return torch.logsumexp(log_alpha - 0.5 * z**2 - log_sigma - _HALF_LOG_2PI, dim=-1)


class RNADE(nn.Module):
    """Real-valued NADE with ``K``-component Gaussian mixture conditionals.

    Parameters
    ----------
    n_in : int
        ``D``.
    n_hidden : int
        ``H``.
    n_components : int
        ``K``, Gaussians per conditional.
    order : permutation of ``0..D-1``, optional
        Default generation order (natural when omitted); methods also take ``order=``
        (D,) or one per example (B, D).
    generator : torch.Generator, optional
        Draws the initial weights.
    """

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_components: int = 5,
        *,
        order=None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if min(n_in, n_hidden, n_components) < 1:
            raise ValueError(
                f"RNADE needs n_in, n_hidden, n_components >= 1; got {n_in}, "
                f"{n_hidden}, {n_components}"
            )
        D, H, K = n_in, n_hidden, n_components
        self.n_in, self.n_hidden, self.n_components = D, H, K
        self.W = nn.Parameter(
            torch.randn(H, D, generator=generator) / math.sqrt(D)
        )  # (H, D)
        self.c = nn.Parameter(torch.zeros(H))
        self.rho = nn.Parameter(torch.ones(D))
        self.V = nn.Parameter(
            torch.randn(D, H, 3 * K, generator=generator) / math.sqrt(H)
        )  # (D, H, 3K)
        b = torch.zeros(D, 3 * K)
        b[:, K : 2 * K] = (
            torch.linspace(-1.5, 1.5, K) if K > 1 else 0.0
        )  # spread the initial means
        self.b = nn.Parameter(b)
        self.register_buffer(
            "order", check_order(torch.arange(D) if order is None else order, D)
        )

    def _check(self, x: Tensor) -> None:
        check_shape(x, 2, self.n_in, name="x", model="RNADE")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("RNADE expects finite real-valued x; got NaN or inf")

    def conditionals(self, x: Tensor, *, order=None) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture parameters of every conditional ``p(x_d | x_before_d)``:
        ``(log_alpha, mu, log_sigma)``, each (B, D, K), natural layout.
        """
        self._check(x)
        K = self.n_components
        o = (
            self.order
            if order is None
            else check_orders(order, self.n_in, x.shape[0]).to(x.device)
        )
        if o.ndim == 1:
            x_o, W_o, V_o, b_o, rho_o = (
                x[:, o],
                self.W[:, o],
                self.V[o],
                self.b[o],
                self.rho[o],
            )
            # [maths:rnade.hidden]
            a = prefix_preactivations(x_o, W_o, self.c)  # (B, H, D)
            h = F.relu(rho_o * a)  # h_d = relu(rho_d a_d)
            out = torch.einsum("bhd,dhk->bdk", h, V_o) + b_o  # (B, D, 3K) in order
            # [/maths:rnade.hidden]
            out = out[:, inverse_order(o)]
        else:
            x_o = x.gather(1, o)
            a = prefix_preactivations(
                x_o, self.W.T[o].transpose(1, 2).contiguous(), self.c
            )
            h = F.relu(self.rho[o][:, None, :] * a)
            out = torch.einsum("bhd,bdhk->bdk", h, self.V[o]) + self.b[o]
            out = out.gather(1, inverse_order(o)[:, :, None].expand(-1, -1, 3 * K))
        # [maths:rnade.mixture]
        log_alpha = torch.log_softmax(out[..., :K], -1)  # mixing proportions
        mu = out[..., K : 2 * K]
        log_sigma = out[..., 2 * K :].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        # [/maths:rnade.mixture]
        return log_alpha, mu, log_sigma

    def log_prob_terms(self, x: Tensor, *, order=None) -> Tensor:
        """``log p(x_d | x_before_d)`` for every ``d`` (B, D), natural layout
        (densities: nats, not probabilities).
        """
        return mixture_log_density(x, *self.conditionals(x, order=order))

    def log_prob(self, x: Tensor, *, order=None) -> Tensor:
        """Exact log-density ``log p(x)`` in nats, (B, D) -> (B,)."""
        return self.log_prob_terms(x, order=order).sum(1)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, order=None
    ) -> Tensor:
        """Ancestral samples (n, D): for each ``t``, pick a component, then draw from
        its Gaussian.
        """
        o = (
            self.order
            if order is None
            else check_order(order, self.n_in).to(self.W.device)
        )
        K, dev = self.n_components, self.W.device
        out = torch.zeros(n, self.n_in, device=dev, dtype=self.W.dtype)
        a = self.c.expand(n, -1).clone()  # (n, H)
        for t in range(self.n_in):
            i = int(o[t])
            params = F.relu(self.rho[i] * a) @ self.V[i] + self.b[i]  # (n, 3K)
            alpha = torch.softmax(params[:, :K], -1)
            where = generator.device if generator is not None else dev
            k = (
                torch.multinomial(alpha.to(where), 1, generator=generator)
                .squeeze(1)
                .to(dev)
            )  # component per sample
            mu = params[:, K : 2 * K].gather(1, k[:, None]).squeeze(1)
            sigma = (
                params[:, 2 * K :]
                .clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
                .gather(1, k[:, None])
                .squeeze(1)
                .exp()
            )
            eps = torch.randn(n, generator=generator, device=where).to(dev)
            out[:, i] = mu + sigma * eps
            a = a + out[:, i, None] * self.W[:, i]
        return out
