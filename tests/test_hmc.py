"""Hamiltonian Monte Carlo (dgmlib.mcmc.hmc): leapfrog is reversible and nearly
conserves H; HMC leaves a correlated Gaussian invariant (a moment test with measured
rates, beside the broken twin without the Metropolis correction); bad input.
"""

from __future__ import annotations

import math

import pytest
import torch

from dgmlib.mcmc import hmc, hmc_step, leapfrog

pytestmark = pytest.mark.usefixtures("one_thread")

SIGMA = torch.tensor([[1.0, 0.8], [0.8, 2.0]], dtype=torch.float64)
PREC = torch.linalg.inv(SIGMA)


def log_p_gauss(x):
    return -0.5 * ((x @ PREC) * x).sum(-1)


def test_leapfrog_is_reversible_and_nearly_conserves_h():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    p = torch.randn(50, 2, generator=g, dtype=torch.float64)
    x1, p1 = leapfrog(log_p_gauss, x, p, 0.1, 20)
    x2, p2 = leapfrog(log_p_gauss, x1, -p1, 0.1, 20)
    assert torch.allclose(x2, x, atol=1e-10) and torch.allclose(-p2, p, atol=1e-10)
    h0 = -log_p_gauss(x) + 0.5 * (p**2).sum(-1)
    h1 = -log_p_gauss(x1) + 0.5 * (p1**2).sum(-1)
    assert (h1 - h0).abs().max() < 0.02


def no_metropolis(log_p, x, *, step_size, n_leapfrog=10, generator=None):
    """The broken twin: every leapfrog end point accepted."""
    p = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x_new, _ = leapfrog(log_p, x, p, step_size, n_leapfrog)
    return x_new.detach(), torch.ones(len(x), dtype=torch.bool)


HMC_VARIANTS = {"correct": hmc_step, "no_metropolis": no_metropolis}


def gaussian_moments(step, seed, n=4000, n_steps=10):
    """Start n chains at exact draws of N(0, SIGMA), run n_steps HMC steps (a large
    step size, 1.1, 3 leapfrog steps), and return the largest |z| of the five moments
    (two means, two variances, the covariance) against their sampling sd.
    """
    g = torch.Generator().manual_seed(seed)
    L = torch.linalg.cholesky(SIGMA)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) @ L.T
    for _ in range(n_steps):
        x, _ = step(log_p_gauss, x, step_size=1.1, n_leapfrog=3, generator=g)
    m, S = x.mean(0), torch.cov(x.T)
    z = [m[i] / math.sqrt(SIGMA[i, i] / n) for i in range(2)]
    for i, j in [(0, 0), (1, 1), (0, 1)]:
        sd = math.sqrt((SIGMA[i, i] * SIGMA[j, j] + SIGMA[i, j] ** 2) / n)
        z.append((S[i, j] - SIGMA[i, j]) / sd)
    return max(abs(float(t)) for t in z)


@pytest.mark.parametrize("variant", list(HMC_VARIANTS))
def test_hmc_leaves_a_gaussian_invariant(variant):
    # |z| < 4 on each of five moments (about 6e-5 each, 3e-4 in all, for Gaussian
    # z). Measured over seeds 0-99 (gaussian_moments): correct, max |z| 0.42-3.04
    # (false alarms 0/100); no Metropolis test, max |z| 23.5-30.6 (misses 0/100).
    z = gaussian_moments(HMC_VARIANTS[variant], seed=0)
    ok = z < 4.0
    assert ok == (variant == "correct"), z


def test_hmc_reaches_the_target_from_a_bad_start_and_adapts():
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((1000, 2), 5.0, dtype=torch.float64)
    res = hmc(log_p_gauss, x0, n_steps=150, step_size=0.5, n_leapfrog=4, generator=g)
    assert res.x.mean(0).abs().max() < 0.25
    assert torch.allclose(torch.cov(res.x.T), SIGMA, atol=0.3)
    assert 0.5 < float(res.accept_rate[-10:].mean()) <= 1.0
    res = hmc(log_p_gauss, x0, n_steps=40, step_size=2.0, target_accept=0.9)
    assert res.step_size < 2.0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"\(n_chains, D\)"):
        hmc(log_p_gauss, torch.zeros(2))
    with pytest.raises(ValueError, match="step_size > 0"):
        hmc(log_p_gauss, torch.zeros(3, 2), step_size=0.0)
