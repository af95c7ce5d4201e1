"""Likelihood estimators (dgmlib.evaluate.likelihood): AIS on a decoder forward and in
reverse, and the BDMC sandwich, against the closed form of a linear Gaussian decoder
(probabilistic PCA: p(x) = N(mu, W W^T + sigma^2 I)), each beside its broken twin; a
Bernoulli decoder against quadrature over a z grid; exact RBM log-likelihoods against
enumeration of (v, h); nearest neighbours against cdist + sort; bits per dimension;
the 0.1-scaling identity of §20.14; bad input.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from unittest import mock

import pytest
import torch

from dgmlib.energy import BernoulliRBM
from dgmlib.evaluate import likelihood as lik
from dgmlib.evaluate.likelihood import (
    DecoderPath,
    StepSizeTable,
    ais_log_likelihood,
    bdmc,
    bernoulli_decoder,
    bits_per_dim,
    exact_log_likelihood,
    gaussian_decoder,
    nearest_neighbours,
    sigmoid_betas,
    simulate_decoder,
    tune_step_sizes,
)

pytestmark = pytest.mark.usefixtures("one_thread")
f64 = torch.float64


# --- a linear Gaussian decoder (PPCA) with its closed forms --------------------------


class PPCA:
    """G(z) = W z + mu with noise sigma: p(x) = N(mu, W W^T + sigma^2 I) and
    p(z | x) = N(M^-1 W^T (x - mu) / sigma^2, M^-1), M = I + W^T W / sigma^2."""

    def __init__(self, q=2, D=4, sigma=0.5, seed=0):
        g = torch.Generator().manual_seed(1000 + seed)
        self.q, self.D, self.sigma = q, D, sigma
        self.G = torch.nn.Linear(q, D).to(f64).requires_grad_(False)
        self.G.weight.copy_(torch.randn(D, q, generator=g, dtype=f64))
        self.G.bias.copy_(torch.randn(D, generator=g, dtype=f64))
        self.W, self.mu = self.G.weight, self.G.bias
        self.log_lik = gaussian_decoder(self.G, sigma)

    def log_p(self, x):
        C = self.W @ self.W.T + self.sigma**2 * torch.eye(self.D, dtype=f64)
        return torch.distributions.MultivariateNormal(self.mu, C).log_prob(x)

    def posterior_sample(self, x, generator):
        M = torch.eye(self.q, dtype=f64) + self.W.T @ self.W / self.sigma**2
        cov = torch.linalg.inv(M)
        mean = (x - self.mu) @ self.W @ cov / self.sigma**2  # (B, q)
        L = torch.linalg.cholesky(cov)
        eps = torch.randn(len(x), self.q, generator=generator, dtype=f64)
        return mean + eps @ L.T


class NoTransitions(DecoderPath):
    """Broken: the chains never move (AIS becomes importance sampling from the prior,
    or, in reverse, from the start)."""

    def step(self, z, prev, cur, generator=None):
        return self.log_p_star(z, cur) - self.log_p_star(z, prev), z


class WrongSign(DecoderPath):
    """Broken: each weight increment is log p*_prev - log p*_cur (beta's weight with
    the wrong sign)."""

    def step(self, z, prev, cur, generator=None):
        d_log_w, z = super().step(z, prev, cur, generator=generator)
        return -d_log_w, z


PATHS = {"correct": DecoderPath, "no_transitions": NoTransitions}
PATHS["wrong_sign"] = WrongSign


@contextmanager
def path_variant(variant):
    # the pilot run that tunes the step sizes calls transition, not step: it is the
    # same in every variant, so each broken twin is scored with good step sizes
    with mock.patch.object(lik, "DecoderPath", PATHS[variant]):
        yield


N_BETAS, K, B = 100, 32, 8


def forward_errors(variant, seed):
    """Forward AIS (100 betas, 32 chains, tuned HMC) on 8 points of a PPCA: the
    errors log p_hat - log p of the estimates (B,) and of every chain's log w (K, B)."""
    m = PPCA(seed=seed)
    g = torch.Generator().manual_seed(seed)
    x, _ = simulate_decoder(m.G, B, latent_dim=m.q, sigma=m.sigma, generator=g)
    with path_variant(variant):
        r = ais_log_likelihood(
            m.log_lik, x, latent_dim=m.q, n_betas=N_BETAS, n_chains=K, generator=g
        )
    exact = m.log_p(x)
    return r.log_p - exact, r.log_w - exact


def forward_ok(variant, seed):
    err, err_w = forward_errors(variant, seed)
    accurate = abs(float(err.mean())) < 0.2 and float(err.abs().max()) < 0.45
    below = float(err_w.mean()) < 0  # E log w <= log p(x): a stochastic lower bound
    stats = (float(err.mean()), float(err.abs().max()), float(err_w.mean()))
    return accurate and below, stats


