"""Normalizing flows: exact densities by the change of variables (eq. 20.72-20.73).

Every transform implements ``forward(x) -> (z, log|det dz/dx|)`` (data -> base, the
density direction) and ``inverse(z) -> (x, log|det dx/dz|)`` (base -> data, sampling); a
:class:`Flow` composes them over a standard-normal base:

    flow = RealNVP(dim, n_layers, hidden)
    flow.log_prob(x)                       # (B,) nats
    z, log_det = flow.forward(x); x_back, _ = flow.inverse(z)
    flow.sample(n, generator=g)            # (n, dim)
"""

from .autoregressive import IAF, MAF, IAFLayer, MAFLayer
from .base import (
    ActNorm,
    ElementwiseAffine,
    Flow,
    Logit,
    Permutation,
    Reshape,
    Reverse,
    Transform,
    check_input,
    standard_normal_log_prob,
)
from .coupling import AffineCoupling, ConvAffineCoupling, RealNVP, alternating_masks
from .dequantize import FullGaussian, IndependentCategorical, bits_per_dim, dequantize
from .glow import Glow, InvertibleConv1x1, Squeeze
from .training import fit_flow, initialize_actnorm, mean_log_prob
from .vi import ENERGIES, elbo, energy_2d, fit_reverse_kl, log_normaliser_2d

__all__ = [
    "Transform",
    "Flow",
    "ElementwiseAffine",
    "ActNorm",
    "Logit",
    "Permutation",
    "Reverse",
    "Reshape",
    "AffineCoupling",
    "ConvAffineCoupling",
    "RealNVP",
    "alternating_masks",
    "MAFLayer",
    "IAFLayer",
    "MAF",
    "IAF",
    "InvertibleConv1x1",
    "Squeeze",
    "Glow",
    "fit_flow",
    "mean_log_prob",
    "initialize_actnorm",
    "dequantize",
    "bits_per_dim",
    "IndependentCategorical",
    "FullGaussian",
    "ENERGIES",
    "energy_2d",
    "elbo",
    "fit_reverse_kl",
    "log_normaliser_2d",
    "check_input",
    "standard_normal_log_prob",
]
