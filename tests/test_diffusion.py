"""dgmlib.diffusion: the forward chain, its posterior, the bound and the samplers.

References independent of the code: the forward chain simulated step by step, Bayes'
rule by quadrature on a grid, trajectories of the whole chain, exact enumeration of a
tiny binomial chain, and the exact log-likelihood of a linear-Gaussian T = 1 chain.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from dgmlib.diffusion import (
    BinomialDiffusion,
    DenoisingMLP,
    GaussianDiffusion,
    fit_diffusion,
    linear_betas,
)
from dgmlib.diffusion import gaussian as gaussian_module

DT = torch.float64
BETAS = linear_betas(10, 0.01, 0.1)  # beta_t = 0.01 t


class SumAlphaBar(GaussianDiffusion):  # broken: alpha_bar_t = 1 - sum_s beta_s
    def __init__(self, betas, **kw):
        super().__init__(betas, **kw)
        self.alpha_bar = 1 - torch.cumsum(self.betas, 0)


class NoSqrt(GaussianDiffusion):  # broken: the mean sqrt(alpha_bar) x_0 lost its sqrt
    def q_sample(self, x0, t, noise):
        a_bar = self.alpha_bar[t - 1]
        return a_bar * x0 + (1 - a_bar).sqrt() * noise


Q_SAMPLE_VARIANTS = {
    "correct": GaussianDiffusion,
    "sum": SumAlphaBar,
    "no_sqrt": NoSqrt,
}


def forward_moments(cls, seed: int, n: int = 20_000, t: int = 7):
    """Largest |z| over three x_0 of the mean and variance of q_sample's x_t against
    x_t simulated through the forward chain step by step (independent draws).
    """
    g = torch.Generator().manual_seed(seed)
    diff = cls(BETAS)
    x0 = torch.tensor([-2.0, 0.5, 3.0], dtype=DT).repeat_interleave(n)[:, None]
    closed = diff.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=DT))
    x = x0.clone()
    for beta in BETAS[:t]:  # x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) z
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(
            x.shape, generator=g, dtype=DT
        )
    zs = []
    for a, b in zip(closed.view(3, n), x.view(3, n)):
        zs.append(float((a.mean() - b.mean()) / (a.var() / n + b.var() / n).sqrt()))
        # log of a sample variance has sd sqrt(2 / (n - 1)); two of them
        zs.append(float((a.var() / b.var()).log() / math.sqrt(4 / (n - 1))))
    return max(abs(z) for z in zs)


@pytest.mark.parametrize("variant", list(Q_SAMPLE_VARIANTS))
def test_q_sample_matches_the_forward_chain(variant, one_thread):
    # Seeds 0-99 (forward_moments, |z| < 4.5 over 6 z-scores): correct, max |z|
    # 0.7-3.1 (false alarms 0/100; 6 two-sided 4.5-sigma tails imply about 4e-5);
    # sum, max |z| 8.3-13.0 (misses 0/100); no_sqrt, 67-72 (misses 0/100).
    z = forward_moments(Q_SAMPLE_VARIANTS[variant], seed=3)
    ok = z < 4.5
    assert ok == (variant == "correct"), z


class BetaPosterior(GaussianDiffusion):  # broken: posterior variance beta_t
    def q_posterior(self, x0, xt, t):
        mean, _ = super().q_posterior(x0, xt, t)
        t = torch.as_tensor(t).expand(x0.shape[0])
        return mean, self.betas[t - 1].reshape(-1, 1).to(x0.dtype)


class SwappedPosterior(GaussianDiffusion):  # broken: the mean's coefficients swapped
    def q_posterior(self, x0, xt, t):
        return super().q_posterior(xt, x0, t)


POSTERIOR_VARIANTS = {
    "correct": GaussianDiffusion,
    "beta_variance": BetaPosterior,
    "swapped": SwappedPosterior,
}


def bayes_posterior(x0: float, xt: float, t: int) -> tuple[float, float]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) by quadrature of Bayes' rule."""
    b = BETAS.numpy()
    a_bar_prev = np.prod(1 - b[: t - 1])
    grid = np.linspace(-12, 12, 200_001)
    log_w = stats.norm.logpdf(xt, np.sqrt(1 - b[t - 1]) * grid, np.sqrt(b[t - 1]))
    log_w += stats.norm.logpdf(grid, np.sqrt(a_bar_prev) * x0, np.sqrt(1 - a_bar_prev))
    w = np.exp(log_w - log_w.max())
    w /= np.trapezoid(w, grid)
    mean = np.trapezoid(w * grid, grid)
    return mean, np.trapezoid(w * (grid - mean) ** 2, grid)


