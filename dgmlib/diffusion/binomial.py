"""Binomial diffusion of binary data (Sohl-Dickstein et al. 2015, §2.4 and appendix).

Notation (t = 1..T, every unit independently; p = ``p_inf``)
--------
q(x_t = 1 | x_{t-1}) = (1 - beta_t) x_{t-1} + beta_t p            forward step
q(x_t = 1 | x_0) = alpha_bar_t x_0 + (1 - alpha_bar_t) p            closed form
q(x_{t-1} = 1 | x_t, x_0) by Bayes' rule from the two lines above   posterior
p(x_T) = Bernoulli(p)                                               reverse start
p(x_{t-1} = 1 | x_t) = sum_{x_0 in {0,1}} p_theta(x_0 | x_t) q(x_{t-1} = 1 | x_t, x_0)

The model predicts the clean bits, ``model(x_t, t) -> logits`` of p_theta(x_0 = 1 | x_t)
(B, D), and the reverse step mixes the posteriors with those probabilities, unit by
unit (the x_0-parametrisation of Austin et al. 2021); at t = 1 the posterior is x_0
itself, so p(x_0 | x_1) = p_theta(x_0 | x_1). The bound has the same terms as the
Gaussian one (:mod:`dgmlib.diffusion.gaussian`) with Bernoulli KLs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import at, check_same, check_t, data_shape, rand, random_t
from .schedules import check_betas, sohl_dickstein_betas

__all__ = ["BinomialDiffusion", "bernoulli_kl"]


def _clamp(p: Tensor) -> Tensor:  # keep log p and log(1 - p) finite in p's dtype
    eps = torch.finfo(p.dtype).eps
    return p.clamp(eps, 1 - eps)


def bernoulli_kl(q: Tensor, p: Tensor) -> Tensor:
    """KL(Bernoulli(q) || Bernoulli(p)), elementwise, nats (0 log 0 = 0)."""
    q, p = q.clamp(0, 1), _clamp(p)
    return (
        torch.xlogy(q, q)
        - q * p.log()
        + torch.xlogy(1 - q, 1 - q)
        - (1 - q) * (-p).log1p()
    )


def _bernoulli_nll(x: Tensor, p: Tensor) -> Tensor:
    p = _clamp(p)
    return -(x * p.log() + (1 - x) * (-p).log1p())


class BinomialDiffusion(nn.Module):
    """Forward chain, bound, loss and sampler of binomial diffusion with T steps.

    ``betas``: (T,) in (0, 1] (default Sohl-Dickstein et al.'s beta_t = 1/(T - t + 1),
    which ends exactly at Bernoulli(p_inf)); ``p_inf`` in (0, 1): the stationary
    firing probability of every unit.
    """

    def __init__(self, T: int, *, betas=None, p_inf: float = 0.5):
        super().__init__()
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int; got {T!r}")
        betas = (
            sohl_dickstein_betas(T)
            if betas is None
            else check_betas(betas, allow_one=True)
        )
        if len(betas) != T:
            raise ValueError(f"betas must have T = {T} entries; got {len(betas)}")
        if not 0 < p_inf < 1:
            raise ValueError(f"p_inf must lie in (0, 1); got {p_inf}")
        self.p_inf = float(p_inf)
        alpha_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas)
        self.register_buffer("alpha_bar", alpha_bar)
        self.register_buffer(
            "alpha_bar_prev", torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        )

    @property
    def T(self) -> int:
        return len(self.betas)

    def _check_binary(self, x: Tensor, what: str) -> None:
        if not bool(((x == 0) | (x == 1)).all()):
            raise ValueError(
                f"BinomialDiffusion expects binary {what} in {{0, 1}}; got values in "
                f"[{float(x.min()):.3g}, {float(x.max()):.3g}]. Binarize first: "
                "dgmlib.data.binarize(x)"
            )

    # ------------------------------------------------------------------ forward chain
    def q_prob(self, x0: Tensor, t) -> Tensor:
        """q(x_t = 1 | x_0), (B, D)."""
        t = check_t(t, x0, self.T)
        a_bar = at(self.alpha_bar, t, x0)
        return a_bar * x0 + (1 - a_bar) * self.p_inf

    def q_sample(self, x0: Tensor, t, noise: Tensor) -> Tensor:
        """x_t ~ q(x_t | x_0) with ``noise`` ~ U[0, 1) of x0's shape: 1[noise < q]."""
        check_same(x0, noise, "x0 and noise")
        self._check_binary(x0, "x0")
        return (noise < self.q_prob(x0, t)).to(x0.dtype)

    def q_posterior(self, x0: Tensor, xt: Tensor, t) -> tuple[Tensor, Tensor]:
        """q(x_{t-1} = 1 | x_t, x_0) (B, D), and its Bernoulli variance."""
        check_same(x0, xt, "x0 and xt")
        t = check_t(t, x0, self.T)
        # [maths:diffusion.binomial_posterior]
        beta = at(self.betas, t, x0)
        a_prev = at(self.alpha_bar_prev, t, x0)
        m = a_prev * x0 + (1 - a_prev) * self.p_inf  # q(x_{t-1} = 1 | x_0)
        r1 = 1 - beta + beta * self.p_inf  # q(x_t = 1 | x_{t-1} = 1)
        r0 = beta * self.p_inf  # q(x_t = 1 | x_{t-1} = 0)
        like1 = torch.where(xt == 1, r1, 1 - r1)  # q(x_t | x_{t-1} = 1)
        like0 = torch.where(xt == 1, r0, 1 - r0)  # q(x_t | x_{t-1} = 0)
        post = like1 * m / (like1 * m + like0 * (1 - m))
        # [/maths:diffusion.binomial_posterior]
        return post, post * (1 - post)

    # ------------------------------------------------------------------ reverse chain
    def p_prob(self, model: nn.Module, xt: Tensor, t: Tensor) -> Tensor:
        """p(x_{t-1} = 1 | x_t), (B, D)."""
        p_x0 = torch.sigmoid(model(xt, t))  # p_theta(x_0 = 1 | x_t)
        check_same(p_x0, xt, "the model's logits and x_t")
        one, _ = self.q_posterior(torch.ones_like(xt), xt, t)
        zero, _ = self.q_posterior(torch.zeros_like(xt), xt, t)
        return p_x0 * one + (1 - p_x0) * zero

    def prior_term(self, x0: Tensor) -> Tensor:
        """L_T = KL(q(x_T | x_0) || Bernoulli(p_inf)), (B,) nats."""
        q = self.q_prob(x0, self.T)
        return bernoulli_kl(q, torch.full_like(q, self.p_inf)).sum(1)

    def step_term(self, model: nn.Module, x0: Tensor, xt: Tensor, t) -> Tensor:
        """L_{t-1} at the given x_t, (B,) nats."""
        t = check_t(t, x0, self.T)
        # [maths:diffusion.binomial_step_term]
        p = self.p_prob(model, xt, t)
        q, _ = self.q_posterior(x0, xt, t)
        first = (t == 1)[:, None]
        return torch.where(first, _bernoulli_nll(x0, p), bernoulli_kl(q, p)).sum(1)
        # [/maths:diffusion.binomial_step_term]

    def bound(self, model: nn.Module, x0: Tensor, *, generator=None) -> Tensor:
        """Every term of the negative bound, (B, T + 1) nats (as GaussianDiffusion)."""
        self._check_binary(x0, "x0")
        cols = []
        for t in range(1, self.T + 1):
            xt = self.q_sample(x0, t, rand(x0.shape, generator, x0))
            cols.append(self.step_term(model, x0, xt, t))
        cols.append(self.prior_term(x0))
        return torch.stack(cols, 1)

    def loss(self, model: nn.Module, x0: Tensor, *, generator=None):
        """One-sample estimates, each (B,): the negative bound L_T + T L_{t-1} with
        t ~ U{1..T}, and a simplified loss, the cross-entropy of p_theta(x_0 | x_t)
        (mean over units).
        """
        self._check_binary(x0, "x0")
        t = random_t(self.T, x0, generator)
        xt = self.q_sample(x0, t, rand(x0.shape, generator, x0))
        nll = self.prior_term(x0) + self.T * self.step_term(model, x0, xt, t)
        logits = model(xt, t)
        simple = nn.functional.binary_cross_entropy_with_logits(
            logits, x0, reduction="none"
        ).mean(1)
        return nll, simple

    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        n: int,
        *,
        shape: tuple[int, ...] | None = None,
        generator=None,
        return_path: bool = False,
    ) -> Tensor:
        """Ancestral sampling from x_T ~ Bernoulli(p_inf); (n, D), or the path (T + 1,
        n, D) with path[t] = x_t.
        """
        shape = data_shape(model, shape)
        like = next(model.parameters())
        x = (rand((n, *shape), generator, like) < self.p_inf).to(like.dtype)
        path = [x]
        for t in range(self.T, 0, -1):
            tt = torch.full((n,), t, device=x.device, dtype=torch.long)
            x = (rand(x.shape, generator, x) < self.p_prob(model, x, tt)).to(x.dtype)
            path.append(x)
        return torch.stack(path[::-1]) if return_path else x
