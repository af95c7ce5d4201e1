"""PixelCNN: masked convolutions for binary images (van den Oord et al. 2016).

Pixels are generated in raster order (row by row, left to right). A convolution is made
autoregressive by zeroing the kernel at every position that comes *after* the centre
pixel in that order:

* mask **A** (first layer) also zeroes the centre: output (i, j) sees only pixels before
(i, j);
* mask **B** (later layers) keeps the centre: a feature at (i, j) may use the feature
computed
  at (i, j) itself, which (by induction from the A layer) already excludes pixel (i, j).

Stacking them gives ``logits[:, i, j]`` that depend only on the pixels before
``(i, j)``, so ``p(x) = prod_{i,j} p(x_ij | x_before_ij)`` is exact, and all ``H W``
conditionals come out of one pass. Plain stacks of 3x3 masked convolutions have a *blind
spot* (pixels above and to the right that are allowed but never seen); the gated
PixelCNN removes it with separate vertical and horizontal stacks.

Notation: x (B, H*W) or (B, H, W) binary, row-major; logits (B, H*W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_binary

from .base import BinaryAutoregressive, bernoulli_log_prob, marginal_log_odds

__all__ = ["MaskedConv2d", "PixelCNN"]


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded odd-sized convolution whose kernel is zero after the centre in
    raster order.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    mask_type : {"A", "B"}
        "A" also zeroes the centre (first layer), "B" keeps it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str = "B",
    ):
        if mask_type not in ("A", "B"):
            raise ValueError(
                "mask_type must be 'A' (first layer: centre excluded) or 'B'; got "
                f"{mask_type!r}"
            )
        if kernel_size % 2 != 1:
            raise ValueError(
                f"kernel_size must be odd so the centre is a pixel; got {kernel_size}"
            )
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2
        )
        # [maths:pixelcnn.mask]
        k, c = kernel_size, kernel_size // 2
        mask = torch.ones(k, k)
        # centre row: the centre (A only) and everything right of it
        mask[c, c + (mask_type == "B") :] = 0
        mask[c + 1 :] = 0  # every row below the centre
        # [/maths:pixelcnn.mask]
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None])

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(BinaryAutoregressive):
    """A small PixelCNN for binary images: one mask-A layer, ``n_layers`` mask-B layers,
    1x1 output layers.

    Parameters
    ----------
    shape : (height, width)
        Image size; inputs are (B, height*width) row-major, or (B, height, width).
    channels : int
        Feature maps per layer.
    n_layers : int
        Number of 3x3 (``hidden_kernel``) mask-B layers after the first.
    kernel_size : int
        The first (mask-A) layer's kernel (odd).
    hidden_kernel : int
        The mask-B layers' kernel (odd).

    Hidden layers are residual (``f <- f + relu(conv_B(f))``), which trains faster and
    does not change which pixels each output sees; each pixel position has its own
    output bias.
    """

    def __init__(
        self,
        shape: tuple[int, int] = (8, 8),
        channels: int = 32,
        n_layers: int = 4,
        kernel_size: int = 5,
        hidden_kernel: int = 3,
    ):
        super().__init__()
        self.shape = tuple(shape)
        self.n_in = self.shape[0] * self.shape[1]
        self.first = MaskedConv2d(1, channels, kernel_size, "A")
        self.hidden = nn.ModuleList(
            MaskedConv2d(channels, channels, hidden_kernel, "B")
            for _ in range(n_layers)
        )
        self.out = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, 1, 1),
        )
        self.bias = nn.Parameter(
            torch.zeros(self.n_in)
        )  # one output bias per pixel position

    @torch.no_grad()
    def init_bias_from_data(self, x: Tensor) -> None:
        """Start as independent pixels: the per-pixel output biases = the data's
        log-odds.
        """
        self.bias.copy_(marginal_log_odds(self._images(x).to(self.bias)))

    def _images(self, x: Tensor) -> Tensor:
        H, W = self.shape
        if x.ndim == 3 and tuple(x.shape[1:]) == self.shape:
            x = x.reshape(len(x), -1)
        if x.ndim != 2 or x.shape[1] != H * W:
            raise ValueError(
                f"PixelCNN{self.shape} expects x of shape (B, {H * W}) or (B, {H}, "
                f"{W}); got {tuple(x.shape)}"
            )
        check_binary(x, name="x", model="PixelCNN")
        return x

    def logits(self, x: Tensor) -> Tensor:
        """``logits[:, i*W + j] = logit p(x_ij = 1 | pixels before (i, j))``, (B, H*W)
        -> (B, H*W).
        """
        x = self._images(x)
        f = self.first(x.view(-1, 1, *self.shape))  # (B, C, H, W)
        for conv in self.hidden:
            f = f + F.relu(conv(F.relu(f)))
        return self.out(f).reshape(len(x), -1) + self.bias  # (B, H*W)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, (B, H*W) -> (B,)."""
        x = self._images(x)
        return bernoulli_log_prob(self.logits(x), x).sum(1)