@pytest.mark.parametrize("variant", list(POSTERIOR_VARIANTS))
def test_q_posterior_is_bayes_rule(variant):
    diff = POSTERIOR_VARIANTS[variant](BETAS)
    errs = []
    for x0, xt, t in [(1.5, -0.3, 2), (-2.0, 0.7, 5), (0.4, 2.5, 10)]:
        mean, var = diff.q_posterior(
            torch.tensor([[x0]], dtype=DT), torch.tensor([[xt]], dtype=DT), t
        )
        ref_mean, ref_var = bayes_posterior(x0, xt, t)
        errs += [abs(float(mean) - ref_mean), abs(float(var) / ref_var - 1)]
    ok = max(errs) < 1e-6  # deterministic: quadrature error is about 1e-10
    assert ok == (variant == "correct"), errs


class EpsModel(nn.Module):
    """A fixed denoiser eps = a x + c t / T + d (float64), for exact checks."""

    def __init__(self, a=0.4, c=0.3, d=-0.1, T=10, learned=False):
        super().__init__()
        self.a, self.c, self.d, self.T, self.learned = a, c, d, T, learned
        self.w = nn.Parameter(torch.zeros((), dtype=DT))
        self.data_shape = (1,)

    def forward(self, x, t):
        eps = self.a * x + self.c * t[:, None].to(x.dtype) / self.T + self.d + self.w
        if not self.learned:
            return eps
        return torch.cat([eps, 0.5 - x.tanh()], -1)  # v depends on x_t


def trajectory_bound(diff, model, x0, g):
    """-log p(x_{0:T}) + log q(x_{1:T} | x_0) along forward trajectories simulated step
    by step, (B,): its mean is -K as well, without the closed forms.
    """
    logq, logp, x = 0.0, 0.0, x0
    xs = [x0]
    for beta in diff.betas:
        mean = (1 - beta).sqrt() * x
        x = mean + beta.sqrt() * torch.randn(x.shape, generator=g, dtype=DT)
        logq = logq + stats_norm(x, mean, beta.log())
        xs.append(x)
    logp = stats_norm(xs[-1], 0 * x0, 0 * x0)
    for t in range(diff.T, 0, -1):
        tt = torch.full((len(x0),), t, dtype=torch.long)
        mean, logvar, _ = diff.p_mean_logvar(model, xs[t], tt)
        logp = logp + stats_norm(xs[t - 1], mean, logvar)
    return logq - logp


def stats_norm(x, mean, logvar):  # log N(x; mean, e^logvar), summed over dims
    z = -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 / logvar.exp())
    return z.reshape(len(x), -1).sum(1)


def bound_gap(cls, variance: str, seed: int, n: int = 40_000):
    g = torch.Generator().manual_seed(seed)
    diff = cls(linear_betas(4, 0.1, 0.3), variance=variance)
    model = EpsModel(T=4, learned=variance == "learned")
    x0 = torch.full((n, 1), 2.0, dtype=DT)
    with torch.no_grad():
        terms = diff.bound(model, x0, generator=g)
        ref = trajectory_bound(diff, model, x0, g)
    se = math.sqrt(terms.sum(1).var() / n + ref.var() / n)
    return float(terms.sum(1).mean() - ref.mean()), se


class NoPriorTerm(GaussianDiffusion):  # broken: the bound forgets L_T
    def prior_term(self, x0):
        return torch.zeros(x0.shape[0], dtype=x0.dtype)


BOUND_VARIANTS = {
    "correct": GaussianDiffusion,
    "beta_variance": BetaPosterior,
    "no_prior_term": NoPriorTerm,
}


@pytest.mark.parametrize("variance", ["beta", "learned"])
@pytest.mark.parametrize("variant", list(BOUND_VARIANTS))
def test_bound_terms_sum_to_the_trajectory_bound(variant, variance, one_thread):
    # Seeds 0-19 (bound_gap, |gap| < 0.05 nats with se < 0.015): correct, |gap| <=
    # 0.019, se <= 0.010 (false alarms 0/20 for both variances); beta_variance, gap
    # -0.26 to -0.23 (beta) and 0.07-0.10 (learned) (misses 0/20); no_prior_term, gap
    # -0.87 to -0.84 (both variances; misses 0/20).
    gap, se = bound_gap(BOUND_VARIANTS[variant], variance, seed=1)
    ok = abs(gap) < 0.05 and se < 0.015
    assert ok == (variant == "correct"), (gap, se)


def test_loss_is_an_unbiased_estimate_of_the_bound(one_thread):
    g = torch.Generator().manual_seed(0)
    diff = GaussianDiffusion(linear_betas(4, 0.1, 0.3))
    x0 = torch.full((40_000, 1), 2.0, dtype=DT)
    with torch.no_grad():
        nll, simple = diff.loss(EpsModel(T=4), x0, generator=g)
        full = diff.bound(EpsModel(T=4), x0, generator=g).sum(1)
    assert nll.shape == simple.shape == (40_000,)
    assert abs(float(nll.mean() - full.mean())) < 0.1  # T-fold noisier estimate


