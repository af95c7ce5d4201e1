"""Generators defined by Markov chains: the denoising autoencoder's chain (§20.11) and
generative stochastic networks (§20.12).
"""

__all__: list[str] = []

from dgmlib.chains.gsn import (  # noqa: E402
    GSN,
    GSNChain,
    HybridGSN,
    fit_gsn,
    gsn_chain,
    hybrid_loss,
    predict_labels,
    walkback_loss,
)

__all__ += [
    "GSN",
    "GSNChain",
    "HybridGSN",
    "fit_gsn",
    "gsn_chain",
    "hybrid_loss",
    "predict_labels",
    "walkback_loss",
]

from dgmlib.chains.dae import (  # noqa: E402
    BitFlipCorruption,
    DenoisingAutoencoder,
    ExactReconstruction,
    GaussianCorruption,
    SaltAndPepperCorruption,
    cae_walk,
    contractive_penalty,
    dae_chain,
    dae_transition_matrix,
    fit_dae,
    langevin,
    mass_outside,
    reconstruction_matrix,
    stationary_distribution,
)

__all__ += [
    "BitFlipCorruption",
    "DenoisingAutoencoder",
    "ExactReconstruction",
    "GaussianCorruption",
    "SaltAndPepperCorruption",
    "cae_walk",
    "contractive_penalty",
    "dae_chain",
    "dae_transition_matrix",
    "fit_dae",
    "langevin",
    "mass_outside",
    "reconstruction_matrix",
    "stationary_distribution",
]
