"""Judging generative models by their samples and their likelihoods (§20.14): mode
coverage, maximum mean discrepancy tests, Fréchet distance, precision and recall for
distributions, Parzen windows (and what each misses).
"""

__all__: list[str] = []
from dgmlib.evaluate.metrics import (  # noqa: E402
    DigitClassifier,
    classifier_accuracy,
    digit_classifier,
    digit_features,
    frechet_distance,
    frechet_gaussians,
    mmd_test,
    precision_recall,
)

__all__ += [
    "mmd_test",
    "frechet_distance",
    "frechet_gaussians",
    "precision_recall",
    "DigitClassifier",
    "digit_classifier",
    "digit_features",
    "classifier_accuracy",
]

from dgmlib.evaluate.parzen import parzen_log_likelihood, select_parzen_sigma  # noqa: E402

__all__ += ["parzen_log_likelihood", "select_parzen_sigma"]

from dgmlib.evaluate.modes import (  # noqa: E402
    ModeCoverage,
    grid_means,
    mode_coverage,
    ring_means,
    sample_mixture,
    toy_mixture,
)

__all__ += [
    "mode_coverage",
    "ModeCoverage",
    "ring_means",
    "grid_means",
    "sample_mixture",
    "toy_mixture",
]

from dgmlib.evaluate.likelihood import (  # noqa: E402
    AISLogLikelihood,
    BDMCResult,
    DecoderPath,
    StepSizeTable,
    ais_log_likelihood,
    bdmc,
    bernoulli_decoder,
    bits_per_dim,
    exact_log_likelihood,
    gaussian_decoder,
    nearest_neighbours,
    sigmoid_betas,
    simulate_decoder,
    tune_step_sizes,
)
from dgmlib.latent.vae import iwae_bound  # noqa: E402
from dgmlib.mcmc.ais import ais  # noqa: E402

__all__ += [
    "DecoderPath",
    "gaussian_decoder",
    "bernoulli_decoder",
    "AISLogLikelihood",
    "tune_step_sizes",
    "StepSizeTable",
    "sigmoid_betas",
    "ais_log_likelihood",
    "BDMCResult",
    "bdmc",
    "simulate_decoder",
    "bits_per_dim",
    "nearest_neighbours",
    "exact_log_likelihood",
    "ais",
    "iwae_bound",
]

from dgmlib.evaluate.table import (  # noqa: E402
    ENTRIES,
    TRUSTED_BRACKET,
    Entry,
    likelihood_table,
    table_html,
)

__all__ += ["likelihood_table", "table_html", "Entry", "ENTRIES", "TRUSTED_BRACKET"]