class ExactReverse(nn.Module):  # eps = sqrt(beta) x: mu = sqrt(1 - beta) x_1, exact
    def __init__(self, beta):
        super().__init__()
        self.beta, self.w = beta, nn.Parameter(torch.zeros((), dtype=DT))
        self.data_shape = (1,)

    def forward(self, x, t):
        return math.sqrt(self.beta) * x + self.w


def no_log_2pi(x, mu, logvar):  # broken L_0: the Gaussian's constant forgotten
    return 0.5 * (logvar + (x - mu) ** 2 / logvar.exp())


@pytest.mark.parametrize("variant", ["correct", "no_log_2pi"])
def test_bound_is_exact_for_a_linear_gaussian_chain(variant, monkeypatch):
    # x_0 ~ N(0, 1), T = 1: p(x_1) = N(0, 1) = q(x_1) and p(x_0 | x_1) the exact
    # posterior, so the bound is log N(x_0; 0, 1) for every x_0 (no Jensen gap).
    if variant == "no_log_2pi":
        monkeypatch.setattr(gaussian_module, "gaussian_nll", no_log_2pi)
    beta, g = 0.3, torch.Generator().manual_seed(0)
    diff = GaussianDiffusion([beta])
    x0 = torch.tensor([-1.5, 0.0, 2.0], dtype=DT).repeat_interleave(100_000)[:, None]
    with torch.no_grad():
        bound = -diff.bound(ExactReverse(beta), x0, generator=g).sum(1)
    err = bound.view(3, -1).mean(1) - stats_norm(x0[::100_000], 0 * x0[:3], 0 * x0[:3])
    ok = float(err.abs().max()) < 0.01  # MC se about 2e-3
    assert ok == (variant == "correct"), err


class NoiselessSampler(GaussianDiffusion):  # broken: x_{t-1} = mu, no noise
    def p_mean_logvar(self, model, xt, t, **kw):
        mean, logvar, eps = super().p_mean_logvar(model, xt, t, **kw)
        return mean, logvar - 60, eps


def sample_ks(cls, seed: int) -> float:
    beta, g = 0.3, torch.Generator().manual_seed(seed)
    x = cls([beta]).sample(ExactReverse(beta), 20_000, generator=g)
    return stats.kstest(x[:, 0].numpy(), "norm").pvalue


@pytest.mark.parametrize("variant", ["correct", "noiseless"])
def test_sample_from_an_exact_reverse_chain_is_the_data(variant):
    # Seeds 0-99 (sample_ks, 20,000 draws, p < 1e-4 fails: 1 in 10,000 by
    # construction): correct, p >= 0.008 (false alarms 0/100); noiseless (x_0 =
    # sqrt(0.7) x_1 has sd 0.84), p <= 1e-29 (misses 0/100).
    cls = {"correct": GaussianDiffusion, "noiseless": NoiselessSampler}[variant]
    p = sample_ks(cls, seed=0)
    ok = p > 1e-4
    assert ok == (variant == "correct"), p


# ---------------------------------------------------------------- binomial diffusion
def enumerate_binomial(diff, model, x0):
    """Exact -K and -log p(x_0) of a tiny binomial chain by summing over all paths
    x_{1:T}, with q(x_t | x_{t-1}) from the forward step alone.
    """
    T, D = diff.T, x0.shape[1]
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=DT)
    p_inf = diff.p_inf

    def step_prob(x_prev, x_next, beta):  # q(x_t | x_{t-1}), product over units
        on = (1 - beta) * x_prev + beta * p_inf
        return torch.where(x_next == 1, on, 1 - on).prod(-1)

    def reverse_prob(x_t, x_prev, t):  # p(x_{t-1} | x_t)
        on = diff.p_prob(model, x_t[None], torch.tensor([t]))[0]
        return torch.where(x_prev == 1, on, 1 - on).prod(-1)

    neg_k, px, marg = 0.0, 0.0, {}
    for path in itertools.product(range(len(states)), repeat=T):
        xs = [x0[0]] + [states[i] for i in path]
        q = math.prod(
            float(step_prob(xs[t - 1], xs[t], diff.betas[t - 1]))
            for t in range(1, T + 1)
        )
        p = float(torch.where(xs[T] == 1, p_inf, 1 - p_inf).prod())
        p *= math.prod(
            float(reverse_prob(xs[t], xs[t - 1], t)) for t in range(1, T + 1)
        )
        neg_k += q * (math.log(q) - math.log(p))
        px += p
        for t in range(1, T + 1):  # q(x_t | x_0) by enumeration
            marg[t, path[t - 1]] = marg.get((t, path[t - 1]), 0.0) + q
    return neg_k, -math.log(px), marg, states


