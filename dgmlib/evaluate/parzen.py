"""Parzen-window (kernel density) log-likelihoods of a sampler (§20.14).

A model that can only be sampled, such as a GSN or a GAN, is often scored by fitting a
Gaussian kernel density estimate to n of its samples s_1..s_n and evaluating it on test
data (Breuleux et al. 2011; Bengio et al. 2014; Goodfellow et al. 2014):

    log p_sigma(x) = log (1/n) sum_i N(x; s_i, sigma^2 I)
                   = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log n
                     - (d/2) log(2 pi sigma^2),

with the bandwidth sigma chosen on a validation set (:func:`select_parzen_sigma`).

.. warning::
   The number is not the model's log-likelihood, and it can mislead badly (Theis et al.
   2016, recalled in §20.14): in more than a few dimensions the estimate is far from
   the true log-likelihood even with millions of samples, and it rewards closeness to
   the training data, so a "model" that merely memorises the training set (returns its
   images as samples) can score higher than a good model that generalises. Use it, if
   at all, with that comparison beside it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["parzen_log_likelihood", "select_parzen_sigma"]


def _check(samples: Tensor, test: Tensor) -> None:
    for name, t in (("samples", samples), ("test", test)):
        if t.ndim != 2:
            raise ValueError(
                f"parzen_log_likelihood expects {name} of shape (N, d); got "
                f"{tuple(t.shape)}. Flatten images first: {name}.flatten(1)"
            )
    if samples.shape[1] != test.shape[1]:
        raise ValueError(
            "samples and test must have the same dimension d; got samples "
            f"{tuple(samples.shape)} and test {tuple(test.shape)}"
        )
    if samples.shape[0] < 1:
        raise ValueError("parzen_log_likelihood needs at least one sample")


def _log_normaliser(n: int, d: int, sigma: float) -> float:
    """log n + (d/2) log(2 pi sigma^2): the mixture's 1/n and each kernel's constant."""
    return math.log(n) + 0.5 * d * math.log(2 * math.pi * sigma**2)


def parzen_log_likelihood(
    samples: Tensor, test: Tensor, *, sigma: float, batch_size: int = 256
) -> Tensor:
    """log p_sigma(x) of each test point under the Gaussian Parzen window of
    ``samples`` (n, d), in nats: (m, d) -> (m,). Computed in chunks of ``batch_size``
    test points by a log-mean-exp (stable: no exp of a large negative number is
    taken). See the module's warning before reading the number as a likelihood.
    """
    _check(samples, test)
    if not sigma > 0:
        raise ValueError(
            f"sigma (the kernel's standard deviation) must be > 0; got {sigma}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    n, d = samples.shape
    test = test.to(samples)
    out = []
    for start in range(0, test.shape[0], batch_size):
        x = test[start : start + batch_size]  # (m, d)
        # [maths:parzen]
        sq = torch.cdist(x, samples).square()  # ||x - s_i||^2, (m, n)
        log_k = -sq / (2 * sigma**2)  # log kernels without their constant
        log_norm = _log_normaliser(n, d, sigma)
        out.append(torch.logsumexp(log_k, dim=1) - log_norm)  # (m,)
        # [/maths:parzen]
    return torch.cat(out)


def select_parzen_sigma(
    samples: Tensor, valid: Tensor, sigmas, *, batch_size: int = 256
) -> tuple[float, Tensor]:
    """The bandwidth among ``sigmas`` with the highest mean Parzen log-likelihood on
    ``valid``, and the mean log-likelihood for each (len(sigmas),).
    """
    sigmas = [float(s) for s in sigmas]
    if not sigmas:
        raise ValueError("select_parzen_sigma needs at least one candidate sigma")
    means = torch.stack(
        [
            parzen_log_likelihood(samples, valid, sigma=s, batch_size=batch_size).mean()
            for s in sigmas
        ]
    )
    return sigmas[int(means.argmax())], means
