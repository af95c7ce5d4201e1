"""MADE: the masked autoencoder for distribution estimation (Germain et al. 2015).

An ordinary MLP ``x -> logits`` becomes autoregressive when weights are zeroed by masks
(:class:`dgmlib.masked.MaskedMLP`): output ``d`` then depends only on the inputs before
``d`` in the order, and ``sigmoid(logits[:, d]) = p(x_d = 1 | x_before_d)``. All D
conditionals come out of one pass of the network, like NADE's; unlike NADE (one hidden
group per conditional, shared weights, eq. 20.83) MADE shares *hidden units* between
conditionals.

Notation
--------
x : (B, D) binary
logits : (B, D)             one Bernoulli logit per input
mask k : a draw of the hidden units' degrees (and, order-agnostic, of the order); MADE
with
         ``n_masks`` masks cycles through them in training and averages them at test
         time: ``p(x) = (1/K) sum_k p(x | mask k)``, the ensemble of eq. 20.84 over
         connectivities.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgmlib.masked import MaskedMLP

from .base import (
    bernoulli_log_prob,
    check_binary_input,
    check_order,
    marginal_log_odds,
    sample_sequential,
)

__all__ = ["MADE"]


class MADE(nn.Module):
    """MADE for binary vectors, with one mask or an ensemble of ``n_masks``.

    Parameters
    ----------
    n_in : int
        ``D``.
    hidden_sizes : int or list of int
        Widths of the hidden layers.
    n_masks : int
        ``K``. With ``K = 1`` the hidden degrees are spread evenly
        (a deterministic mask) over ``order``. With ``K > 1`` mask ``k`` draws its
        degrees (and, if ``order_agnostic``, its order) from a seed fixed at
        construction, so the same ``K`` masks come back every time.
    order : permutation of ``0..D-1``, optional
        Generation order (natural when omitted; the base order when ``order_agnostic``
        is false).
    order_agnostic : bool
        Whether each of the ``K`` masks also draws its own random order.
    activation : callable returning a module
        Hidden nonlinearity (default ``nn.ReLU``).
    generator : torch.Generator, optional
        Draws the ``K`` mask seeds. (Weights use torch's default initialisation.)

    ``log_prob(x)`` is the exact log-probability of the ensemble (of the single model
    when ``K = 1``); ``log_prob(x, mask=k)`` that of mask ``k`` alone.
    """

    def __init__(
        self,
        n_in: int,
        hidden_sizes,
        n_masks: int = 1,
        *,
        order=None,
        order_agnostic: bool = False,
        activation=nn.ReLU,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        hidden_sizes = (
            [hidden_sizes] if isinstance(hidden_sizes, int) else list(hidden_sizes)
        )
        if n_masks < 1:
            raise ValueError(f"MADE needs n_masks >= 1; got {n_masks}")
        self.n_in, self.n_masks, self.order_agnostic = n_in, n_masks, order_agnostic
        base = check_order(torch.arange(n_in) if order is None else order, n_in)
        self.register_buffer("base_order", base)
        self.register_buffer(
            "mask_seeds", torch.randint(0, 2**62, (n_masks,), generator=generator)
        )
        self.net = MaskedMLP(n_in, hidden_sizes, 1, order=base, activation=activation)
        self.current_mask = 0
        self.set_mask(0)

    @property
    def order(self) -> Tensor:
        """The order of the current mask."""
        return self.net.order

    def set_mask(self, k: int) -> None:
        """Use mask ``k`` (0 <= k < n_masks): its degrees, and its order if
        order-agnostic.
        """
        if not 0 <= k < self.n_masks:
            raise ValueError(f"mask index must lie in [0, {self.n_masks - 1}]; got {k}")
        if self.n_masks == 1:  # one deterministic mask, set at construction
            self.current_mask = 0
            return
        gk = torch.Generator().manual_seed(int(self.mask_seeds[k]))
        order = (
            torch.randperm(self.n_in, generator=gk)
            if self.order_agnostic
            else self.base_order.cpu()
        )
        self.net.reset_masks(order=order, generator=gk)
        self.current_mask = k

    @torch.no_grad()
    def init_bias_from_data(self, x: Tensor) -> None:
        """Start as independent pixels: the output biases = the data's log-odds
        (every mask shares them).
        """
        self.net.out.bias.copy_(marginal_log_odds(x.to(self.net.out.bias)))

    def reset_masks(
        self, *, order=None, generator: torch.Generator | None = None
    ) -> None:
        """New connectivity. With one mask: new hidden degrees drawn with ``generator``
        (evenly spread when None) for ``order`` (default: keep the current one). With
        ``K > 1``: ``K`` new mask seeds drawn with ``generator`` (and ``order`` as the
        new base order).
        """
        if order is not None:
            self.base_order.copy_(check_order(order, self.n_in))
        if self.n_masks == 1:
            self.net.reset_masks(order=self.base_order.cpu(), generator=generator)
            return
        self.mask_seeds.copy_(
            torch.randint(0, 2**62, (self.n_masks,), generator=generator)
        )
        self.set_mask(0)

    def logits(self, x: Tensor, *, mask: int | None = None) -> Tensor:
        """``logits[:, d] = logit p(x_d = 1 | x_before_d)`` under mask ``mask``
        (default: the current one), (B, D).
        """
        check_binary_input(x, self.n_in, "MADE")
        if mask is not None and mask != self.current_mask:
            self.set_mask(mask)
        return self.net(x)[..., 0]  # (B, D, 1) -> (B, D)

    def log_prob(self, x: Tensor, *, mask: int | None = None) -> Tensor:
        """Exact ``log p(x)`` in nats, (B, D) -> (B,).

        ``mask=None``: the ensemble ``log (1/K) sum_k p(x | mask k)`` (eq. 20.84; for K
        = 1 the one model). ``mask=k``: mask ``k`` alone (what one training step uses).
        """
        if mask is not None or self.n_masks == 1:
            return bernoulli_log_prob(self.logits(x, mask=mask), x).sum(1)
        keep = self.current_mask
        logs = torch.stack(
            [self.log_prob(x, mask=k) for k in range(self.n_masks)]
        )  # (K, B)
        self.set_mask(keep)
        return torch.logsumexp(logs, 0) - math.log(self.n_masks)

    def cycle_log_prob(self, x: Tensor) -> Tensor:
        """Move to the next mask (cyclically) and return ``log p(x | that mask)``: the
        training objective of MADE with ``K`` masks (each minibatch trains one of them).
        """
        return self.log_prob(x, mask=(self.current_mask + 1) % self.n_masks)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        mask: int | None = None,
        record_every: int | None = None,
    ):
        """Ancestral samples (n, D): ``D`` passes of the network, one new variable per
        pass.

        ``mask=None`` samples the ensemble (each sample from a uniformly chosen mask, K
        > 1), ``mask=k`` the model of mask ``k``. ``record_every`` also returns the
        partial samples every ``record_every`` steps (single mask only).
        """
        dev = self.mask_seeds.device
        dtype = next(self.parameters()).dtype
        if mask is None and self.n_masks > 1:
            if record_every:
                raise ValueError("record_every needs a single mask: pass mask=k")
            where = generator.device if generator is not None else dev
            ks = torch.randint(
                0, self.n_masks, (n,), generator=generator, device=where
            ).to(dev)
            out = torch.zeros(n, self.n_in, device=dev, dtype=dtype)
            keep = self.current_mask
            for k in ks.unique().tolist():
                rows = (ks == k).nonzero().flatten()
                out[rows] = self.sample(len(rows), generator=generator, mask=k)
            self.set_mask(keep)
            return out
        if mask is not None:
            self.set_mask(mask)
        return sample_sequential(
            lambda v: self.net(v)[..., 0],
            n,
            self.order,
            generator=generator,
            record_every=record_every,
            device=dev,
            dtype=dtype,
        )
