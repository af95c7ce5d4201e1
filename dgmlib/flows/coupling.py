"""Affine coupling layers and RealNVP (Dinh et al. 2015, 2017).

Notation
--------
x : (B, D)        input of the layer (density direction), z : (B, D) its output
m : (D,) in {0,1} the mask: the coordinates with m = 1 pass through unchanged and
condition the rest
s, t : (B, D)     log-scale and shift computed from the unchanged coordinates x * m

An affine coupling layer (eq. 6-7 of Dinh et al. 2017, written for the density
direction)

    z = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x))

has a triangular Jacobian (after ordering the unchanged coordinates first) whose
diagonal is ``1`` on the unchanged coordinates and ``exp(s)`` on the others, so

    log|det dz/dx| = sum_i (1 - m_i) s_i(m * x),

O(D), whatever the networks ``s`` and ``t`` are. The inverse is as cheap as the forward:
``x = m * z + (1 - m) * (z - t(m * z)) * exp(-s(m * z))`` (``m * z = m * x``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import ActNorm, Flow, Transform, check_input

__all__ = [
    "AffineCoupling",
    "ConvAffineCoupling",
    "RealNVP",
    "mlp",
    "alternating_masks",
]


def mlp(
    n_in: int, hidden: int, n_out: int, n_hidden_layers: int = 2, activation=nn.ReLU
) -> nn.Sequential:
    """An MLP n_in -> hidden (x n_hidden_layers) -> n_out whose last layer starts at
    zero.

    The zero start makes every coupling layer the identity at initialisation
    (as in Glow), which keeps deep flows stable in their first steps.
    """
    layers, width = [], n_in
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden), activation()]
        width = hidden
    last = nn.Linear(width, n_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def alternating_masks(dim: int, n_layers: int) -> list[Tensor]:
    """Masks for ``n_layers`` couplings, cycling through: even coordinates, odd
    coordinates, first half, second half (each mask is followed by its complement).

    Every coordinate is transformed by every other layer, and conditioned on both its
    neighbours (parity) and on far-away coordinates (halves). For ``dim = 2`` this
    simply alternates between transforming x_2 given x_1 and x_1 given x_2.
    """
    if dim < 2:
        raise ValueError(
            "a coupling layer needs dim >= 2 (one part conditions the other); got "
            f"dim={dim}"
        )
    even = (torch.arange(dim) % 2 == 0).float()
    first = (torch.arange(dim) < dim // 2).float()
    cycle = [even, 1 - even, first, 1 - first]
    return [cycle[k % 4] for k in range(n_layers)]


class AffineCoupling(Transform):
    """RealNVP's affine coupling layer on vectors (B, D) with a fixed binary mask.

    Parameters
    ----------
    mask : (D,) tensor of 0/1
        1 marks the coordinates that pass through and condition the others.
    hidden : int
        Width of the network computing (s, t).
    n_hidden_layers : int
        Depth of that network.

    The log-scale is ``s = scale * tanh(raw)`` with a learned per-coordinate ``scale``:
    the tanh keeps early training stable, the scale lets |s| grow where the data need
    it.
    """

    def __init__(
        self, mask: Tensor, hidden: int, n_hidden_layers: int = 2, activation=nn.ReLU
    ):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.get_default_dtype()).flatten()
        if not bool(((mask == 0) | (mask == 1)).all()) or mask.sum() in (
            0,
            mask.numel(),
        ):
            raise ValueError(
                "AffineCoupling: mask must be 0/1 with at least one 0 and one 1; "
                f"got {mask.tolist()[:12]}"
            )
        self.dim = mask.numel()
        self.register_buffer("mask", mask)
        self.register_buffer("inv_mask", 1 - mask)
        self.net = mlp(self.dim, hidden, 2 * self.dim, n_hidden_layers, activation)
        self.scale = nn.Parameter(torch.ones(self.dim))

    def _s_t(self, x_masked: Tensor) -> tuple[Tensor, Tensor]:
        """(s, t), each (B, D), zero where m = 1 (so those coordinates pass through
        unchanged).
        """
        raw_s, t = self.net(x_masked).chunk(2, dim=1)  # (B, D) each
        return self.scale * torch.tanh(raw_s) * self.inv_mask, t * self.inv_mask

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.dim,), "AffineCoupling")
        s, t = self._s_t(x * self.mask)
        z = x * torch.exp(s) + t  # = x where m = 1, since s = t = 0 there
        return z, s.sum(1)  # log|det dz/dx| = sum of (1 - m) s, (B,)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (self.dim,), "AffineCoupling", "z")
        s, t = self._s_t(z * self.mask)  # m * z = m * x: the same s and t
        x = (z - t) * torch.exp(-s)
        return x, -s.sum(1)


class ConvAffineCoupling(Transform):
    """Glow's affine coupling on images (B, C, H, W): the first C/2 channels condition
    the rest.

    (s, t) come from a small convolutional net (3x3, 1x1, 3x3 with the last one
    zero-initialised) of the first half; log|det| = sum of s over the second half's
    channels and pixels.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(
                "ConvAffineCoupling needs an even number of channels >= 2; got "
                f"{channels}. Squeeze the image first (Squeeze turns C x H x W into "
                "4C x H/2 x W/2)."
            )
        self.channels, half = channels, channels // 2
        last = nn.Conv2d(hidden, 2 * half, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(
            nn.Conv2d(half, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            last,
        )
        self.scale = nn.Parameter(torch.ones(1, half, 1, 1))

    def _s_t(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.net(xa).chunk(2, dim=1)  # (B, C/2, H, W) each
        return self.scale * torch.tanh(raw_s), t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.channels, None, None), "ConvAffineCoupling")
        xa, xb = x.chunk(2, dim=1)
        s, t = self._s_t(xa)
        return torch.cat([xa, xb * torch.exp(s) + t], 1), s.flatten(1).sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (self.channels, None, None), "ConvAffineCoupling", "z")
        za, zb = z.chunk(2, dim=1)
        s, t = self._s_t(za)
        return torch.cat([za, (zb - t) * torch.exp(-s)], 1), -s.flatten(1).sum(1)


class RealNVP(Flow):
    """RealNVP (Dinh et al. 2017): affine couplings with alternating masks over a
    N(0, I) base.

    Parameters
    ----------
    dim : int
        ``D`` (>= 2).
    n_layers : int
        Number of coupling layers; consecutive layers transform complementary
        coordinates.
    hidden : int
        Width of each coupling network.
    n_hidden_layers : int
        Depth of each coupling network.
    actnorm : bool
        Put an :class:`~dgmlib.flows.base.ActNorm` before every coupling (Glow's
        replacement for RealNVP's batch normalisation).
    preprocess : Transform, optional
        A first transform applied to the data, e.g. :class:`~dgmlib.flows.base.Logit`
        for pixels.

    Examples
    --------
    >>> flow = RealNVP(2, 6, 64)
    >>> flow.log_prob(torch.randn(5, 2)).shape
    torch.Size([5])
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
    ):
        if n_layers < 1:
            raise ValueError(f"RealNVP: n_layers must be >= 1; got {n_layers}")
        transforms: list[Transform] = [preprocess] if preprocess is not None else []
        for mask in alternating_masks(dim, n_layers):
            if actnorm:
                transforms.append(ActNorm(dim))
            transforms.append(AffineCoupling(mask, hidden, n_hidden_layers))
        super().__init__(transforms, dim)
