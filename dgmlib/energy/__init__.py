"""Energy-based models: Boltzmann machines and their restricted, deep and real-valued
kin (§20.1-20.8).
"""

from .bm import BoltzmannMachine, exact_gradient, fit_bm_exact, hebbian_update
from .covariance import (
    MeanCovarianceRBM,
    MeanPoT,
    SpikeSlabRBM,
    fit_covariance_rbm,
    mcrbm_log_partition,
    pca_whitening,
    sample_hmc,
)
from .dbm import (
    DBM,
    DBMStep,
    fit_dbm,
    gibbs_sweep,
    pretrain_dbm,
    sample_dbm,
    variational_sml_step,
)
from .dbn import (
    DBN,
    DBNSample,
    dbn_log_prob_exact,
    dbn_lower_bound_exact,
    dbn_posterior_exact,
    dbn_prior_exact,
    dbn_sample,
    dbn_to_mlp,
    finetune_autoencoder,
    finetune_classifier,
    fit_dbn,
    hamming_distance,
    hamming_neighbours,
    mlp,
    unroll_autoencoder,
)
from .grbm import GaussianBernoulliRBM, GRBMStep, fit_grbm, grbm_gibbs
from .mpdbm import (
    fill_in,
    fit_mpdbm,
    infer_labels,
    masked_mean_field,
    mp_loss,
    sample_observed,
)
from .rbm import (
    BernoulliRBM,
    RBMStep,
    cd_update,
    centered_energy,
    centered_gradient,
    centered_to_uncentered,
    fit_rbm,
    uncentered_parameters,
)

__all__ = ["BernoulliRBM", "RBMStep", "cd_update", "fit_rbm"]
__all__ += [
    "centered_energy",
    "centered_gradient",
    "centered_to_uncentered",
    "uncentered_parameters",
]
__all__ += ["BoltzmannMachine", "exact_gradient", "fit_bm_exact", "hebbian_update"]
__all__ += [
    "DBN",
    "DBNSample",
    "fit_dbn",
    "dbn_sample",
    "dbn_prior_exact",
    "dbn_log_prob_exact",
    "dbn_posterior_exact",
    "dbn_lower_bound_exact",
    "mlp",
    "dbn_to_mlp",
    "unroll_autoencoder",
    "finetune_classifier",
    "finetune_autoencoder",
    "hamming_distance",
    "hamming_neighbours",
]
__all__ += [
    "DBM",
    "DBMStep",
    "fit_dbm",
    "gibbs_sweep",
    "pretrain_dbm",
    "sample_dbm",
    "variational_sml_step",
]
__all__ += [
    "masked_mean_field",
    "mp_loss",
    "sample_observed",
    "fit_mpdbm",
    "fill_in",
    "infer_labels",
]
__all__ += ["GaussianBernoulliRBM", "GRBMStep", "fit_grbm", "grbm_gibbs"]
__all__ += [
    "MeanCovarianceRBM",
    "MeanPoT",
    "SpikeSlabRBM",
    "fit_covariance_rbm",
    "mcrbm_log_partition",
    "pca_whitening",
    "sample_hmc",
]
from .conv import ConvRBM, cd_loss_conv, fit_conv_rbm, pool_block_states  # noqa: E402
from .discriminative import (  # noqa: E402
    DiscriminativeRBM,
    drbm_loss,
    fit_drbm,
    gibbs_xy,
)
from .gated import GatedRBM, fit_gated_rbm, gated_cd_loss  # noqa: E402
from .sequence import (  # noqa: E402
    RNNRBM,
    ConditionalRBM,
    bouncing_balls_1d,
    frame_log_partition,
    frame_log_partition_ais,
    sequence_cd_loss,
)

__all__ += ["ConvRBM", "cd_loss_conv", "fit_conv_rbm", "pool_block_states"]
__all__ += ["DiscriminativeRBM", "drbm_loss", "fit_drbm", "gibbs_xy"]
__all__ += ["GatedRBM", "fit_gated_rbm", "gated_cd_loss"]
__all__ += [
    "ConditionalRBM",
    "RNNRBM",
    "bouncing_balls_1d",
    "frame_log_partition",
    "frame_log_partition_ais",
    "sequence_cd_loss",
]
