"""Mode coverage of samples from a 2-D mixture (the VEEGAN / PacGAN protocol).

Srivastava et al. (2017) and Lin et al. (2018) judge a generator trained on a mixture
of K isotropic Gaussians N(mu_k, std^2 I) by 2,500 of its samples:

    nearest mode    k(x) = argmin_k ||x - mu_k||
    high quality    ||x - mu_k(x)|| <= threshold * std        (threshold = 3)
    modes covered   #{k : at least one high-quality sample has k(x) = k}
    reverse KL      KL(p_hat || uniform) = sum_k p_hat_k log(K p_hat_k), p_hat the
                    histogram over modes of the high-quality samples (0 log 0 = 0)

The two toy mixtures of the protocol: a ring of 8 Gaussians of radius 1 and std 0.01,
and a grid of 25 at {-4, -2, 0, 2, 4}^2 with std 0.05.

What it misses: the shape of each mode (a sample inside 3 std counts whatever its
distribution there), and anything between the modes beyond the high-quality fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "ModeCoverage",
    "mode_coverage",
    "ring_means",
    "grid_means",
    "sample_mixture",
    "toy_mixture",
    "MIXTURES",
]


@dataclass(frozen=True)
class ModeCoverage:
    """Result of :func:`mode_coverage`."""

    modes: int  # modes with at least one high-quality sample
    n_modes: int  # K
    high_quality: float  # fraction of samples within threshold * std of nearest mode
    reverse_kl: float  # KL(histogram of high-quality samples || uniform), nats
    counts: tuple[int, ...]  # high-quality samples per mode

    def __iter__(self):  # modes, high_quality, reverse_kl = mode_coverage(...)
        return iter((self.modes, self.high_quality, self.reverse_kl))


def ring_means(k: int = 8, radius: float = 1.0) -> Tensor:
    """(k, 2) means evenly spaced on a circle, the first at (radius, 0)."""
    t = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return radius * torch.stack([t.cos(), t.sin()], 1)


def grid_means(values=(-4.0, -2.0, 0.0, 2.0, 4.0)) -> Tensor:
    """(len(values)^2, 2) means on the grid values x values."""
    v = torch.tensor(values, dtype=torch.float64)
    return torch.cartesian_prod(v, v)


MIXTURES = {  # name: (means, std) of the VEEGAN / PacGAN protocol
    "ring": (ring_means(8, 1.0), 0.01),
    "grid": (grid_means(), 0.05),
}


def sample_mixture(
    means: Tensor, std: float, n: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """n samples of the equal-weight mixture of N(mu_k, std^2 I), float32 (n, D)."""
    where = generator.device if generator is not None else torch.device("cpu")
    k = torch.randint(means.shape[0], (n,), generator=generator, device=where)
    eps = torch.randn(n, means.shape[1], generator=generator, device=where)
    return (means.to(where, torch.float32)[k] + std * eps).cpu()


def toy_mixture(
    name: str, n: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, float]:
    """(samples (n, 2), means (K, 2), std) for ``"ring"`` or ``"grid"``."""
    if name not in MIXTURES:
        raise ValueError(f"name must be one of {sorted(MIXTURES)}; got {name!r}")
    means, std = MIXTURES[name]
    return sample_mixture(means, std, n, generator=generator), means.clone(), std


def mode_coverage(
    samples: Tensor, means: Tensor, std: float, *, threshold: float = 3.0
) -> ModeCoverage:
    """Modes covered, fraction of high-quality samples and reverse KL of the mode
    histogram to uniform (see the module docstring for the exact counting rule).

    Parameters
    ----------
    samples : Tensor, shape (N, D)
    means : Tensor, shape (K, D), the mixture's means
    std : float, the components' standard deviation
    threshold : a sample is high quality within ``threshold * std`` (Euclidean) of
        its nearest mean.

    Returns
    -------
    ModeCoverage; unpacks as (modes, high_quality, reverse_kl). With no high-quality
    sample the histogram is undefined and reverse_kl is inf.
    """
    if samples.dim() != 2 or means.dim() != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(
            "mode_coverage needs samples (N, D) and means (K, D) with the same D; "
            f"got {tuple(samples.shape)} and {tuple(means.shape)}"
        )
    if samples.shape[0] == 0 or not std > 0 or not threshold > 0:
        raise ValueError(
            "mode_coverage needs at least one sample, std > 0 and threshold > 0; got "
            f"N={samples.shape[0]}, std={std}, threshold={threshold}"
        )
    x = samples.detach().to("cpu", torch.float64)
    mu = means.detach().to("cpu", torch.float64)
    K = mu.shape[0]
    # [maths:modes.coverage]
    dist = torch.cdist(x, mu)  # (N, K)
    d_min, k = dist.min(1)
    good = d_min <= threshold * std  # high quality: within 3 std of its nearest mode
    counts = torch.bincount(k[good], minlength=K)  # (K,)
    modes = int((counts > 0).sum())
    n_good = int(good.sum())
    if n_good == 0:
        reverse_kl = math.inf
    else:
        p = counts[counts > 0].double() / n_good
        reverse_kl = float((p * (p * K).log()).sum())  # KL(p_hat || uniform)
    # [/maths:modes.coverage]
    return ModeCoverage(
        modes, K, n_good / x.shape[0], reverse_kl, tuple(counts.tolist())
    )
