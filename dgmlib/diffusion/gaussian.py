"""Gaussian diffusion: Sohl-Dickstein et al. (2015), Ho et al. (2020) (§20.13).

Notation (t = 1..T, index t - 1 in every (T,) buffer)
--------
x_0                      data; x_T ~ N(0, I) after the forward chain
beta_t                   betas[t - 1], variance added at step t
alpha_t = 1 - beta_t     alphas
alpha_bar_t = prod_s<=t alpha_s           alpha_bar  (alpha_bar_0 = 1: alpha_bar_prev)
q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)                  forward step
q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)          closed form
q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde_t I)                     posterior
p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I)                    reverse step
mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_t)

Negative variational bound per example (Sohl-Dickstein et al.'s -K; Ho et al. eq. 5):
    L = L_T + sum_{t=2}^T L_{t-1} + L_0,
    L_T = KL(q(x_T | x_0) || N(0, I)),
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),   x_t ~ q(x_t | x_0)
    L_0 = -log p(x_0 | x_1).

A denoiser is any module ``model(x_t, t) -> eps`` (same shape as x_t, t a (B,) long
tensor in 1..T); with ``variance="learned"`` it returns twice the channels of the last
dimension: eps and v, log sigma_t^2 = v log beta_t + (1 - v) log beta_tilde_t with
v = sigmoid(output) (Nichol & Dhariwal 2021).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import at, check_same, check_t, data_shape, randn, random_t
from .schedules import check_betas

__all__ = ["GaussianDiffusion", "gaussian_kl", "gaussian_nll"]

VARIANCES = ("beta", "posterior", "learned")


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor):
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)), elementwise, nats."""
    return 0.5 * (
        logvar_p
        - logvar_q
        + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp()
        - 1.0
    )


def gaussian_nll(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """-log N(x; mu, e^logvar), elementwise, nats."""
    return 0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / logvar.exp())


def _sum_dims(x: Tensor) -> Tensor:  # (B, ...) -> (B,)
    return x.reshape(x.shape[0], -1).sum(1)


