"""A small DCGAN for 8x8 digit images (Radford et al., 2015), optionally conditional on
a class label (Mirza & Osindero, 2014).

Images travel flat, (B, 64) in [0, 1], as :func:`dgmlib.data.load_digits` returns them
and as :func:`dgmlib.adversarial.fit_gan` and the digit classifier of
:mod:`dgmlib.evaluate` expect; the networks reshape to (B, 1, 8, 8) inside.

Radford et al.'s recipe, scaled down: the generator upsamples with strided transposed
convolutions (no pooling, no fully connected hidden layers beyond the projection of z),
batch normalisation after each of its hidden layers and ReLU; the discriminator
downsamples with strided convolutions and leaky ReLU (slope 0.2). The discriminator
has no batch normalisation here, so that its only stochastic units are the dropout ones
whose effect §20.10.4 describes (``dropout`` > 0). The label enters G as a one-hot
vector concatenated to z and D as ten constant one-hot feature maps stacked on the
image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]


def _check_labels(y: Tensor | None, n_classes: int, batch: int, who: str) -> None:
    if n_classes == 0:
        if y is not None:
            raise ValueError(
                f"{who} was built with n_classes=0 (unconditional) but got labels; "
                "build it with n_classes > 0 for a conditional GAN"
            )
        return
    if y is None or y.dim() != 1 or y.shape[0] != batch:
        got = None if y is None else tuple(y.shape)
        raise ValueError(
            f"{who} is conditional (n_classes={n_classes}): it needs integer labels "
            f"of shape ({batch},); got {got}"
        )
    if y.dtype.is_floating_point or int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(
            f"{who}: labels must be integers in [0, {n_classes}); got dtype "
            f"{y.dtype}, range [{y.min().item()}, {y.max().item()}]"
        )


class DCGANGenerator(nn.Module):
    """x = G(z) or G(z, y): (B, latent_dim) [and (B,) labels] -> (B, 64) in [0, 1].

    z (+ one-hot y) -> linear -> (2w, 2, 2) -> BN, ReLU -> transposed conv 4x4 stride 2
    -> (w, 4, 4) -> BN, ReLU -> transposed conv 4x4 stride 2 -> (1, 8, 8) -> sigmoid.
    """

    def __init__(self, latent_dim: int, *, width: int = 32, n_classes: int = 0):
        super().__init__()
        if latent_dim < 1 or width < 1 or n_classes < 0:
            raise ValueError(
                "DCGANGenerator needs latent_dim >= 1, width >= 1, n_classes >= 0; "
                f"got {latent_dim}, {width}, {n_classes}"
            )
        self.latent_dim, self.width, self.n_classes = latent_dim, width, n_classes
        self.project = nn.Linear(latent_dim + n_classes, 2 * width * 2 * 2)
        self.bn0 = nn.BatchNorm2d(2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"DCGANGenerator expects z of shape (B, {self.latent_dim}); got "
                f"{tuple(z.shape)}"
            )
        _check_labels(y, self.n_classes, z.shape[0], "DCGANGenerator")
        if self.n_classes:
            z = torch.cat([z, F.one_hot(y, self.n_classes).to(z)], 1)
        h = self.project(z).view(-1, 2 * self.width, 2, 2)
        h = F.relu(self.bn0(h))  # (B, 2w, 2, 2)
        h = F.relu(self.bn1(self.up1(h)))  # (B, w, 4, 4)
        return torch.sigmoid(self.up2(h)).flatten(1)  # (B, 64)


class DCGANDiscriminator(nn.Module):
    """A logit l(x) or l(x, y): (B, 64) [and (B,) labels] -> (B, 1).

    (1 [+ n_classes], 8, 8) -> conv 4x4 stride 2 -> (w, 4, 4) -> leaky ReLU, dropout ->
    conv 4x4 stride 2 -> (2w, 2, 2) -> leaky ReLU, dropout -> linear -> 1. ``dropout``
    is the probability of dropping a unit (PyTorch's convention: kept units are scaled
    by 1 / (1 - p) in training, so eval mode is the deterministic network).
    """

    def __init__(self, *, width: int = 32, n_classes: int = 0, dropout: float = 0.0):
        super().__init__()
        if width < 1 or n_classes < 0 or not 0 <= dropout < 1:
            raise ValueError(
                "DCGANDiscriminator needs width >= 1, n_classes >= 0 and 0 <= dropout "
                f"< 1; got {width}, {n_classes}, {dropout}"
            )
        self.n_classes = n_classes
        self.down1 = nn.Conv2d(1 + n_classes, width, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * width * 2 * 2, 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != 64:
            raise ValueError(
                "DCGANDiscriminator expects flat 8x8 images of shape (B, 64); got "
                f"{tuple(x.shape)}"
            )
        _check_labels(y, self.n_classes, x.shape[0], "DCGANDiscriminator")
        h = x.view(-1, 1, 8, 8)
        if self.n_classes:
            maps = F.one_hot(y, self.n_classes).to(x)[:, :, None, None]
            h = torch.cat([h, maps.expand(-1, -1, 8, 8)], 1)
        h = self.drop(F.leaky_relu(self.down1(h), 0.2))  # (B, w, 4, 4)
        h = self.drop(F.leaky_relu(self.down2(h), 0.2))  # (B, 2w, 2, 2)
        return self.out(h.flatten(1))
