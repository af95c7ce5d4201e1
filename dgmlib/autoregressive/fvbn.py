"""Logistic auto-regressive networks: the fully visible sigmoid belief net
(§20.10.8; Frey 1998).

Notation
--------
x : (B, D) binary     generated in the order ``o``
W : (D, D)            ``W[t, s]`` is the weight from ``x_{o_s}`` to the conditional of
``x_{o_t}``;
                      only ``s < t`` is used (strictly lower triangular in generation
                      order)
b : (D,)              ``b[t]`` is the bias of the conditional of ``x_{o_t}``

``p(x_{o_t} = 1 | x_{o_<t}) = sigmoid(b_t + sum_{s<t} W[t, s] x_{o_s})``: each
conditional is a logistic regression on the variables before it (figure 20.8 of the
textbook). The model has ``D (D - 1) / 2 + D`` parameters, O(D^2), and no hidden units.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import (
    BinaryAutoregressive,
    check_binary_input,
    check_order,
    inverse_order,
    marginal_log_odds,
)

__all__ = ["FVBN"]


class FVBN(BinaryAutoregressive):
    """Logistic FVBN: every conditional a logistic regression on the earlier variables.

    Parameters
    ----------
    n_visible : int
        ``D``.
    order : permutation of ``0..D-1``, optional
        Generation order (natural when omitted).
    generator : torch.Generator, optional
        Draws the initial weights ``W ~ N(0, 0.01^2)`` (biases 0).
    """

    def __init__(
        self, n_visible: int, *, order=None, generator: torch.Generator | None = None
    ):
        super().__init__()
        if n_visible < 1:
            raise ValueError(f"FVBN needs n_visible >= 1; got {n_visible}")
        self.n_visible = n_visible
        self.W = nn.Parameter(
            0.01 * torch.randn(n_visible, n_visible, generator=generator)
        )  # (D, D)
        self.b = nn.Parameter(torch.zeros(n_visible))  # (D,)
        self.register_buffer(
            "mask", torch.tril(torch.ones(n_visible, n_visible), diagonal=-1)
        )  # s < t
        self.register_buffer(
            "order",
            check_order(torch.arange(n_visible) if order is None else order, n_visible),
        )

    @property
    def n_parameters(self) -> int:
        """The free parameters: ``D (D - 1) / 2`` weights and ``D`` biases."""
        d = self.n_visible
        return d * (d - 1) // 2 + d

    @torch.no_grad()
    def init_bias_from_data(self, x: Tensor) -> None:
        """Start as independent pixels: ``b`` = the data's log-odds
        (in generation order).
        """
        self.b.copy_(marginal_log_odds(x.to(self.b))[self.order])

    def logits(self, x: Tensor) -> Tensor:
        """``logits[:, d] = logit p(x_d = 1 | x_before_d)``, (B, D) -> (B, D), natural
        layout.
        """
        check_binary_input(x, self.n_visible, "FVBN")
        x_o = x[:, self.order]  # (B, D) in generation order
        l_o = (
            x_o @ (self.W * self.mask).T + self.b
        )  # (B, D): b_t + sum_{s<t} W[t, s] x_{o_s}
        return l_o[:, inverse_order(self.order)]