@pytest.mark.parametrize("variant", ["correct", "no_transitions", "wrong_sign"])
def test_forward_ais_estimates_the_ppca_log_likelihood(variant):
    # Seeds 0-19 (forward_ok): correct, mean error -0.03 to +0.12 nats, max |error|
    # 0.12-0.34, chain-mean error -0.51 to -0.14 (false alarms 0/20); no transitions,
    # max |error| 0.56-19, chain-mean error -81 to -10 (misses 0/20); wrong sign,
    # mean error +8 to +15 (misses 0/20).
    ok, stats = forward_ok(variant, seed=3)
    assert ok == (variant == "correct"), stats


def reverse_errors(start, seed, sigma=0.2, n_chains=64):
    """Reverse AIS (100 betas, 64 chains) on 8 points of a sharper PPCA (sigma 0.2),
    from exact posterior samples (closed form) or, broken, from the prior: errors of
    the estimates (B,) and of every chain's -log w (K, B)."""
    m = PPCA(sigma=sigma, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x, _ = simulate_decoder(m.G, B, latent_dim=m.q, sigma=m.sigma, generator=g)
    if start == "posterior":
        z0 = m.posterior_sample(x, g)
    else:
        z0 = torch.randn(B, m.q, generator=g, dtype=f64)
    r = ais_log_likelihood(
        m.log_lik,
        x,
        latent_dim=m.q,
        n_betas=N_BETAS,
        n_chains=n_chains,
        reverse=True,
        z_init=z0,
        generator=g,
    )
    exact = m.log_p(x)
    return r.log_p - exact, -r.log_w - exact


def reverse_ok(start, seed):
    err, err_w = reverse_errors(start, seed)
    # E[-log w_rev] >= log p(x) from exact starts: every chain's weight, and (up to
    # noise, hence -0.15) the estimates, are above log p
    above = float(err_w.mean()) > 0 and -0.15 < float(err.mean()) < 0.5
    stats = (float(err.mean()), float(err.min()), float(err.max()), float(err_w.mean()))
    return above, stats


@pytest.mark.parametrize("start", ["posterior", "prior"])
def test_reverse_ais_from_exact_posterior_samples_bounds_from_above(start):
    # Seeds 0-19 (reverse_ok): from the posterior, mean error -0.09 to +0.38 nats,
    # chain-mean error +0.38 to +1.21 (false alarms 0/20); from the prior (broken),
    # mean error -5.6 to -0.03, chain-mean -4.8 to +0.51 (misses 3/20: seeds 3, 6,
    # 16, where the dense top of the sigmoid schedule lets HMC reach the posterior
    # before the weights move much).
    ok, stats = reverse_ok(start, seed=0)
    assert ok == (start == "posterior"), stats


def bdmc_bracket(variant, seed, n_betas=30, n_chains=2, n=48):
    """BDMC on 48 points simulated from a PPCA with a short schedule (30 betas, 2
    chains), so that the gap is wide against the noise: the mean lower and upper
    estimates and the mean exact log p."""
    m = PPCA(seed=seed)
    g = torch.Generator().manual_seed(seed)
    x, z = simulate_decoder(m.G, n, latent_dim=m.q, sigma=m.sigma, generator=g)
    with path_variant(variant):
        r = bdmc(m.log_lik, x, z, latent_dim=m.q, n_betas=n_betas, n_chains=n_chains,
                 generator=g)  # fmt: skip
    return float(r.lower.mean()), float(m.log_p(x).mean()), float(r.upper.mean())


@pytest.mark.parametrize("variant", ["correct", "wrong_sign", "no_transitions"])
def test_bdmc_brackets_the_exact_log_likelihood(variant):
    # Seeds 0-19 (bdmc_bracket): correct, lower - exact -1.4 to -0.17 and upper -
    # exact +0.13 to +1.1 nats (false alarms 0/20); wrong sign, both 9-19 nats above
    # (misses 0/20); no transitions, the bracket holds but is useless: the forward
    # run is importance sampling from the prior (lower 5-46 nats below) and the
    # reverse the harmonic-mean estimator (upper 1.5-3.9 above), width > 6.9
    # (misses 0/20).
    lo, exact, up = bdmc_bracket(variant, seed=4)
    ok = lo <= exact <= up and up - lo < 4.0
    assert ok == (variant == "correct"), (lo, exact, up)


# --- a Bernoulli decoder against quadrature ---------------------------------------


def bernoulli_errors(seed, n_chains=64):
    """A 2-D latent, 12-pixel Bernoulli decoder with logits A tanh(z) + c: AIS (200
    betas) minus quadrature on a 561 x 561 grid over [-7, 7]^2, for 6 binary x."""
    g = torch.Generator().manual_seed(seed)
    q, D = 2, 12
    A = 2.5 * torch.randn(D, q, generator=g, dtype=f64)
    c = torch.randn(D, generator=g, dtype=f64)

    def logits_fn(z):  # a nonlinear decoder
        return torch.tanh(z) @ A.T + c

    log_lik = bernoulli_decoder(logits_fn)
    x = torch.bernoulli(torch.full((6, D), 0.5, dtype=f64), generator=g)
    t = torch.linspace(-7, 7, 561, dtype=f64)
    zz = torch.cartesian_prod(t, t)  # (n, 2)
    log_prior = -0.5 * (zz**2).sum(-1) - math.log(2 * math.pi)
    log_cell = 2 * math.log(float(t[1] - t[0]))
    exact = torch.stack(
        [torch.logsumexp(log_prior + log_lik(xi.expand(len(zz), D), zz), 0) for xi in x]
    )
    r = ais_log_likelihood(
        log_lik, x, latent_dim=q, n_betas=200, n_chains=n_chains, generator=g
    )
    return r.log_p - (exact + log_cell)


def test_bernoulli_decoder_ais_agrees_with_quadrature():
    # Seeds 0-19 (bernoulli_errors): errors of both signs, sd about 0.05 nats, max
    # |error| 0.05-0.18 (false alarms 0/20 at 0.2)
    err = bernoulli_errors(seed=0)
    assert err.abs().max() < 0.2, err


# --- the pieces -------------------------------------------------------------------


def test_decoder_path_layout_base_and_step_sizes():
    m = PPCA()
    x = torch.randn(3, m.D, dtype=f64)
    seen = {}

    def log_lik(x_rep, z):
        seen["x"] = x_rep
        return m.log_lik(x_rep, z)

    path = DecoderPath(log_lik, x, m.q, 4, step_size=lambda beta: 0.1 + beta)
    z = path.sample_base(12, generator=torch.Generator().manual_seed(0))
    assert z.shape == (12, 2) and path.log_z_base == 0.0
    lp = path.log_p_star(z, 0.5)
    assert torch.equal(seen["x"][7], x[1])  # row k * B + b is x[b]
    expected = torch.distributions.Normal(0, 1).log_prob(z).sum(-1)
    assert torch.allclose(lp, expected + 0.5 * m.log_lik(x.repeat(4, 1), z))
    assert path.step_size_at(0.5) == pytest.approx(0.6)
    table = StepSizeTable(torch.tensor([0.0, 0.5, 1.0], dtype=f64),
                          torch.tensor([1.0, 0.5, 0.1], dtype=f64))  # fmt: skip
    assert table(0.25) == pytest.approx(0.75) and table(1.0) == pytest.approx(0.1)
    xb, zb = simulate_decoder(m.G, 5, latent_dim=2, generator=torch.Generator())
    assert zb.shape == (5, 2) and set(xb.unique().tolist()) <= {0.0, 1.0}
    r = lik.BDMCResult(torch.tensor([-3.0, -2.0]), torch.tensor([-2.5, -1.0]))
    assert r.gap == pytest.approx(0.75)
    b = sigmoid_betas(50)
    assert float(b[0]) == 0.0 and float(b[-1]) == 1.0 and bool((b.diff() > 0).all())


def test_tuned_step_sizes_reach_the_target_acceptance_and_outputs_follow_x():
    m = PPCA()
    g = torch.Generator().manual_seed(1)
    x, _ = simulate_decoder(m.G, 8, latent_dim=2, sigma=m.sigma, generator=g)
    betas = sigmoid_betas(60)
    table = tune_step_sizes(m.log_lik, x, latent_dim=2, betas=betas, generator=g)
    assert len(table.step_sizes) == 60 and bool((table.step_sizes > 0).all())
    r = ais_log_likelihood(m.log_lik, x, latent_dim=2, betas=betas, n_chains=8,
                           step_size=table, generator=g)  # fmt: skip
    assert 0.5 < r.accept_rate < 0.8, r.accept_rate
    assert r.log_w.shape == (8, 8) and r.step_sizes.shape == (60,)
    # float32 in, float32 out
    G32 = torch.nn.Linear(2, m.D).requires_grad_(False)
    x32 = x.float()
    r32 = ais_log_likelihood(gaussian_decoder(G32, 0.5), x32, latent_dim=2,
                             n_betas=5, n_chains=2, step_size=0.1)  # fmt: skip
    assert r32.log_p.dtype == torch.float32 and r32.log_p.shape == (8,)


def test_nearest_neighbours_match_cdist_and_sort(monkeypatch):
    g = torch.Generator().manual_seed(0)
    qs = torch.randn(37, 5, generator=g, dtype=f64)
    ref = torch.randn(101, 5, generator=g, dtype=f64)
    full = ((qs[:, None] - ref[None]) ** 2).sum(-1).sqrt()  # (Q, N) by hand
    want_d, want_i = full.sort(dim=1)
    d, i = nearest_neighbours(qs, ref, k=4)
    assert torch.equal(i, want_i[:, :4]) and torch.allclose(d, want_d[:, :4])
    monkeypatch.setattr(lik, "_MAX_ENTRIES", 30)  # blocks of 30 columns, one row
    d2, i2 = nearest_neighbours(qs, ref, k=4)
    assert torch.equal(i2, i) and torch.allclose(d2, d)


def test_bits_per_dim_by_hand():
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    assert bits_per_dim(100.0, 64) == pytest.approx(100 / (64 * 0.6931471805599453))
    t = bits_per_dim(torch.tensor([0.0, 2 * math.log(2)]), 2)
    assert torch.allclose(t, torch.tensor([0.0, 1.0]))


def test_exact_log_likelihood_of_a_small_rbm_by_enumerating_v_and_h():
    g = torch.Generator().manual_seed(0)
    rbm = BernoulliRBM(4, 3, init_std=1.0, generator=g, dtype=f64)
    rbm.b = torch.randn(4, generator=g, dtype=f64)
    rbm.c = torch.randn(3, generator=g, dtype=f64)
    v = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=f64)] * 4)  # (16, 4)
    h = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=f64)] * 3)  # (8, 3)
    neg_e = (v @ rbm.b)[:, None] + (h @ rbm.c)[None] + v @ rbm.W @ h.T  # (16, 8)
    log_p = torch.logsumexp(neg_e, 1) - torch.logsumexp(neg_e.flatten(), 0)
    assert torch.allclose(exact_log_likelihood(rbm, v), log_p, atol=1e-12)
    big = BernoulliRBM(30, 25, dtype=f64)
    with pytest.raises(ValueError, match="use ais"):
        exact_log_likelihood(big, torch.zeros(1, 30, dtype=f64))
    normal = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert torch.equal(exact_log_likelihood(normal, v[:2, :2].float()),
                       normal.log_prob(v[:2, :2].float()))  # fmt: skip
    with pytest.raises(ValueError, match="log_prob"):
        exact_log_likelihood(object(), v)


