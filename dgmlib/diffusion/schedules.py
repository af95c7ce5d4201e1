"""Noise schedules beta_1..beta_T of a diffusion's forward chain (§20.13).

linear_betas(T)         Ho et al. (2020): beta_t from 1e-4 to 0.02, linearly
sohl_dickstein_betas(T) Sohl-Dickstein et al. (2015), binomial diffusion:
                        beta_t = 1 / (T - t + 1), which erases the same fraction of
                        the remaining signal each step (alpha_bar_t = 1 - t / T)
check_betas(betas)      the validation every diffusion runs on its schedule
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["linear_betas", "sohl_dickstein_betas", "check_betas"]


def check_betas(betas, *, allow_one: bool = False) -> Tensor:
    """``betas`` as a float64 (T,) tensor, each in (0, 1) (or (0, 1] with
    ``allow_one``); a ValueError saying what was wrong otherwise.
    """
    b = torch.as_tensor(betas, dtype=torch.float64)
    if b.ndim != 1 or b.numel() == 0:
        raise ValueError(
            f"betas must be a non-empty 1-D schedule (T,); got shape {tuple(b.shape)}"
        )
    hi_ok = (b <= 1) if allow_one else (b < 1)
    if not bool(((b > 0) & hi_ok).all()) or not bool(torch.isfinite(b).all()):
        side = "(0, 1]" if allow_one else "(0, 1)"
        raise ValueError(
            f"every beta_t must lie in {side} (a fraction of variance per step); got "
            f"values in [{float(b.min()):.4g}, {float(b.max()):.4g}]. Use e.g. "
            "dgmlib.diffusion.linear_betas(T)."
        )
    return b


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> Tensor:
    """Ho et al.'s (2020) linear schedule, (T,) float64."""
    if T < 1:
        raise ValueError(f"T must be >= 1; got {T}")
    return check_betas(torch.linspace(beta_1, beta_T, T, dtype=torch.float64))


def sohl_dickstein_betas(T: int) -> Tensor:
    """beta_t = 1 / (T - t + 1), t = 1..T: beta_T = 1 ends the chain exactly at the
    stationary distribution (Sohl-Dickstein et al. 2015, binomial diffusion).
    """
    if T < 1:
        raise ValueError(f"T must be >= 1; got {T}")
    t = torch.arange(1, T + 1, dtype=torch.float64)
    return 1.0 / (T - t + 1)
