"""Small denoisers for diffusion: an MLP with a sinusoidal embedding of the step t.

``model(x_t, t)``: x_t (B, D), t (B,) long in 1..T -> (B, out_dim): eps for
:class:`~dgmlib.diffusion.GaussianDiffusion` (out_dim = 2 D with a learned variance),
logits of x_0 for :class:`~dgmlib.diffusion.BinomialDiffusion`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["DenoisingMLP", "time_embedding"]


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of steps t (B,) -> (B, dim) (Vaswani et al. 2017)."""
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10_000.0) * k / max(half - 1, 1))  # (half,)
    angle = t.float()[:, None] * freq[None]  # (B, half)
    return torch.cat([angle.sin(), angle.cos()], 1)


class _Block(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.time = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        a = self.lin1(nn.functional.silu(h)) + self.time(emb)
        return h + self.lin2(nn.functional.silu(a))  # residual


class DenoisingMLP(nn.Module):
    """x (B, D) and t (B,) -> (B, out_dim): input layer, ``n_blocks`` residual blocks,
    each told the step through a projection of its embedding, and a linear output.

    ``data_shape`` = (D,) tells the samplers what one example looks like.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        n_blocks: int = 2,
        *,
        out_dim: int | None = None,
        embed_dim: int = 32,
    ):
        super().__init__()
        self.data_shape = (dim,)
        self.embed_dim = embed_dim
        self.inp = nn.Linear(dim, hidden)
        self.time = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(n_blocks))
        self.out = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time(time_embedding(t, self.embed_dim).to(x.dtype))  # (B, H)
        h = self.inp(x) + emb  # (B, H)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(nn.functional.silu(h))  # (B, out_dim)
