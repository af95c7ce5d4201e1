"""Markov chain Monte Carlo: Gibbs sampling and annealed importance sampling
(§17.3-17.4, §18.7).
"""

from .ais import (
    AISResult,
    AnnealingPath,
    RBMPath,
    ais,
    annealing_path,
    base_rate_biases,
    log_mean_exp,
    sm_betas,
)
from .gibbs import gibbs_chain, gibbs_step, sample_h, sample_v
from .hmc import HMCResult, hmc, hmc_step, leapfrog
from .paths import DBMPath, GRBMPath, MCRBMPath, dbm_base_rates
from .sequential import evolve_distribution, gibbs_transition_matrix, sequential_gibbs

__all__ = [
    "AISResult",
    "AnnealingPath",
    "RBMPath",
    "DBMPath",
    "annealing_path",
    "ais",
    "base_rate_biases",
    "dbm_base_rates",
    "log_mean_exp",
    "sm_betas",
    "gibbs_chain",
    "gibbs_step",
    "sample_h",
    "sample_v",
    "sequential_gibbs",
    "evolve_distribution",
    "gibbs_transition_matrix",
]
__all__ += ["GRBMPath", "MCRBMPath", "HMCResult", "hmc", "hmc_step", "leapfrog"]
