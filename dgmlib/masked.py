"""Masked layers with the autoregressive property (MADE; Germain et al. 2015).

A network ``f: R^D -> R^(D x P)`` is *autoregressive* for an ordering ``o`` (a
permutation of ``0..D-1``) when its ``P`` outputs for input ``i`` depend only on the
inputs that come before ``i`` in ``o``. MADE gets this from an ordinary MLP by zeroing
weights:

* every unit gets a *degree*: input ``i`` has degree ``m(i) = 1 +
(position of i in o)``;
  hidden unit ``k`` of layer ``l`` has a degree ``m_l(k)`` in ``[min m_(l-1), D - 1]``;
* a hidden unit may see a unit of the previous layer when ``m_l(k) >= m_(l-1)(j)``;
* an output for input ``d`` may see a hidden unit when ``m(d) > m_L(k)`` (strictly:
output
  ``d`` must not see input ``d`` itself).

Then output ``d`` depends only on inputs of degree ``< m(d)``, i.e. the inputs before
``d``. The autoregressive models (NADE's cousins MADE and PixelCNN, chapter
"Autoregressive networks") and the flows that use them (MAF, IAF, chapter "Normalizing
flows") build on :class:`MaskedMLP`.
"""

from __future__ import annotations

import torch
from torch import nn


def check_order(order, n_in: int) -> torch.Tensor:
    """``order`` as a long tensor, checked to be a permutation of ``0..n_in-1``."""
    o = torch.as_tensor(order, dtype=torch.long).flatten()
    if o.numel() != n_in or not torch.equal(torch.sort(o).values, torch.arange(n_in)):
        raise ValueError(
            f"order must be a permutation of 0..{n_in - 1} (the dimensions in the "
            "order they are generated); got "
            f"{o.tolist()[:12]}{'...' if o.numel() > 12 else ''} with {o.numel()} "
            "entries"
        )
    return o


def made_degrees(
    n_in: int,
    hidden_sizes: list[int],
    *,
    order=None,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Degrees of the input and hidden units: ``[m_in (n_in,), m_1 (H_1,), ..., m_L
    (H_L,)]``.

    ``order`` (default: natural ``0..n_in-1``) is the generation order; hidden degrees
    are drawn uniformly from ``[min of the previous layer's degrees, n_in -
    1]`` with ``generator``, or spread evenly over that range when ``generator`` is None
    (deterministic masks).
    """
    if n_in < 1:
        raise ValueError(f"n_in must be >= 1, got {n_in}")
    if any(h < 1 for h in hidden_sizes):
        raise ValueError(f"hidden sizes must be >= 1, got {list(hidden_sizes)}")
    o = check_order(torch.arange(n_in) if order is None else order, n_in)
    m_in = torch.empty(n_in, dtype=torch.long)
    m_in[o] = torch.arange(1, n_in + 1)  # input o[t] is generated at step t+1
    degrees = [m_in]
    for h in hidden_sizes:
        low = min(int(degrees[-1].min()), n_in - 1)
        high = max(n_in - 1, low)
        if generator is None:
            m = (
                low + (torch.arange(h) * (high - low + 1)) // h
            )  # every degree used when h >= range
        else:
            m = torch.randint(
                low, high + 1, (h,), generator=generator, device=generator.device
            ).cpu()
        degrees.append(m)
    return degrees


def made_masks(degrees: list[torch.Tensor], n_params: int = 1) -> list[torch.Tensor]:
    """Masks ``(out_features, in_features)`` for each layer, the last one with
    ``n_params`` outputs per input.

    Hidden layers: ``M[k, j] = m_l(k) >= m_(l-1)(j)``; output layer:
    ``M[d, k] = m_in(d) > m_L(k)``, repeated ``n_params`` times (output ``p * D + d`` is
    parameter ``p`` of input ``d``).
    """
    masks = [
        (m_out[:, None] >= m_prev[None, :])
        for m_prev, m_out in zip(degrees[:-1], degrees[1:])
    ]
    out = degrees[0][:, None] > degrees[-1][None, :]
    masks.append(out.repeat(n_params, 1))
    return [m.float() for m in masks]


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 mask ``M`` (a buffer, reset with
    :meth:`set_mask`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: torch.Tensor) -> None:
        if mask.shape != self.weight.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match the weight's "
                f"{tuple(self.weight.shape)}"
            )
        self.mask.copy_(mask.to(self.mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MaskedMLP(nn.Module):
    """An MLP ``R^D -> R^(D x P)`` with the autoregressive property for ``order``
    (MADE).

    Parameters
    ----------
    n_in : int
        ``D``, the number of inputs (and of output groups).
    hidden_sizes : list of int
        Widths of the hidden layers (at least one).
    n_params : int
        ``P``, outputs per input (1 for a Bernoulli logit, 2 for a shift and log-scale,
        ...).
    order : permutation of ``0..D-1``, optional
        Generation order; default natural.
    activation : callable returning a module
        Nonlinearity between layers (default ``nn.ReLU``).
    context_dim : int
        Size of an optional conditioning input ``c`` that every hidden unit of the first
        layer may see (it carries no autoregressive constraint).
    generator : torch.Generator, optional
        Draws the hidden degrees; None spreads them evenly (deterministic masks).

    ``forward(x, context=None)`` returns ``(B, D, P)``: ``out[:, d, :]`` depends only on
    the inputs before ``d`` in ``order``. :meth:`reset_masks` draws new degrees
    (order-agnostic training, connectivity-agnostic ensembles).
    """

    def __init__(
        self,
        n_in: int,
        hidden_sizes: list[int],
        n_params: int = 1,
        *,
        order=None,
        activation=nn.ReLU,
        context_dim: int = 0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not hidden_sizes:
            raise ValueError(
                "MaskedMLP needs at least one hidden layer (hidden_sizes=[...])"
            )
        if n_params < 1:
            raise ValueError(f"n_params must be >= 1, got {n_params}")
        self.n_in, self.n_params, self.hidden_sizes = n_in, n_params, list(hidden_sizes)
        sizes = [n_in, *hidden_sizes]
        self.hidden = nn.ModuleList(
            MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.out = MaskedLinear(sizes[-1], n_in * n_params)
        self.context = (
            nn.Linear(context_dim, hidden_sizes[0], bias=False) if context_dim else None
        )
        self.act = activation()
        self.register_buffer("order", torch.arange(n_in))
        self.reset_masks(order=order, generator=generator)

    def reset_masks(
        self, *, order=None, generator: torch.Generator | None = None
    ) -> None:
        """New degrees (and masks) for ``order`` (default: keep the current order)."""
        order = self.order if order is None else check_order(order, self.n_in)
        degrees = made_degrees(
            self.n_in, self.hidden_sizes, order=order.cpu(), generator=generator
        )
        for layer, mask in zip(
            [*self.hidden, self.out], made_masks(degrees, self.n_params)
        ):
            layer.set_mask(mask)
        self.order.copy_(order)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.shape[-1] != self.n_in:
            raise ValueError(
                f"expected inputs with {self.n_in} features, got shape {tuple(x.shape)}"
            )
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if i == 0 and self.context is not None:
                if context is None:
                    raise ValueError(
                        "this MaskedMLP was built with context_dim > 0: pass context="
                    )
                h = h + self.context(context)
            h = self.act(h)
        return (
            self.out(h).view(*x.shape[:-1], self.n_params, self.n_in).transpose(-1, -2)
        )
