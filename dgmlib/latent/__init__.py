"""Latent-variable models and EM (chapter "Latent variables and EM"; book §3.9.6, §13.1, §19.1-19.2).

* :mod:`~dgmlib.latent.mixtures`: Gaussian and Bernoulli mixtures, EM, the ELBO.
* :mod:`~dgmlib.latent.linear`: probabilistic PCA and factor analysis.

One EM interface for all four models::

    model = GaussianMixture.from_data(x, 3, generator=g)   # or BernoulliMixture / PPCA / FactorAnalysis
    history = fit_em(model, x, n_iter=200)
    history["log_likelihood"]                               # non-decreasing
"""

from dgmlib.latent.linear import (
    PPCA, FactorAnalysis, em_step_fa, em_step_ppca, gaussian_log_prob, kl_gaussians, ppca_closed_form,
)
from dgmlib.latent.mixtures import (
    BernoulliMixture, GaussianMixture, elbo, em_step, fit_em, kl_to_posterior,
)

__all__ = [
    "GaussianMixture", "BernoulliMixture", "PPCA", "FactorAnalysis",
    "em_step", "em_step_ppca", "em_step_fa", "fit_em", "ppca_closed_form",
    "elbo", "kl_to_posterior", "kl_gaussians", "gaussian_log_prob",
]