class GaussianDiffusion(nn.Module):
    """The forward chain of a schedule ``betas`` (T,) in (0, 1), and the bound, loss
    and sampler of a reverse chain given by an epsilon-predicting ``model``.

    ``variance``: the reverse variance sigma_t^2: ``"beta"`` (beta_t), ``"posterior"``
    (beta_tilde_t; beta_1 at t = 1) or ``"learned"`` (interpolated by the model).
    The schedule constants are float64 buffers, so ``.to(device)`` moves them; every
    method casts them to its input's dtype.
    """

    def __init__(self, betas, *, variance: str = "beta"):
        super().__init__()
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}; got {variance!r}")
        self.variance = variance
        betas = check_betas(betas)
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * betas  # beta_tilde_1 = 0
        # log beta_tilde clipped at t = 1 (where it is 0) to its t = 2 value
        clip = beta_tilde[1] if len(betas) > 1 else betas[0]
        for name, value in {
            "betas": betas,
            "alphas": alphas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "posterior_variance": beta_tilde,
            "posterior_log_variance": torch.cat(
                [clip.log()[None], beta_tilde[1:].log()]
            ),
            "posterior_mean_coef_x0": alpha_bar_prev.sqrt() * betas / (1 - alpha_bar),
            "posterior_mean_coef_xt": alphas.sqrt()
            * (1 - alpha_bar_prev)
            / (1 - alpha_bar),
        }.items():
            self.register_buffer(name, value)

    @property
    def T(self) -> int:
        return len(self.betas)

    # ------------------------------------------------------------------ forward chain
    def q_sample(self, x0: Tensor, t, noise: Tensor) -> Tensor:
        """x_t ~ q(x_t | x_0) in closed form, given standard-normal ``noise``."""
        check_same(x0, noise, "x0 and noise")
        t = check_t(t, x0, self.T)
        # [maths:diffusion.q_sample]
        a_bar = at(self.alpha_bar, t, x0)
        return a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * noise
        # [/maths:diffusion.q_sample]

    def q_posterior(self, x0: Tensor, xt: Tensor, t) -> tuple[Tensor, Tensor]:
        """Mean (B, ...) and variance (B, 1, ..., 1) of q(x_{t-1} | x_t, x_0)."""
        check_same(x0, xt, "x0 and xt")
        t = check_t(t, x0, self.T)
        # [maths:diffusion.q_posterior]
        mean = (
            at(self.posterior_mean_coef_x0, t, x0) * x0
            + at(self.posterior_mean_coef_xt, t, x0) * xt
        )
        variance = at(self.posterior_variance, t, x0)
        # [/maths:diffusion.q_posterior]
        return mean, variance

    # ------------------------------------------------------------------ reverse chain
    def p_mean_logvar(
        self, model: nn.Module, xt: Tensor, t: Tensor, *, detach_mean=False
    ):
        """Mean, log-variance and predicted eps of p(x_{t-1} | x_t)."""
        out = model(xt, t)
        if self.variance == "learned":
            if out.shape[-1] != 2 * xt.shape[-1]:
                raise ValueError(
                    "variance='learned' needs a model returning eps and v stacked on "
                    f"the last dimension ({2 * xt.shape[-1]}); got {tuple(out.shape)}"
                )
            eps, v = out.chunk(2, dim=-1)
        else:
            check_same(out, xt, "the model's output eps and x_t")
            eps = out
        # [maths:diffusion.p_mean]
        beta, alpha = at(self.betas, t, xt), at(self.alphas, t, xt)
        a_bar = at(self.alpha_bar, t, xt)
        mean = (xt - beta / (1 - a_bar).sqrt() * eps) / alpha.sqrt()
        # [/maths:diffusion.p_mean]
        if detach_mean:
            mean = mean.detach()
        log_beta = beta.log().expand_as(xt)
        if self.variance == "beta":
            logvar = log_beta
        else:
            log_tilde = at(self.posterior_log_variance, t, xt).expand_as(xt)
            if self.variance == "posterior":
                logvar = torch.where(self._at_is_one(t, xt), log_beta, log_tilde)
            else:
                w = torch.sigmoid(v)
                logvar = w * log_beta + (1 - w) * log_tilde
        return mean, logvar, eps

    def _at_is_one(self, t: Tensor, x: Tensor) -> Tensor:
        return (t == 1).reshape(-1, *([1] * (x.ndim - 1)))

    # ------------------------------------------------------------------ the bound
    def prior_term(self, x0: Tensor) -> Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)), (B,) nats."""
        t = torch.full((x0.shape[0],), self.T, device=x0.device, dtype=torch.long)
        a_bar = at(self.alpha_bar, t, x0)
        mu, logvar = a_bar.sqrt() * x0, (1 - a_bar).log().expand_as(x0)
        return _sum_dims(gaussian_kl(mu, logvar, torch.zeros_like(x0), 0 * x0))

    def step_term(
        self, model: nn.Module, x0: Tensor, xt: Tensor, t, *, detach_mean=False
    ):
        """L_{t-1} at the given x_t, (B,) nats: the KL of the posterior from the
        reverse step for t >= 2, -log p(x_0 | x_1) for t = 1.
        """
        t = check_t(t, x0, self.T)
        check_same(x0, xt, "x0 and xt")
        mean_p, logvar_p, _ = self.p_mean_logvar(model, xt, t, detach_mean=detach_mean)
        return self._term(x0, xt, t, mean_p, logvar_p)

    def bound(self, model: nn.Module, x0: Tensor, *, generator=None) -> Tensor:
        """Every term of the negative bound, (B, T + 1) nats: column t - 1 holds
        L_{t-1} (one x_t ~ q(x_t | x_0) per t), the last column L_T. ``.sum(1)``
        is an unbiased estimate of -K, the per-example negative bound.
        """
        cols = []
        for t in range(1, self.T + 1):
            noise = randn(x0.shape, generator, x0)
            xt = self.q_sample(x0, t, noise)
            cols.append(self.step_term(model, x0, xt, t))
        cols.append(self.prior_term(x0))
        return torch.stack(cols, 1)

    def loss(self, model: nn.Module, x0: Tensor, *, generator=None, detach_mean=False):
        """One-sample estimates, each (B,): the negative bound in nats,
        L_T + T * L_{t-1} with t ~ U{1..T}, and the simplified loss
        mean_d (eps - eps_theta(x_t, t))^2 (Ho et al. 2020, eq. 14).
        """
        B = x0.shape[0]
        t = random_t(self.T, x0, generator)
        noise = randn(x0.shape, generator, x0)
        # [maths:diffusion.loss]
        xt = self.q_sample(x0, t, noise)
        mean_p, logvar_p, eps = self.p_mean_logvar(
            model, xt, t, detach_mean=detach_mean
        )
        simple = ((noise - eps) ** 2).reshape(B, -1).mean(1)
        nll = self.prior_term(x0) + self.T * self._term(x0, xt, t, mean_p, logvar_p)
        # [/maths:diffusion.loss]
        return nll, simple

    def _term(self, x0, xt, t, mean_p, logvar_p) -> Tensor:
        # [maths:diffusion.step_term]
        mean_q, var_q = self.q_posterior(x0, xt, t)
        first = self._at_is_one(t, x0)  # (B, 1, ...): t = 1
        logvar_q = torch.where(first, 0.0, var_q.clamp_min(1e-300).log()).expand_as(x0)
        kl = gaussian_kl(mean_q, logvar_q, mean_p, logvar_p)  # t >= 2: L_{t-1}
        nll = gaussian_nll(x0, mean_p, logvar_p)  # t = 1: L_0 = -log p(x_0 | x_1)
        return _sum_dims(torch.where(first, nll, kl))
        # [/maths:diffusion.step_term]

    # ------------------------------------------------------------------ sampling
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
        """Ancestral sampling x_T ~ N(0, I), x_{t-1} ~ p(x_{t-1} | x_t), down to x_0.

        ``shape``: one example's shape (default ``model.data_shape``). Returns x_0
        (n, *shape), or with ``return_path`` all states (T + 1, n, *shape), path[t] =
        x_t.
        """
        shape = data_shape(model, shape)
        p = next(model.parameters())
        x = randn((n, *shape), generator, p)
        path = [x]
        for t in range(self.T, 0, -1):
            tt = torch.full((n,), t, device=x.device, dtype=torch.long)
            # [maths:diffusion.sample]
            mean, logvar, _ = self.p_mean_logvar(model, x, tt)
            x = mean + (0.5 * logvar).exp() * randn(x.shape, generator, x)
            # [/maths:diffusion.sample]
            path.append(x)
        return torch.stack(path[::-1]) if return_path else x
