"""Autoregressive networks (§20.10.7-20.10.10 of *Deep Learning*): exact likelihoods by
the chain rule.

``p(x) = prod_t p(x_{o_t} | x_{o_<t})`` for an order ``o``; the models differ in how
each conditional is parametrised:

* :class:`FVBN` — logistic regressions on the earlier variables (§20.10.8), O(D^2)
parameters;
* :class:`NeuralAR` — a hidden group per conditional (§20.10.9), O(D^2 H);
* :class:`NADE` — hidden groups with shared weights (eq. 20.83), O(DH), one cumulative
sum;
  :class:`RNADE` for real values (mixture-of-Gaussians conditionals);
  order-agnostic training and ensembles over orders (eq. 20.84);
* :class:`MADE` — one masked MLP for all conditionals, one or several masks;
* :class:`PixelCNN` — masked convolutions (types A and B) for images;
  :class:`WaveNet` — dilated causal convolutions; :class:`RecurrentAR` — a GRU.

Every binary model has ``log_prob(x) -> (B,)`` (exact, nats), ``logits(x) -> (B, D)``
and ``sample(n, *, generator=...)``, which draws one variable at a time, and
``init_bias_from_data(x)``, which starts it as independent pixels with the data's
frequencies.
"""

from .base import (
    bernoulli_log_prob,
    check_binary_input,
    check_order,
    dependencies,
    inverse_order,
    log_mean_exp,
    marginal_log_odds,
    order_known_first,
    random_orders,
    sample_sequential,
)
from .fit import fit_max_likelihood, mean_log_prob
from .fvbn import FVBN
from .made import MADE
from .nade import (
    NADE,
    ensemble_log_prob,
    nade_backward,
    nade_logits_loop,
    order_agnostic_log_prob,
    prefix_preactivations,
)
from .neural_ar import NeuralAR
from .pixelcnn import MaskedConv2d, PixelCNN
from .rnade import RNADE, mixture_log_density
from .rnn import RecurrentAR
from .wavenet import CausalConv1d, WaveNet

__all__ = [
    "FVBN",
    "NeuralAR",
    "NADE",
    "RNADE",
    "MADE",
    "PixelCNN",
    "MaskedConv2d",
    "WaveNet",
    "CausalConv1d",
    "RecurrentAR",
    "nade_logits_loop",
    "nade_backward",
    "prefix_preactivations",
    "order_agnostic_log_prob",
    "ensemble_log_prob",
    "mixture_log_density",
    "fit_max_likelihood",
    "mean_log_prob",
    "bernoulli_log_prob",
    "check_binary_input",
    "check_order",
    "dependencies",
    "inverse_order",
    "log_mean_exp",
    "marginal_log_odds",
    "order_known_first",
    "random_orders",
    "sample_sequential",
]
