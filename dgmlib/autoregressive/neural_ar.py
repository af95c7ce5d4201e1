"""Neural auto-regressive networks with left-to-right hidden groups (§20.10.9; Bengio &
Bengio 2000).

Notation
--------
x : (B, D) binary         generated in the order ``o``
W : (D, H, D)             ``W[t, :, s]``: weights from ``x_{o_s}`` into hidden group
``t`` (used for s < t)
c : (D, H)                bias of hidden group ``t``
V : (D, H), b : (D,)      output weights and bias of conditional ``t``
h_t = sigmoid(c_t + sum_{s<t} W[t, :, s] x_{o_s})                 (B, H) hidden group t
p(x_{o_t} = 1 | x_{o_<t}) = sigmoid(b_t + V_t . h_t)

Each conditional is a one-hidden-layer network of its own (figure 20.9 of the textbook):
far more capacity than the logistic FVBN, at O(D^2 H) parameters and O(D^2 H) time. NADE
(eq. 20.83) is the special case ``W[t, :, s] = W[:, s]`` for every ``t``:
:meth:`NeuralAR.from_nade` builds it, and then both compute the same numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import (
    BinaryAutoregressive,
    check_binary_input,
    check_order,
    inverse_order,
    marginal_log_odds,
)

__all__ = ["NeuralAR"]


class NeuralAR(BinaryAutoregressive):
    """A neural autoregressive network: one hidden group per conditional, no weight
    sharing.

    Parameters
    ----------
    n_visible : int
        ``D``.
    n_hidden : int
        ``H``, the width of each hidden group.
    order : permutation of ``0..D-1``, optional
        Generation order (natural when omitted).
    generator : torch.Generator, optional
        Draws the initial weights (``W ~ N(0, 1/D)``, ``V ~ N(0, 1/H)``; biases 0).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        order=None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                f"NeuralAR needs n_visible >= 1 and n_hidden >= 1; got {n_visible}, "
                f"{n_hidden}"
            )
        D, H = n_visible, n_hidden
        self.n_visible, self.n_hidden = D, H
        self.W = nn.Parameter(
            torch.randn(D, H, D, generator=generator) / math.sqrt(D)
        )  # (D, H, D)
        self.c = nn.Parameter(torch.zeros(D, H))
        self.V = nn.Parameter(torch.randn(D, H, generator=generator) / math.sqrt(H))
        self.b = nn.Parameter(torch.zeros(D))
        self.register_buffer(
            "mask", torch.tril(torch.ones(D, D), diagonal=-1)[:, None, :]
        )  # (D, 1, D): s < t
        self.register_buffer(
            "order", check_order(torch.arange(D) if order is None else order, D)
        )

    @classmethod
    def from_nade(cls, nade) -> NeuralAR:
        """The NeuralAR with NADE's tied weights ``W[t, :, s] = W_nade[:, o_s]``
        (eq. 20.83).
        """
        net = cls(nade.n_visible, nade.n_hidden, order=nade.order.cpu()).to(nade.W)
        o = nade.order
        with torch.no_grad():
            net.W.copy_(
                nade.W[:, o].expand(nade.n_visible, -1, -1)
            )  # the same (H, D) for every group t
            net.c.copy_(nade.c.expand(nade.n_visible, -1))
            net.V.copy_(nade.V[o])
            net.b.copy_(nade.b[o])
        return net

    @property
    def n_parameters(self) -> int:
        """Free parameters: ``H D (D - 1) / 2`` input weights, ``D H`` hidden biases,
        ``D H + D`` outputs.
        """
        D, H = self.n_visible, self.n_hidden
        return H * D * (D - 1) // 2 + 2 * D * H + D

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
        check_binary_input(x, self.n_visible, "NeuralAR")
        x_o = x[:, self.order]  # (B, D)
        a = (
            torch.einsum("bs,ths->bth", x_o, self.W * self.mask) + self.c
        )  # (B, D, H): O(D^2 H)
        l_o = (torch.sigmoid(a) * self.V).sum(-1) + self.b  # (B, D)
        return l_o[:, inverse_order(self.order)]
