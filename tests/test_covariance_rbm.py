"""mcRBM, mPoT and ssRBM (§20.5.2): free energies against enumeration and numerical
integration, the non-diagonal conditional p(x | h) against quadrature, exact log Z of a
small mcRBM, the ssRBM's inversion-free Gibbs sampler against the exact marginal (with
a broken twin), the non-positive-definite failure, and bad input.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers import ais_without_transitions
from scipy import integrate

from dgmlib.energy import (
    MeanCovarianceRBM,
    MeanPoT,
    SpikeSlabRBM,
    mcrbm_log_partition,
)
from dgmlib.exact import all_states
from dgmlib.mcmc import MCRBMPath, ais

pytestmark = pytest.mark.usefixtures("one_thread")
f64 = torch.float64


def grid(half=8.0, n=321):
    t = torch.linspace(-half, half, n, dtype=f64)
    return torch.cartesian_prod(t, t), float((t[1] - t[0]) ** 2)


def random_mc(cls, seed=0, hm=2, hc=2, **kw):
    g = torch.Generator().manual_seed(seed)
    m = cls(2, hm, hc, init_std=0.8, generator=g, dtype=f64, **kw)
    with torch.no_grad():
        m.b_m.copy_(torch.randn(hm, generator=g, dtype=f64))
        if hasattr(m, "b_c"):
            m.b_c.copy_(torch.randn(hc, generator=g, dtype=f64))
    return m


def quadrature_moments(log_w, x, dx):
    p = torch.softmax(log_w, 0)
    mean = p @ x
    d = x - mean
    return mean, (d * p[:, None]).T @ d


@torch.no_grad()
def test_mcrbm_free_energy_conditional_and_log_z():
    m = random_mc(MeanCovarianceRBM, seed=1)
    x, dx = grid()
    hs = all_states(4, dtype=f64)
    e = torch.stack(
        [
            m.energy(x, h[None, :2].expand(len(x), -1), h[None, 2:].expand(len(x), -1))
            for h in hs
        ],
        1,
    )
    assert torch.allclose(m.free_energy(x), -torch.logsumexp(-e, 1), atol=1e-10)
    log_z_quad = float(torch.logsumexp(-m.free_energy(x), 0)) + math.log(dx)
    assert abs(float(mcrbm_log_partition(m)) - log_z_quad) < 1e-6
    # p(x | h) of eq. 20.47: its non-diagonal covariance against quadrature
    h_m, h_c = (
        torch.tensor([[1.0, 0.0]], dtype=f64),
        torch.tensor([[1.0, 1.0]], dtype=f64),
    )
    mean_q, cov_q = quadrature_moments(
        -m.energy(x, h_m.expand(len(x), -1), h_c.expand(len(x), -1)), x, dx
    )
    mean, cov = m.conditional_x(h_m, h_c)
    assert torch.allclose(mean[0], mean_q, atol=1e-8)
    assert torch.allclose(cov[0], cov_q, atol=1e-8)
    assert abs(float(cov[0, 0, 1])) > 0.05  # non-diagonal
    # the Cholesky sampler draws from it
    g = torch.Generator().manual_seed(0)
    xs = m.sample_x_given_h(h_m.expand(40000, -1), h_c.expand(40000, -1), g)
    assert torch.allclose(torch.cov(xs.T), cov[0], atol=0.03)
    # P(h | x) factorises into the two sigmoids
    x0 = torch.tensor([[0.4, -0.9]], dtype=f64)
    p = torch.softmax(-m.energy(x0.expand(16, -1), hs[:, :2], hs[:, 2:]), 0)
    q = torch.cat([m.p_hm_given_x(x0), m.p_hc_given_x(x0)], 1)[0]
    assert torch.allclose(p, (hs * q + (1 - hs) * (1 - q)).prod(1), atol=1e-12)


@torch.no_grad()
def test_mpot_free_energy_and_gamma_conditional_by_integration():
    m = random_mc(MeanPoT, seed=2, hm=1, hc=1, gamma=1.7)
    x = torch.tensor([[0.5, -1.1]], dtype=f64)

    def unnorm(hc, hm):
        h_m = torch.tensor([[hm]], dtype=f64)
        return math.exp(-float(m.energy(x, h_m, torch.tensor([[hc]], dtype=f64))))

    z = sum(integrate.quad(unnorm, 0, math.inf, args=(hm,))[0] for hm in (0.0, 1.0))
    assert abs(-math.log(z) - float(m.free_energy(x))) < 1e-7
    shape, rate = m.hc_given_x(x)
    mean_q = integrate.quad(lambda h: h * unnorm(h, 0.0), 0, math.inf)[0]
    mean_q /= integrate.quad(unnorm, 0, math.inf, args=(0.0,))[0]
    assert abs(mean_q - float(shape / rate)) < 1e-7


@torch.no_grad()
def test_mpot_conditional_x_is_the_mcrbm_formula_with_real_hc():
    m = random_mc(MeanPoT, seed=3, hm=1, hc=2)
    x, dx = grid()
    h_m, h_c = torch.tensor([[1.0]], dtype=f64), torch.tensor([[0.7, 2.5]], dtype=f64)
    log_w = -m.energy(x, h_m.expand(len(x), -1), h_c.expand(len(x), -1))
    mean_q, cov_q = quadrature_moments(log_w, x, dx)
    mean, cov = m.conditional_x(h_m, h_c)
    assert torch.allclose(mean[0], mean_q, atol=1e-8)
    assert torch.allclose(cov[0], cov_q, atol=1e-8)


def random_ss(seed=0, pd=True):
    g = torch.Generator().manual_seed(seed)
    ss = SpikeSlabRBM(2, 2, init_std=0.6, generator=g, dtype=f64)
    ss.b = torch.randn(2, generator=g, dtype=f64)
    ss.mu = torch.randn(2, generator=g, dtype=f64)
    ss.log_alpha = torch.tensor([0.3, -0.2], dtype=f64)
    ss.Phi = 1 + torch.rand(2, 2, generator=g, dtype=f64)
    ss.log_lambda = torch.full((2,), math.log(2.0), dtype=f64)
    if not pd:
        ss.W = 3.0 * ss.W
        ss.Phi = torch.zeros(2, 2, dtype=f64)
        ss.log_lambda = torch.zeros(2, dtype=f64)
    return ss


@torch.no_grad()
def test_ssrbm_free_energy_and_conditional_by_integration():
    ss = random_ss(4)
    assert float(ss.min_precision_eig()) > 0
    x0 = torch.tensor([[0.3, -0.6]], dtype=f64)
    s_grid = torch.linspace(-15, 15, 3001, dtype=f64)
    ds = float(s_grid[1] - s_grid[0])
    s = torch.cartesian_prod(s_grid[::5], s_grid[::5])  # (601^2, 2)
    hs = all_states(2, dtype=f64)
    terms = [
        torch.logsumexp(-ss.energy(x0.expand(len(s), -1), s, h.expand(len(s), -1)), 0)
        for h in hs
    ]
    f_num = -(torch.logsumexp(torch.stack(terms), 0) + 2 * math.log(5 * ds))
    assert abs(float(f_num - ss.free_energy(x0)[0])) < 1e-6
    # p(x | h) (eq. 20.52-20.53), slabs integrated out: the exact Gaussian
    x, dx = grid()
    h = torch.tensor([[1.0, 1.0]], dtype=f64)
    a = torch.exp(ss.log_alpha)
    # with s integrated: log int exp(-E) ds (a Gaussian integral per unit, closed form)
    w = x @ ss.W
    log_w = (
        -0.5 * (x**2 * ss.log_lambda.exp()).sum(-1)
        - 0.5 * (x**2 @ ss.Phi).sum(-1)
        + ((a * ss.mu + w) ** 2 / (2 * a)).sum(-1)
    )
    mean_q, cov_q = quadrature_moments(log_w, x, dx)
    cov = torch.linalg.inv(ss.precision_given_h(h))[0]
    mean = cov @ (ss.W @ (ss.mu * h[0]))
    assert torch.allclose(mean, mean_q, atol=1e-7)
    assert torch.allclose(cov, cov_q, atol=1e-7)


class NoSlabVariance(SpikeSlabRBM):
    """Broken twin: P(h | x) without the w^2 / (2 alpha) term the slab's variance
    contributes.
    """

    def spike_logits(self, x):
        alpha = self.log_alpha.exp()
        w = x @ self.W
        return super().spike_logits(x) - w**2 / (2 * alpha)  # the broken line


def ssrbm_gibbs_moments(cls, seed, n=20000, sweeps=5):
    """Chains started at exact draws of p(x) (inverse-CDF on a fine grid), moved by
    ``sweeps`` Gibbs sweeps of ``cls``; the largest |z| of the five first and second
    moments against the exact ones (quadrature).
    """
    ss = random_ss(4)
    model = cls(2, 2, dtype=f64)
    model.load_state_dict(ss.state_dict())
    x, dx = grid(half=9.0, n=361)
    p = torch.softmax(-ss.free_energy(x), 0)
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(p, n, replacement=True, generator=g)
    jitter = (torch.rand(n, 2, generator=g, dtype=f64) - 0.5) * (18.0 / 360)
    x0 = x[idx] + jitter
    xs, _, _ = model.gibbs(x0, sweeps, generator=g)
    mean = p @ x
    d = x - mean
    second = (d * p[:, None]).T @ d
    feats = lambda y: torch.stack(  # noqa: E731
        [
            y[:, 0],
            y[:, 1],
            (y[:, 0] - mean[0]) ** 2,
            (y[:, 1] - mean[1]) ** 2,
            (y[:, 0] - mean[0]) * (y[:, 1] - mean[1]),
        ],
        1,
    )
    target = torch.cat([mean, second[0, 0:1], second[1, 1:2], second[0, 1:2]])
    f = feats(xs)
    z = (f.mean(0) - target) / (f.std(0) / math.sqrt(n))
    return float(z.abs().max())


SS_VARIANTS = {"correct": SpikeSlabRBM, "no_slab_variance": NoSlabVariance}


@pytest.mark.parametrize("variant", list(SS_VARIANTS))
def test_ssrbm_gibbs_leaves_the_marginal_invariant(variant):
    # |z| < 4.5 on five moments (about 7e-6 each for Gaussian z). Seeds 0-99
    # (ssrbm_gibbs_moments): correct, max |z| 0.50-2.89 (false alarms 0/100); without
    # the slab-variance term in P(h | x), 76-81 (misses 0/100).
    z = ssrbm_gibbs_moments(SS_VARIANTS[variant], seed=0)
    ok = z < 4.5
    assert ok == (variant == "correct"), z


@torch.no_grad()
def test_non_positive_definite_precision_makes_z_diverge():
    ss = random_ss(5, pd=False)
    assert float(ss.min_precision_eig()) < 0
    # the integral of exp(-F) over a growing square keeps growing
    masses = []
    for half in (10.0, 20.0, 40.0):
        x, dx = grid(half=half, n=401)
        masses.append(float(torch.logsumexp(-ss.free_energy(x), 0)) + math.log(dx))
    assert masses[2] > masses[1] + 5 > masses[0] + 10
    # and Gibbs chains run off to infinity
    g = torch.Generator().manual_seed(0)
    xs, _, _ = ss.gibbs(torch.zeros(50, 2, dtype=f64), 200, generator=g)
    assert float(xs.norm(dim=1).median()) > 1e3


def test_bad_input_is_rejected():
    ss = SpikeSlabRBM(3, 2)
    ss.Phi = -torch.ones(3, 2)
    with pytest.raises(ValueError, match="non-negative"):
        ss.gibbs(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="gamma must be > 0"):
        MeanPoT(3, 2, 2, gamma=0.0)
    m = MeanCovarianceRBM(3, 2, 2)
    with pytest.raises(ValueError, match="x"):
        m.free_energy(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="at most 12"):
        mcrbm_log_partition(MeanCovarianceRBM(3, 2, 13))
    with pytest.raises(ValueError, match="h_c must be > 0"):
        MeanPoT(3, 1, 2).energy(torch.zeros(1, 3), torch.zeros(1, 1), torch.zeros(1, 2))


# AIS over the mcRBM path against the exact log Z, beside the broken twin whose
# transitions are the identity (helpers.ais_without_transitions).
AIS_VARIANTS = {"correct": ais, "no_transitions": ais_without_transitions(ais)}


def mcrbm_ais_agreement(run, seed):
    """(error vs exact log Z, reported stderr) on a 4-visible mcRBM, 3 + 3 units."""
    g = torch.Generator().manual_seed(7)
    m = MeanCovarianceRBM(4, 3, 3, init_std=0.6, generator=g, dtype=f64)
    with torch.no_grad():
        m.b_m.copy_(torch.randn(3, generator=g, dtype=f64))
        m.b_c.copy_(torch.randn(3, generator=g, dtype=f64))
    exact = float(mcrbm_log_partition(m))
    g = torch.Generator().manual_seed(seed)
    res = run(MCRBMPath(m), n_betas=500, n_chains=300, generator=g)
    return res.log_z - exact, res.stderr


@pytest.mark.parametrize("variant", list(AIS_VARIANTS))
def test_mcrbm_ais_agrees_with_exact_log_z(variant):
    # Fixed tolerances, never a multiple of the reported stderr. Seeds 0-19
    # (mcrbm_ais_agreement), correct: |error| <= 0.0055 nats, stderr <= 0.0043 (false
    # alarms 0/20); no transitions: stderr 0.072-0.17 (misses 0/20; its |error|
    # ranges 0.0004-0.17, so the stderr bound is what catches it).
    err, se = mcrbm_ais_agreement(AIS_VARIANTS[variant], seed=0)
    ok = abs(err) < 0.02 and se < 0.01
    assert ok == (variant == "correct"), (err, se)
