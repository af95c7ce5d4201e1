"""Diffusion inversion and denoising diffusion (§20.13): a forward chain that destroys
structure and a learned reverse chain that restores it (Sohl-Dickstein et al. 2015;
Ho et al. 2020), and approximate Bayesian computation (Rubin et al. 1984).

    diff = GaussianDiffusion(linear_betas(1000))
    diff.q_sample(x0, t, noise)              # x_t ~ q(x_t | x_0)
    diff.q_posterior(x0, xt, t)              # mean, variance of q(x_{t-1} | x_t, x_0)
    nll, simple = diff.loss(model, x0)       # (B,) negative bound (nats), eps loss
    diff.bound(model, x0)                    # (B, T + 1) every term of the bound
    diff.sample(model, n)                    # ancestral sampling from x_T
    BinomialDiffusion(T)                     # the same for binary data
    fit_diffusion(diff, model, data)         # -> dgmlib.train.History
"""

from .abc import match_moments, rejection_abc
from .binomial import BinomialDiffusion, bernoulli_kl
from .data import heartbeat, swiss_roll
from .fit import OBJECTIVES, fit_diffusion
from .gaussian import GaussianDiffusion, gaussian_kl, gaussian_nll
from .models import DenoisingMLP, time_embedding
from .schedules import check_betas, linear_betas, sohl_dickstein_betas

__all__ = [
    "GaussianDiffusion",
    "BinomialDiffusion",
    "fit_diffusion",
    "OBJECTIVES",
    "DenoisingMLP",
    "time_embedding",
    "linear_betas",
    "sohl_dickstein_betas",
    "check_betas",
    "gaussian_kl",
    "gaussian_nll",
    "bernoulli_kl",
    "rejection_abc",
    "match_moments",
    "heartbeat",
    "swiss_roll",
]
