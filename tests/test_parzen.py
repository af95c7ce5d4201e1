"""Tests for dgmlib.evaluate.parzen (Parzen-window log-likelihoods, §20.14).

References: a direct loop over the samples with scipy's multivariate normal log-density
and scipy's logsumexp, and the closed form for one sample (a Gaussian log-density).
Deterministic: no seeds to measure; each broken variant is a monkeypatch of one piece.
"""

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from dgmlib.evaluate import parzen as parzen_mod
from dgmlib.evaluate import parzen_log_likelihood, select_parzen_sigma

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def direct_loop(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    """log (1/n) sum_i N(x; s_i, sigma^2 I), one sample at a time through scipy."""
    n, d = samples.shape
    out = []
    for x in test:
        terms = [
            stats.multivariate_normal(s, sigma**2 * np.eye(d)).logpdf(x)
            for s in samples
        ]
        out.append(special.logsumexp(terms) - math.log(n))
    return np.array(out)


def naive_logsumexp(x, dim):  # log(sum(exp(x))) without the max shift
    return torch.log(torch.exp(x).sum(dim))


VARIANTS = {
    "correct": {},
    # exp of -||x - s||^2 / (2 sigma^2) underflows to 0 in 40 dimensions at sigma 0.05
    "no_max_shift": {"logsumexp": naive_logsumexp},
    # forgets each kernel's (2 pi sigma^2)^(-d/2)
    "no_normaliser": {"_log_normaliser": lambda n, d, sigma: math.log(n)},
}


def patched(monkeypatch, variant):
    for name, fn in VARIANTS[variant].items():
        if name == "logsumexp":
            monkeypatch.setattr(parzen_mod.torch, "logsumexp", fn)
        else:
            monkeypatch.setattr(parzen_mod, name, fn)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parzen_matches_direct_loop(variant, monkeypatch):
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(30, 40, generator=g, dtype=DT)
    test = torch.rand(7, 40, generator=g, dtype=DT)
    sigma = 0.05
    ref = direct_loop(samples.numpy(), test.numpy(), sigma)
    patched(monkeypatch, variant)
    got = parzen_log_likelihood(samples, test, sigma=sigma, batch_size=3).numpy()
    ok = bool(np.all(np.isfinite(got)) and np.allclose(got, ref, rtol=0, atol=1e-8))
    assert ok == (variant == "correct"), (got, ref)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_sample_is_a_gaussian_log_density(variant, monkeypatch):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(1, 5, generator=g, dtype=DT)
    test = torch.randn(4, 5, generator=g, dtype=DT)
    sigma = 0.7
    ref = stats.multivariate_normal(s[0].numpy(), sigma**2 * np.eye(5)).logpdf(
        test.numpy()
    )
    patched(monkeypatch, variant)
    got = parzen_log_likelihood(s, test, sigma=sigma).numpy()
    ok = bool(np.allclose(got, ref, rtol=0, atol=1e-10))
    # the naive log-sum-exp is exact here (no underflow in 5 dimensions at sigma 0.7)
    assert ok == (variant in ("correct", "no_max_shift")), (got, ref)


def test_select_sigma_is_the_best_candidate():
    g = torch.Generator().manual_seed(2)
    samples = torch.randn(400, 2, generator=g, dtype=DT)
    valid = torch.randn(200, 2, generator=g, dtype=DT)
    sigmas = [0.02, 0.1, 0.3, 1.0, 5.0]
    best, means = select_parzen_sigma(samples, valid, sigmas)
    direct = [
        float(parzen_log_likelihood(samples, valid, sigma=s).mean()) for s in sigmas
    ]
    assert means.tolist() == pytest.approx(direct)
    assert best == sigmas[int(np.argmax(direct))]
    assert best in (0.1, 0.3, 1.0)  # neither extreme bandwidth wins on N(0, I) data


def test_bad_input_rejected():
    a, b = torch.zeros(3, 4), torch.zeros(2, 5)
    with pytest.raises(ValueError, match="same dimension d"):
        parzen_log_likelihood(a, b, sigma=1.0)
    with pytest.raises(ValueError, match="must be > 0"):
        parzen_log_likelihood(a, a, sigma=0.0)
    with pytest.raises(ValueError, match="must be > 0"):
        parzen_log_likelihood(a, a, sigma=-1.0)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        parzen_log_likelihood(torch.zeros(3, 2, 2), a, sigma=1.0)
    with pytest.raises(ValueError, match="at least one candidate"):
        select_parzen_sigma(a, a, [])