def bernoulli_posterior_ignoring_xt(self, x0, xt, t):  # broken: q(x_{t-1} | x_0)
    a = self.alpha_bar_prev[torch.as_tensor(t).expand(x0.shape[0]) - 1][:, None]
    post = a * x0 + (1 - a) * self.p_inf
    return post, post * (1 - post)


@pytest.mark.parametrize("variant", ["correct", "ignores_xt"])
def test_binomial_bound_against_enumeration(variant, monkeypatch):
    if variant == "ignores_xt":
        monkeypatch.setattr(
            BinomialDiffusion, "q_posterior", bernoulli_posterior_ignoring_xt
        )
    torch.manual_seed(0)
    diff = BinomialDiffusion(3, p_inf=0.3)
    model = DenoisingMLP(2, 16, 1).double()
    errs = []
    with torch.no_grad():
        for x0 in ([[0.0, 1.0]], [[1.0, 1.0]]):
            x0 = torch.tensor(x0, dtype=DT)
            neg_k, neg_log_p, marg, states = enumerate_binomial(diff, model, x0)
            ours = float(diff.prior_term(x0))
            for (t, i), w in marg.items():  # E_{q(x_t | x_0)} L_{t-1}
                ours += w * float(diff.step_term(model, x0, states[i][None], t))
            errs.append(abs(ours - neg_k))
            assert neg_k >= neg_log_p - 1e-12  # Jensen: -K >= -log p(x_0)
    ok = max(errs) < 1e-9  # deterministic
    assert ok == (variant == "correct"), errs


def test_binomial_q_sample_marginal():
    g = torch.Generator().manual_seed(0)
    diff = BinomialDiffusion(10, p_inf=0.2)
    x0 = torch.ones(50_000, 1, dtype=DT)
    xt = diff.q_sample(x0, 4, torch.rand(x0.shape, generator=g, dtype=DT))
    # beta_t = 1/(T - t + 1): alpha_bar_4 = 1 - 4/10, q(x_4 = 1 | 1) = 0.6 + 0.4 * 0.2
    assert abs(float(xt.mean()) - 0.68) < 4.5 * math.sqrt(0.68 * 0.32 / 50_000)


def test_fit_diffusion_records_history(one_thread):
    g = torch.Generator().manual_seed(0)
    diff = GaussianDiffusion(linear_betas(20, 1e-3, 0.3), variance="learned")
    torch.manual_seed(0)
    model = DenoisingMLP(2, 32, 1, out_dim=4)
    data = torch.randn(256, 2, generator=g) * 0.3 + 1.0
    hist = fit_diffusion(
        diff,
        model,
        data,
        objective="hybrid",
        epochs=3,
        batch_size=128,
        generator=g,
        quiet=True,
    )
    assert len(hist["loss"]) == 6 and "nll" in hist and "simple" in hist
    with pytest.raises(ValueError, match="objective must be one of"):
        fit_diffusion(diff, model, data, objective="elbo")


# ---------------------------------------------------------------- bad input
def test_bad_input_is_rejected():
    diff = GaussianDiffusion(BETAS)
    x = torch.zeros(4, 2, dtype=DT)
    for t in (0, 11, torch.tensor([1, 2, 3, 11])):
        with pytest.raises(ValueError, match=r"t must lie in 1\.\.T = 1\.\.10"):
            diff.q_sample(x, t, x)
    with pytest.raises(ValueError, match="integer steps"):
        diff.q_sample(x, 2.5, x)
    with pytest.raises(ValueError, match=r"a \(B,\) tensor with B = 4"):
        diff.q_sample(x, torch.tensor([1, 2]), x)
    with pytest.raises(ValueError, match="x0 and noise must have the same shape"):
        diff.q_sample(x, 3, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x0 and xt must have the same shape"):
        diff.q_posterior(x, torch.zeros(3, 2), 3)
    for betas in ([0.1, 1.0], [0.0, 0.1], [-0.1], [[0.1, 0.2]], []):
        with pytest.raises(ValueError, match=r"beta|1-D"):
            GaussianDiffusion(betas)
    with pytest.raises(ValueError, match="variance must be one of"):
        GaussianDiffusion(BETAS, variance="fixed")
    with pytest.raises(ValueError, match="eps and v stacked"):
        GaussianDiffusion(BETAS, variance="learned").loss(EpsModel(), x[:, :1])
    with pytest.raises(ValueError, match="p_inf must lie in"):
        BinomialDiffusion(5, p_inf=1.0)
    with pytest.raises(ValueError, match="T must be a positive int"):
        BinomialDiffusion(0)
    with pytest.raises(ValueError, match=r"binary x0 in \{0, 1\}"):
        BinomialDiffusion(5).q_sample(x + 0.5, 1, x)
    with pytest.raises(ValueError, match="data_shape"):
        diff.sample(nn.Linear(1, 1), 3)