def test_scaling_the_data_by_a_tenth_adds_d_log_10_nats():
    # §20.14: a Gaussian fitted by maximum likelihood to 0.1 x scores D log 10 nats
    # per example more than the one fitted to x: the same model, a different task
    g = torch.Generator().manual_seed(0)
    D = 6
    mix = torch.randn(D, D, generator=g, dtype=f64)
    x = torch.randn(500, D, generator=g, dtype=f64) @ mix

    def fitted_mean_log_lik(data):
        mu = data.mean(0)
        cov = (data - mu).T @ (data - mu) / len(data)  # the ML covariance
        mvn = torch.distributions.MultivariateNormal(mu, cov)
        return float(mvn.log_prob(data).mean())

    gain = fitted_mean_log_lik(0.1 * x) - fitted_mean_log_lik(x)
    assert gain == pytest.approx(D * math.log(10), rel=1e-9)


def test_bad_input_is_rejected():
    m = PPCA()
    x = torch.randn(3, m.D, dtype=f64)
    ll = m.log_lik
    with pytest.raises(ValueError, match=r"shape \(B, D\)"):
        ais_log_likelihood(ll, x[0], latent_dim=2)
    with pytest.raises(ValueError, match="latent_dim"):
        ais_log_likelihood(ll, x, latent_dim=0)
    with pytest.raises(ValueError, match="n_chains must be"):
        ais_log_likelihood(ll, x, latent_dim=2, n_chains=0)
    with pytest.raises(ValueError, match="needs z_init"):
        ais_log_likelihood(ll, x, latent_dim=2, reverse=True)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        ais_log_likelihood(ll, x, latent_dim=2, reverse=True, z_init=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="step size must be"):
        ais_log_likelihood(ll, x, latent_dim=2, step_size=-0.1)
    with pytest.raises(ValueError, match="step size must be"):
        ais_log_likelihood(ll, x, latent_dim=2, n_betas=3, step_size=lambda b: 0.0)
    with pytest.raises(ValueError, match="'tune', a float"):
        ais_log_likelihood(ll, x, latent_dim=2, step_size="auto")
    with pytest.raises(ValueError, match="betas must be"):
        ais_log_likelihood(ll, x, latent_dim=2, betas=torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        bdmc(ll, x, torch.zeros(2, 2), latent_dim=2)
    with pytest.raises(ValueError, match="sigma must be"):
        gaussian_decoder(m.G, 0.0)
    with pytest.raises(ValueError, match="same D|one D"):
        nearest_neighbours(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\]"):
        nearest_neighbours(torch.zeros(2, 3), torch.zeros(4, 3), k=5)
    with pytest.raises(ValueError, match="dim must be"):
        bits_per_dim(1.0, 0)
