"""Dequantization, bits per dimension, and the two baselines a flow on pixels must beat.

Notation
--------
k : (N, D) integers in {0, ..., K-1}     quantized pixels (digits: K = 17 grey levels)
x = k + u, u ~ U[0, 1)^D                 uniformly dequantized pixels, in [0, K)^D

A continuous density p on [0, K)^D fitted to x lower-bounds the discrete probability of
k (Theis et al. 2016):  log P(k) = log of the integral of p over the unit cube at k >=
E_u[log p(k + u)]. So the continuous NLL of dequantized data is an honest (upper-bound)
discrete NLL, comparable across models; bits/dim = NLL / (D ln 2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["dequantize", "bits_per_dim", "IndependentCategorical", "FullGaussian"]


def dequantize(k: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """x = k + u with u ~ U[0, 1): uniform dequantization of integer-valued ``k``
    (any shape).
    """
    if k.is_floating_point() and not bool((k == k.round()).all()):
        raise ValueError(
            "dequantize expects integer-valued pixels (e.g. digit counts 0..16); got "
            "non-integers"
        )
    dtype = k.dtype if k.is_floating_point() else torch.get_default_dtype()
    where = generator.device if generator is not None else k.device
    return k.to(dtype) + torch.rand(
        k.shape, generator=generator, device=where, dtype=dtype
    ).to(k.device)


def bits_per_dim(nll_nats: float | Tensor, dim: int) -> float | Tensor:
    """NLL in nats per example -> bits per dimension: nll / (dim * ln 2). A float for
    a float, a tensor for a tensor.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(
            f"dim must be the number of dimensions, an int >= 1; got {dim!r}"
        )
    # [maths:likelihood.bits_per_dim]
    return nll_nats / (dim * math.log(2))
    # [/maths:likelihood.bits_per_dim]


class IndependentCategorical:
    """A K-level categorical per pixel, independent across pixels, with
    add-``smoothing`` counts.

    As a density on [0, K)^D it is piecewise constant on unit cubes, so the log-density
    of a dequantized x equals the log-probability of its bin floor(x): log p(x) = sum_d
    log P_d(floor(x_d)).

    Parameters
    ----------
    log_p : (D, K) tensor
        log P_d(level).
    """

    def __init__(self, log_p: Tensor):
        self.log_p = log_p
        self.dim, self.n_levels = log_p.shape

    @classmethod
    def fit(
        cls, k: Tensor, n_levels: int, smoothing: float = 1.0
    ) -> IndependentCategorical:
        """Maximum a posteriori fit from integer pixels ``k`` (N, D):
        (count + smoothing) / (N + K smoothing).
        """
        k = k.long()
        if int(k.min()) < 0 or int(k.max()) >= n_levels:
            raise ValueError(
                f"IndependentCategorical.fit: levels must be in 0..{n_levels - 1}; "
                f"got {int(k.min())}..{int(k.max())}"
            )
        counts = torch.zeros(k.shape[1], n_levels, dtype=torch.float64, device=k.device)
        counts.scatter_add_(
            1, k.T, torch.ones(k.T.shape, dtype=torch.float64, device=k.device)
        )  # (D, K)
        p = (counts + smoothing) / (len(k) + n_levels * smoothing)
        return cls(p.log())

    def log_prob(self, x: Tensor) -> Tensor:
        """(N, D) dequantized (or integer) pixels -> (N,) log-density = log-probability
        of the bins.
        """
        k = x.floor().long().clamp(0, self.n_levels - 1)
        return self.log_p.to(x.device).gather(1, k.T).sum(0)  # float64


class FullGaussian:
    """A full-covariance Gaussian N(mean, S + ridge I), S the maximum-likelihood
    covariance.
    """

    def __init__(self, mean: Tensor, cov: Tensor):
        self.dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)

    @classmethod
    def fit(cls, x: Tensor, ridge: float = 0.0) -> FullGaussian:
        x = x.double()
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / len(x) + ridge * torch.eye(
            x.shape[1], dtype=torch.float64, device=x.device
        )
        return cls(mean, cov)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.dist.log_prob(x.double())
