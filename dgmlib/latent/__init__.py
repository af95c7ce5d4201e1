"""Latent-variable models and EM (chapter "Latent variables and EM"; book §3.9.6, §13.1,
§19.1-19.2).

* :mod:`~dgmlib.latent.mixtures`: Gaussian and Bernoulli mixtures, EM, the ELBO.
* :mod:`~dgmlib.latent.linear`: probabilistic PCA and factor analysis.

One EM interface for all four models::

    model = GaussianMixture.from_data(x, 3, generator=g)   # or BernoulliMixture / PPCA
    / FactorAnalysis history = fit_em(model, x, n_iter=200) history["log_likelihood"]
    # non-decreasing
"""

from dgmlib.latent.linear import (
    PPCA,
    FactorAnalysis,
    em_step_fa,
    em_step_ppca,
    gaussian_log_prob,
    kl_gaussians,
    ppca_closed_form,
)
from dgmlib.latent.mixtures import (
    BernoulliMixture,
    GaussianMixture,
    elbo,
    em_step,
    fit_em,
    kl_to_posterior,
)

__all__ = [
    "GaussianMixture",
    "BernoulliMixture",
    "PPCA",
    "FactorAnalysis",
    "em_step",
    "em_step_ppca",
    "em_step_fa",
    "fit_em",
    "ppca_closed_form",
    "elbo",
    "kl_to_posterior",
    "kl_gaussians",
    "gaussian_log_prob",
]
from dgmlib.latent.vae import (  # noqa: E402
    VAE,
    active_units,
    fit_vae,
    gaussian_kl,
    iwae_bound,
    kl_per_dimension,
    log_importance_weights,
)

__all__ += [
    "VAE",
    "iwae_bound",
    "fit_vae",
    "active_units",
    "kl_per_dimension",
    "gaussian_kl",
    "log_importance_weights",
]
from dgmlib.latent.sbn import (  # noqa: E402
    ExactPosterior,
    NVILBaseline,
    RecognitionNet,
    SigmoidBeliefNet,
    elbo_exact,
    fit_sbn,
    mean_field_exact,
    nvil_loss,
    rws_loss,
    wake_sleep_loss,
)

__all__ += [
    "SigmoidBeliefNet",
    "RecognitionNet",
    "ExactPosterior",
    "NVILBaseline",
    "wake_sleep_loss",
    "nvil_loss",
    "rws_loss",
    "fit_sbn",
    "mean_field_exact",
    "elbo_exact",
]
