"""Generators defined by Markov chains: the denoising autoencoder's chain (§20.11) and
generative stochastic networks (§20.12).
"""

__all__: list[str] = []
