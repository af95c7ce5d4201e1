"""Glow (Kingma & Dhariwal 2018): actnorm, invertible 1x1 convolution, affine coupling.

Notation
--------
W : (C, C)      the 1x1 convolution's matrix, mixing the C channels at every pixel
W = P L (U + diag(sign(s) * exp(log_s)))
                its LU parametrisation: P a fixed permutation, L unit lower triangular,
                U strictly upper triangular, s the diagonal of the U factor

A 1x1 convolution applies the same C x C matrix to every pixel of a (B, C, H, W) image
(for a vector (B, D) it is just z = W x, the case H = W = 1). Its log-determinant is

    log|det dz/dx| = H * W * log|det W| = H * W * sum_i log_s_i

in the LU form: O(C) instead of the O(C^3) of a general determinant, and the inverse is
two triangular solves. A Glow *step* is ActNorm -> InvertibleConv1x1 -> affine coupling;
the 1x1 convolution is a learned generalisation of the fixed permutations between
RealNVP's couplings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import ActNorm, Flow, Reshape, Transform, check_input
from .coupling import AffineCoupling, ConvAffineCoupling

__all__ = ["InvertibleConv1x1", "Squeeze", "Glow"]


class InvertibleConv1x1(Transform):
    """Invertible 1x1 convolution with the LU parametrisation (Glow, section 3.2).

    Acts on vectors (B, C) as z = x W^T and on images (B, C, H, W) as a 1x1 convolution.

    Parameters
    ----------
    num_channels : int
        ``C``.
    generator : torch.Generator, optional
        Draws the random rotation W starts from (keyword-only).
    """

    def __init__(self, num_channels: int, *, generator: torch.Generator | None = None):
        super().__init__()
        if num_channels < 1:
            raise ValueError(
                f"InvertibleConv1x1: num_channels must be >= 1; got {num_channels}"
            )
        c = self.num_channels = num_channels
        where = generator.device if generator is not None else "cpu"
        w0 = torch.linalg.qr(
            torch.randn(
                c, c, generator=generator, device=where, dtype=torch.float64
            ).cpu()
        )[0]  # a rotation
        p, lower, upper = torch.linalg.lu(w0)
        s = torch.diagonal(upper)
        dtype = torch.get_default_dtype()
        self.register_buffer("P", p.to(dtype))
        self.register_buffer("sign_s", torch.sign(s).to(dtype))
        self.register_buffer("l_mask", torch.tril(torch.ones(c, c, dtype=dtype), -1))
        self.register_buffer("eye", torch.eye(c, dtype=dtype))
        self.lower = nn.Parameter(lower.to(dtype))
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
        self.log_s = nn.Parameter(torch.log(s.abs()).to(dtype))

    def factors(self) -> tuple[Tensor, Tensor, Tensor]:
        """(P, L, U): W = P @ L @ U with L unit lower and U upper triangular."""
        L = self.lower * self.l_mask + self.eye
        U = self.upper * self.l_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.P, L, U

    def weight(self) -> Tensor:
        """The dense (C, C) matrix W = P L U."""
        P, L, U = self.factors()
        return P @ L @ U

    def weight_inverse(self) -> Tensor:
        """W^{-1} = U^{-1} L^{-1} P^T by two triangular solves."""
        P, L, U = self.factors()
        l_inv_pt = torch.linalg.solve_triangular(
            L, P.T, upper=False, unitriangular=True
        )
        return torch.linalg.solve_triangular(U, l_inv_pt, upper=True)

    def _check(self, x: Tensor, name: str) -> None:
        if x.ndim == 4:
            check_input(x, (self.num_channels, None, None), "InvertibleConv1x1", name)
        else:
            check_input(x, (self.num_channels,), "InvertibleConv1x1", name)

    @staticmethod
    def _mix(x: Tensor, w: Tensor) -> Tensor:
        if x.ndim == 2:
            return x @ w.T  # (B, C)
        return nn.functional.conv2d(x, w[:, :, None, None])  # (B, C, H, W)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x, "x")
        pixels = math.prod(x.shape[2:]) if x.ndim == 4 else 1
        return self._mix(x, self.weight()), (self.log_s.sum() * pixels).expand(
            x.shape[0]
        )

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        self._check(z, "z")
        pixels = math.prod(z.shape[2:]) if z.ndim == 4 else 1
        return self._mix(z, self.weight_inverse()), (-self.log_s.sum() * pixels).expand(
            z.shape[0]
        )


class Squeeze(Transform):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels
    (log|det| = 0).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.channels, None, None), "Squeeze")
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width; got {h} x {w}")
        z = (
            x.reshape(b, c, h // 2, 2, w // 2, 2)
            .permute(0, 1, 3, 5, 2, 4)
            .reshape(b, 4 * c, h // 2, w // 2)
        )
        return z, x.new_zeros(b)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (4 * self.channels, None, None), "Squeeze", "z")
        b, _, h, w = z.shape
        x = (
            z.reshape(b, self.channels, 2, 2, h, w)
            .permute(0, 1, 4, 2, 5, 3)
            .reshape(b, self.channels, 2 * h, 2 * w)
        )
        return x, z.new_zeros(b)


class Glow(Flow):
    """Glow-style flow: ``n_steps`` steps of ActNorm -> InvertibleConv1x1 -> affine
    coupling.

    Parameters
    ----------
    dim : int
        ``D``; data and base are (B, D).
    n_steps : int
        Steps per level.
    hidden : int
        Width of the coupling networks (units for vectors, channels for images).
    image_shape : (C, H, W), optional
        Treat each example as an image of this shape: each of ``n_levels`` levels
        squeezes (C, H, W) -> (4C, H/2, W/2) and applies ``n_steps`` steps with 1x1
        convolutions and convolutional couplings. Without it the steps act on vectors
        (C = D, H = W = 1). (No multi-scale factoring-out of latents: every dimension
        goes through every level.)
    n_levels : int
        Levels for images.
    n_hidden_layers : int
        Depth of the vector coupling networks.
    preprocess : Transform, optional
        First transform of the data, e.g. :class:`~dgmlib.flows.base.Logit`.
    generator : torch.Generator, optional
        Draws the initial 1x1-convolution rotations (keyword-only).
    """

    def __init__(
        self,
        dim: int,
        n_steps: int,
        hidden: int,
        *,
        image_shape: Sequence[int] | None = None,
        n_levels: int = 1,
        n_hidden_layers: int = 2,
        preprocess: Transform | None = None,
        generator: torch.Generator | None = None,
    ):
        if n_steps < 1:
            raise ValueError(f"Glow: n_steps must be >= 1; got {n_steps}")
        transforms: list[Transform] = [preprocess] if preprocess is not None else []
        if image_shape is None:
            if dim < 2:
                raise ValueError(f"Glow needs dim >= 2 for its couplings; got {dim}")
            half = (
                torch.arange(dim) < dim // 2
            ).float()  # first half conditions the rest
            for _ in range(n_steps):
                transforms += [
                    ActNorm(dim),
                    InvertibleConv1x1(dim, generator=generator),
                    AffineCoupling(half, hidden, n_hidden_layers),
                ]
        else:
            c, h, w = (int(s) for s in image_shape)
            if c * h * w != dim:
                raise ValueError(
                    f"Glow: image_shape {tuple(image_shape)} holds {c * h * w} "
                    f"values, not dim={dim}"
                )
            if h % 2**n_levels or w % 2**n_levels:
                raise ValueError(
                    f"Glow: {n_levels} levels halve H and W {n_levels} times; {h} x "
                    f"{w} does not allow it"
                )
            transforms.append(Reshape((dim,), (c, h, w)))
            for _ in range(n_levels):
                transforms.append(Squeeze(c))
                c, h, w = 4 * c, h // 2, w // 2
                for _ in range(n_steps):
                    transforms += [
                        ActNorm(c),
                        InvertibleConv1x1(c, generator=generator),
                        ConvAffineCoupling(c, hidden),
                    ]
            transforms.append(Reshape((c, h, w), (dim,)))
        super().__init__(transforms, dim)
