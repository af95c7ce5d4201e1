"""Autoregressive flows: MAF (Papamakarios et al. 2017) and IAF (Kingma et al. 2016).

Notation
--------
x : (B, D)            data side, z : (B, D) base side
mu, alpha : (B, D)    shift and log-scale from a MADE network
(:class:`dgmlib.masked.MaskedMLP`) o                     the ordering: coordinate i may
depend on the coordinates before it in o

Both layers are the same affine autoregressive map; they differ in *which side* the MADE
network reads, and that decides which direction costs one pass and which costs D passes.

MAF (masked autoregressive flow): the network reads the data x,

    z_i = (x_i - mu_i(x_<i)) * exp(-alpha_i(x_<i)),     log|det dz/dx| = -sum_i
    alpha_i(x_<i).

Density evaluation (x -> z) is one network pass; sampling (z -> x) must produce x_1,
then x_2 from x_1, ...: D sequential passes.

IAF (inverse autoregressive flow): the network reads the base variables z,

    x_i = mu_i(z_<i) + exp(alpha_i(z_<i)) * z_i,        log|det dx/dz| = sum_i
    alpha_i(z_<i).

Sampling (z -> x) is one pass; the density of an arbitrary x needs z_1, then z_2, ...: D
passes. IAF therefore suits variational posteriors (sample, and score one's own samples,
which comes for free since we know z); MAF suits density estimation.

Both Jacobians are triangular in the order o, so log|det| is a sum of D terms (O(D)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..masked import MaskedMLP
from .base import ActNorm, Flow, Transform, check_input

__all__ = ["MAFLayer", "IAFLayer", "MAF", "IAF"]


class _AffineAutoregressive(Transform):
    """What MAF and IAF layers share: the MADE network and its (mu, alpha) outputs."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        *,
        n_hidden_layers: int = 2,
        order=None,
        activation=nn.ReLU,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(
                f"{type(self).__name__}: dim must be a positive int; got {dim!r}"
            )
        self.dim = dim
        self.net = MaskedMLP(
            dim,
            [hidden] * n_hidden_layers,
            2,
            order=order,
            activation=activation,
            generator=generator,
        )
        nn.init.zeros_(self.net.out.weight)  # start as the identity map
        nn.init.zeros_(self.net.out.bias)
        self.scale = nn.Parameter(torch.ones(dim))

    @property
    def order(self) -> Tensor:
        return self.net.order

    def params(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, alpha), each (B, D): coordinate i depends only on v's coordinates before
        i in the order.
        """
        out = self.net(v)  # (B, D, 2)
        mu, raw = out[..., 0], out[..., 1]
        return mu, self.scale * torch.tanh(raw)  # bounded log-scale, learned range


class MAFLayer(_AffineAutoregressive):
    """One MAF layer: density in one pass, sampling in D passes (the network reads x).

    Parameters
    ----------
    dim : int
        ``D``.
    hidden : int
        Width of the MADE hidden layers.
    n_hidden_layers : int
        Number of MADE hidden layers.
    order : permutation of 0..D-1, optional
        Autoregressive order (default natural).
    generator : torch.Generator, optional
        Draws MADE's hidden degrees (None: evenly spread, deterministic).
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.dim,), "MAFLayer")
        mu, alpha = self.params(x)  # one pass
        z = (x - mu) * torch.exp(-alpha)
        return z, -alpha.sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (self.dim,), "MAFLayer", "z")
        x = torch.zeros_like(z)
        for _ in range(self.dim):  # pass k fixes the k-th coordinate of the order
            mu, alpha = self.params(x)
            x = mu + torch.exp(alpha) * z
        return x, alpha.sum(1)


class IAFLayer(_AffineAutoregressive):
    """One IAF layer: sampling in one pass, density of a given x in D passes
    (the network reads z).

    Same parameters as :class:`MAFLayer`.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.dim,), "IAFLayer")
        z = torch.zeros_like(x)
        for _ in range(self.dim):  # pass k fixes the k-th coordinate of the order
            mu, alpha = self.params(z)
            z = (x - mu) * torch.exp(-alpha)
        return z, -alpha.sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (self.dim,), "IAFLayer", "z")
        mu, alpha = self.params(z)  # one pass
        return mu + torch.exp(alpha) * z, alpha.sum(1)


def _stack(
    layer_cls, dim, n_layers, hidden, n_hidden_layers, actnorm, preprocess, generator
):
    if n_layers < 1:
        raise ValueError(
            f"{layer_cls.__name__[:3]}: n_layers must be >= 1; got {n_layers}"
        )
    transforms: list[Transform] = [preprocess] if preprocess is not None else []
    natural = torch.arange(dim)
    for k in range(n_layers):
        if actnorm:
            transforms.append(ActNorm(dim))
        order = (
            natural if k % 2 == 0 else natural.flip(0)
        )  # alternate: each layer sees the other end first
        transforms.append(
            layer_cls(
                dim,
                hidden,
                n_hidden_layers=n_hidden_layers,
                order=order,
                generator=generator,
            )
        )
    return transforms


class MAF(Flow):
    """Masked autoregressive flow: ``n_layers`` MAF layers with alternately reversed
    orders.

    Parameters
    ----------
    dim, n_layers, hidden : int
        ``D``, number of layers, MADE width.
    n_hidden_layers : int
        MADE depth.
    actnorm : bool
        An :class:`~dgmlib.flows.base.ActNorm` before each layer
        (MAF uses batch norm there).
    preprocess : Transform, optional
        First transform of the data, e.g. :class:`~dgmlib.flows.base.Logit`.
    generator : torch.Generator, optional
        MADE degrees (keyword-only).

    ``log_prob`` costs one pass per layer; ``sample`` costs D passes per layer.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        hidden: int,
        *,
        n_hidden_layers: int = 2,
        actnorm: bool = False,
        preprocess: Transform | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__(
            _stack(
                MAFLayer,
                dim,
                n_layers,
                hidden,
                n_hidden_layers,
                actnorm,
                preprocess,
                generator,
            ),
            dim,
        )


class IAF(Flow):
    """Inverse autoregressive flow: ``n_layers`` IAF layers; same parameters as
    :class:`MAF`.

    ``sample`` and
    :meth:`~dgmlib.flows.base.Flow.rsample_with_log_prob` cost one pass per layer;
    ``log_prob``
    of a given x costs D passes per layer.
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        hidden: int,
        *,
        n_hidden_layers: int = 2,
        actnorm: bool = False,
        preprocess: Transform | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__(
            _stack(
                IAFLayer,
                dim,
                n_layers,
                hidden,
                n_hidden_layers,
                actnorm,
                preprocess,
                generator,
            ),
            dim,
        )
