"""Gradient estimators through random operations (dgmlib.gradients) against closed
forms.

Statistical checks use fixed seeds and state their failure rate: |z| < 5 for a mean
within 5 standard errors (two-sided Gaussian tail 5.7e-7 per coordinate, by the CLT),
and χ² tests at the 1 - 1e-4 quantile.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import optimize, stats
from torch.distributions import (
    Bernoulli,
    Categorical,
    Exponential,
    Gamma,
    Independent,
    Normal,
    OneHotCategorical,
)

from dgmlib.exact import all_states
from dgmlib.gradients import (
    Baseline,
    ConstantBaseline,
    GradientEstimate,
    MovingAverageBaseline,
    OptimalBaseline,
    VarianceNormalization,
    gumbel_max,
    optimal_baseline,
    reinforce_grad,
    relaxed_bernoulli,
    relaxed_categorical,
    reparam_grad,
    sample_gumbel,
)

Z = 5.0  # |z| < 5: failure probability 5.7e-7 per coordinate


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def gaussian_sample(w, n, *, generator=None):
    """y = mu + sigma z (eq. 20.55), params w = (mu, sigma)."""
    return w[0] + w[1] * torch.randn(n, generator=generator, dtype=w.dtype)


def gaussian(w):
    return Normal(w[0], w[1])


def square(y):
    return y**2


W = torch.tensor([1.0, 0.5], dtype=torch.float64)  # mu, sigma
EXACT = torch.tensor([2.0, 1.0], dtype=torch.float64)  # grad of E[y^2] = mu^2 + sigma^2


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- bernoulli problem enumerated exactly ---------------------------------------------
THETA = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=torch.float64)


def count_squared(y):
    return y.sum(-1) ** 2


def bernoulli_exact(theta=THETA, f=count_squared):
    """Every state y, p(y), J(y), scores, E[J] and the exact gradient
    (by enumeration + autograd).
    """
    states = all_states(len(theta), dtype=torch.float64)
    th = theta.clone().requires_grad_(True)
    p = Bernoulli(logits=th).log_prob(states).sum(1).exp()
    e_j = (p * f(states)).sum()
    (grad,) = torch.autograd.grad(e_j, th)
    scores = states - torch.sigmoid(theta)  # d log p / d theta for logits
    return states, p.detach(), f(states), scores, float(e_j.detach()), grad


def exact_variance(b, theta=THETA, f=count_squared):
    """Per-sample variance of (J - b) * score, per parameter, by enumeration."""
    _, p, j, s, _, grad = bernoulli_exact(theta, f)
    b = torch.as_tensor(b, dtype=torch.float64)
    return (p[:, None] * (j[:, None] - b) ** 2 * s**2).sum(0) - grad**2


# --- GradientEstimate -----------------------------------------------------------------
def test_gradient_estimate_summaries():
    ps = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]], dtype=torch.float64)
    e = GradientEstimate(ps)
    assert e.n == 3
    assert torch.allclose(e.mean, torch.tensor([3.0, 6.0], dtype=torch.float64))
    assert torch.allclose(e.variance, torch.tensor([4.0, 16.0], dtype=torch.float64))
    assert torch.allclose(
        e.stderr, (torch.tensor([4.0, 16.0], dtype=torch.float64) / 3).sqrt()
    )
    assert torch.allclose(
        e.z_score(torch.tensor([3.0, 6.0])), torch.zeros(2, dtype=torch.float64)
    )
    assert "n=3" in repr(e)
    with pytest.raises(ValueError, match="n_samples >= 2"):
        _ = GradientEstimate(ps[:1]).variance


# --- reparametrization ----------------------------------------------------------------
def test_reparam_per_sample_matches_hand_derivative():
    g1, g2 = gen(3), gen(3)
    e = reparam_grad(square, W, gaussian_sample, 50, generator=g1)
    z = torch.randn(50, generator=g2, dtype=torch.float64)
    y = W[0] + W[1] * z
    expected = torch.stack([2 * y, 2 * y * z], 1)  # d y^2/d mu, d y^2/d sigma
    assert e.per_sample.shape == (50, 2)
    assert torch.allclose(e.per_sample, expected, atol=1e-12)


def test_reparam_unbiased_against_closed_form():
    e = reparam_grad(square, W, gaussian_sample, 100_000, generator=gen(0))
    assert e.z_score(EXACT).abs().max() < Z, e
    # per-sample variances in closed form: Var(2y) = 4 sigma^2; Var(2yz) = 4
    # (mu^2 + 2 sigma^2)
    assert torch.allclose(
        e.variance, torch.tensor([1.0, 6.0], dtype=torch.float64), rtol=0.05
    )


def test_reparam_matrix_params_and_untouched_grad():
    w = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=torch.float64, requires_grad=True)

    def sample(w, n, *, generator=None):
        return w + torch.randn(n, 2, 2, generator=generator, dtype=w.dtype)

    e = reparam_grad(lambda y: (y**2).sum((1, 2)), w, sample, 4000, generator=gen(1))
    assert e.per_sample.shape == (4000, 2, 2)
    assert e.z_score(2 * w.detach()).abs().max() < Z
    assert w.grad is None


def test_reparam_reproducible_with_generator():
    a = reparam_grad(square, W, gaussian_sample, 10, generator=gen(7)).per_sample
    b = reparam_grad(square, W, gaussian_sample, 10, generator=gen(7)).per_sample
    assert torch.equal(a, b)


# --- REINFORCE ------------------------------------------------------------------------
def test_reinforce_per_sample_matches_hand_score():
    e = reinforce_grad(square, gaussian, W, 40, generator=gen(5))
    y = W[0] + W[1] * torch.randn(40, generator=gen(5), dtype=torch.float64)
    mu, s = W
    score = torch.stack(
        [(y - mu) / s**2, (y - mu) ** 2 / s**3 - 1 / s], 1
    )  # d log N / d (mu, sigma)
    assert torch.allclose(e.per_sample, y[:, None] ** 2 * score, atol=1e-10)


def test_reinforce_unbiased_gaussian():
    e = reinforce_grad(square, gaussian, W, 200_000, generator=gen(0))
    assert e.z_score(EXACT).abs().max() < Z, e
    assert (
        e.variance > 10 * torch.tensor([1.0, 6.0], dtype=torch.float64)
    ).all()  # far noisier than reparam


def test_reinforce_unbiased_bernoulli_against_enumeration():
    *_, grad = bernoulli_exact()
    e = reinforce_grad(
        count_squared, lambda w: Bernoulli(logits=w), THETA, 50_000, generator=gen(1)
    )
    assert e.per_sample.shape == (50_000, 5)
    assert e.z_score(grad).abs().max() < Z, (e, grad)
    # parametrized by probabilities instead: the same draws and the same per-sample
    # estimates
    e2 = reinforce_grad(
        count_squared,
        lambda w: Bernoulli(probs=torch.sigmoid(w)),
        THETA,
        50_000,
        generator=gen(1),
    )
    assert torch.allclose(e2.per_sample, e.per_sample, atol=1e-10)
    # the measured per-sample variance matches the enumerated one
    assert torch.allclose(e.variance, exact_variance(0.0), rtol=0.1)


@pytest.mark.parametrize(
    "make",
    [
        lambda w: Categorical(logits=w),
        lambda w: OneHotCategorical(logits=w),
        lambda w: Categorical(
            probs=torch.softmax(w, 0)
        ),  # lazily computed logits keep their graph
        lambda w: OneHotCategorical(probs=torch.softmax(w, 0)),
    ],
    ids=["categorical", "one-hot", "categorical-probs", "one-hot-probs"],
)
def test_reinforce_unbiased_categorical(make):
    logits = torch.tensor([0.5, -1.0, 0.0, 1.2], dtype=torch.float64)
    cost = torch.tensor([1.0, 3.0, -1.0, 2.0], dtype=torch.float64)
    f = (lambda y: cost[y]) if make(logits).event_shape == () else (lambda y: y @ cost)
    p = torch.softmax(logits, 0)
    grad = p * (cost - p @ cost)
    e = reinforce_grad(f, make, logits, 50_000, generator=gen(2))
    assert e.z_score(grad).abs().max() < Z


def test_reinforce_independent_and_icdf_distributions():
    # Independent(Normal) over 3 coordinates: grad of E[sum y^2] w.r.t. the means is 2
    # mu
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    e = reinforce_grad(
        lambda y: (y**2).sum(1),
        lambda w: Independent(Normal(w, 1.0), 1),
        mu,
        100_000,
        baseline=float((mu**2).sum() + 3),
        generator=gen(3),
    )
    assert e.z_score(2 * mu).abs().max() < Z
    # Exponential(rate) through its inverse CDF: E[y] = 1/rate, d/d rate = -1/rate^2
    rate = torch.tensor([2.0], dtype=torch.float64)
    e = reinforce_grad(
        lambda y: y[:, 0],
        lambda w: Exponential(w),
        rate,
        100_000,
        baseline=0.5,
        generator=gen(4),
    )
    assert abs(float(e.z_score(torch.tensor([-0.25])))) < Z


def test_reinforce_adds_direct_dependence_of_f_on_params():
    # J(y; w) = w y with y ~ N(w, 1): E[J] = w^2, gradient 2w. The score term alone
    # averages E[w y (y - w)] = w; the direct term E[y] = w supplies the other half.
    w = torch.tensor([0.7], dtype=torch.float64)
    holder = {}

    def dist(v):
        holder["w"] = v  # f closes over the differentiated copy of params
        return Normal(v[0], 1.0)

    e = reinforce_grad(lambda y: holder["w"][0] * y, dist, w, 100_000, generator=gen(6))
    assert abs(float(e.z_score(2 * w))) < Z, e


# --- baselines ------------------------------------------------------------------------
def test_optimal_baseline_formula_equals_brute_force_minimum():
    _, p, j, s, _, grad = bernoulli_exact()
    b_star = optimal_baseline(j, s, weights=p)
    for i in range(len(THETA)):
        res = optimize.minimize_scalar(
            lambda b: float(exact_variance(b)[i]),
            bounds=(-50, 50),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert abs(res.x - float(b_star[i])) < 1e-5, (i, res.x, b_star[i])
    # ... and is a different number for each parameter (eq. 20.68), none equal to E[J]
    assert float(b_star.max() - b_star.min()) > 1.0


def test_optimal_baseline_variance_is_smallest():
    _, p, j, s, e_j, _ = bernoulli_exact()
    v_star = exact_variance(optimal_baseline(j, s, weights=p))
    for b in (0.0, 1.0, e_j, -3.0, 10.0):
        assert (v_star <= exact_variance(b) + 1e-12).all()
    # V(b) = V(b*) + (b - b*)^2 E[s^2]: a parabola in b
    b_star = optimal_baseline(j, s, weights=p)
    e_s2 = (p[:, None] * s**2).sum(0)
    assert torch.allclose(
        exact_variance(2.5), v_star + (2.5 - b_star) ** 2 * e_s2, atol=1e-12
    )


def test_optimal_baseline_single_bernoulli_has_zero_variance():
    # one Bernoulli(sigmoid(theta)): b* = (1 - p) J(1) + p J(0) makes (J - b*) s
    # constant = the gradient
    theta = torch.tensor([0.8], dtype=torch.float64)
    f = lambda y: 3.0 * y[:, 0] + 1.0  # noqa: E731
    _, p, j, s, _, grad = bernoulli_exact(theta, f)
    b_star = optimal_baseline(j, s, weights=p)
    q = float(torch.sigmoid(theta))
    assert abs(float(b_star) - ((1 - q) * 4.0 + q * 1.0)) < 1e-12
    e = reinforce_grad(
        f, lambda w: Bernoulli(logits=w), theta, 100, baseline=b_star, generator=gen(0)
    )
    assert torch.allclose(e.per_sample, grad.expand(100, 1), atol=1e-12)


def test_optimal_baseline_monte_carlo_and_validation():
    _, p, j, s, _, _ = bernoulli_exact()
    # with uniform weights over a support that repeats states in proportion to p, MC =
    # exact
    reps = torch.round(p * 4000).long()
    idx = torch.repeat_interleave(torch.arange(len(p)), reps)
    mc = optimal_baseline(j[idx], s[idx])
    assert torch.allclose(mc, optimal_baseline(j, s, weights=reps.double()), atol=1e-12)
    assert torch.equal(
        optimal_baseline(torch.ones(3), torch.zeros(3, 2)), torch.zeros(2)
    )
    with pytest.raises(ValueError, match="values"):
        optimal_baseline(j[:5], s)
    with pytest.raises(ValueError, match="weights"):
        optimal_baseline(j, s, weights=p[:3])


@pytest.mark.parametrize(
    "make",
    [
        lambda e_j, b_star: None,
        lambda e_j, b_star: 1.0,
        lambda e_j, b_star: ConstantBaseline(b_star),
        lambda e_j, b_star: MovingAverageBaseline(0.9),
        lambda e_j, b_star: OptimalBaseline(0.9),
        lambda e_j, b_star: VarianceNormalization(
            MovingAverageBaseline(0.9), decay=0.9
        ),
    ],
    ids=[
        "none",
        "constant",
        "exact-optimal",
        "moving-average",
        "optimal-ema",
        "variance-normalized",
    ],
)
def test_baselines_keep_reinforce_unbiased_and_rank_variances(make):
    _, p, j, s, e_j, grad = bernoulli_exact()
    b_star = optimal_baseline(j, s, weights=p)
    bl = make(e_j, b_star)
    g = gen(11)
    dist = lambda w: Bernoulli(logits=w)  # noqa: E731
    per, scales = [], []
    for k in range(120):
        e = reinforce_grad(count_squared, dist, THETA, 100, baseline=bl, generator=g)
        if k >= 20:  # after the moving averages warmed up
            scale = bl.scale if isinstance(bl, VarianceNormalization) else 1.0
            per.append(
                e.per_sample * scale
            )  # undo the normalization: unbiased for the gradient
            scales.append(scale)
    est = GradientEstimate(torch.cat(per))
    assert est.z_score(grad).abs().max() < Z, (bl, est.z_score(grad))
    v = est.variance.sum()
    assert (
        v >= 0.9 * exact_variance(b_star).sum()
    )  # nothing beats b* (up to 10% sampling error)
    if isinstance(bl, (MovingAverageBaseline, OptimalBaseline)):
        assert (
            v < 0.5 * exact_variance(0.0).sum()
        )  # any sensible baseline halves it here
    if isinstance(bl, VarianceNormalization):
        assert min(scales) > 2.0  # the signal's sd here is about 4


def test_moving_average_and_optimal_ema_converge():
    _, p, j, s, e_j, _ = bernoulli_exact()
    b_star = optimal_baseline(j, s, weights=p)
    ma, opt = MovingAverageBaseline(0.95), OptimalBaseline(0.95)
    g = gen(12)
    for _ in range(300):
        reinforce_grad(
            count_squared,
            lambda w: Bernoulli(logits=w),
            THETA,
            100,
            baseline=ma,
            generator=g,
        )
        reinforce_grad(
            count_squared,
            lambda w: Bernoulli(logits=w),
            THETA,
            100,
            baseline=opt,
            generator=g,
        )
    assert abs(ma.b - e_j) < 0.5
    vals = opt.value(torch.zeros(1), torch.zeros(1, 5))
    assert torch.allclose(vals, b_star, rtol=0.15)


def test_variance_normalization_makes_the_signal_scale_free():
    # J and 100 J: raw variances differ by 10^4, normalized ones not at all
    # (after warm-up)
    variances = {}
    for c in (1.0, 100.0):
        bl = VarianceNormalization(decay=0.9)
        g = gen(13)
        per = [
            reinforce_grad(
                lambda y: c * count_squared(y),
                lambda w: Bernoulli(logits=w),
                THETA,
                100,
                baseline=bl,
                generator=g,
            ).per_sample
            for _ in range(60)
        ][10:]
        variances[c] = float(GradientEstimate(torch.cat(per)).variance.sum())
    assert 0.8 < variances[100.0] / variances[1.0] < 1.25, variances


def test_baseline_validation():
    with pytest.raises(ValueError, match="decay"):
        MovingAverageBaseline(1.0)
    with pytest.raises(ValueError, match="decay"):
        OptimalBaseline(-0.1)
    with pytest.raises(ValueError, match="min_scale"):
        VarianceNormalization(min_scale=0.0)
    with pytest.raises(ValueError, match="finite"):
        ConstantBaseline(float("nan"))
    with pytest.raises(ValueError, match="baseline must be"):
        reinforce_grad(
            count_squared, lambda w: Bernoulli(logits=w), THETA, 10, baseline="mean"
        )
    with pytest.raises(ValueError, match="shape of params"):
        reinforce_grad(
            count_squared,
            lambda w: Bernoulli(logits=w),
            THETA,
            10,
            baseline=torch.zeros(3),
        )
    assert repr(Baseline()) == "Baseline()"


# --- Gumbel-max and relaxed samples ---------------------------------------------------
def test_gumbel_noise_distribution():
    g = sample_gumbel((200_000,), generator=gen(0), dtype=torch.float64)
    # mean = Euler-Mascheroni constant, variance = pi^2 / 6
    assert abs(float(g.mean()) - 0.5772156649) < Z * math.sqrt(math.pi**2 / 6 / 200_000)
    assert abs(float(g.var()) - math.pi**2 / 6) < 0.03


def test_gumbel_max_chi_square():
    logits = torch.tensor(
        [[1.0, 0.0, -0.5, -2.0, 0.3, float("-inf")], [0.0, 0.0, 0.0, 0.0, 0.0, 2.0]],
        dtype=torch.float64,
    )
    n = 100_000
    idx = gumbel_max(logits, (n,), generator=gen(1))
    assert idx.shape == (n, 2)
    for r in range(2):
        p = torch.softmax(logits[r], 0)
        counts = torch.bincount(idx[:, r], minlength=6).double()
        keep = p > 0
        assert counts[~keep].sum() == 0  # -inf logits are never drawn
        chi2 = float(((counts[keep] - n * p[keep]) ** 2 / (n * p[keep])).sum())
        assert chi2 < stats.chi2.ppf(1 - 1e-4, int(keep.sum()) - 1), (
            chi2
        )  # failure rate 1e-4


def test_relaxed_categorical_on_simplex_and_limits():
    logits = torch.tensor([0.5, -1.0, 0.0, 1.2], dtype=torch.float64)
    y = relaxed_categorical(logits, 0.7, (1000,), generator=gen(2))
    assert y.shape == (1000, 4)
    assert (y >= 0).all() and torch.allclose(
        y.sum(-1), torch.ones(1000, dtype=torch.float64)
    )
    # tau -> 0: one-hot, and its argmax is the Gumbel-max sample drawn with the same
    # noise
    cold = relaxed_categorical(logits, 1e-3, (1000,), generator=gen(3))
    assert (cold.max(-1).values > 0.99).double().mean() > 0.99
    assert torch.equal(cold.argmax(-1), gumbel_max(logits, (1000,), generator=gen(3)))
    # tau -> infinity: uniform
    hot = relaxed_categorical(logits, 1e4, (1000,), generator=gen(4))
    assert torch.allclose(hot, torch.full_like(hot, 0.25), atol=1e-3)
    # batched logits broadcast under the sample shape
    batch = relaxed_categorical(
        torch.zeros(3, 5), torch.tensor(0.5), (7, 2), generator=gen(5)
    )
    assert batch.shape == (7, 2, 3, 5)


def test_relaxed_categorical_is_a_reparametrization():
    logits = torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64, requires_grad=True)
    y = relaxed_categorical(logits, 0.5, (5,), generator=gen(6))
    (grad,) = torch.autograd.grad((y[:, 0]).sum(), logits)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # its gradient estimate is biased at tau = 1 and the bias shrinks as tau -> 0
    cost = torch.tensor([0.0, 4.0, 4.0], dtype=torch.float64)
    p = torch.softmax(logits.detach(), 0)
    exact = p * (cost - p @ cost)
    bias = {}
    for tau in (1.0, 0.05):
        e = reparam_grad(
            lambda y: y @ cost,
            logits,
            lambda w, n, generator: relaxed_categorical(
                w, tau, (n,), generator=generator
            ),
            100_000,
            generator=gen(7),
        )
        bias[tau] = float((e.mean - exact).norm())
        if tau == 1.0:
            assert e.z_score(exact).abs().max() > 10  # clearly biased
    assert bias[0.05] < 0.2 * bias[1.0], bias


def test_relaxed_bernoulli_limits():
    logits = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    y = relaxed_bernoulli(logits, 0.5, (50_000,), generator=gen(8))
    assert y.shape == (50_000, 3) and (y >= 0).all() and (y <= 1).all()
    # thresholding at 1/2 gives exact Bernoulli(sigmoid(logits)) samples, at any
    # temperature
    p = torch.sigmoid(logits)
    freq = (y > 0.5).double().mean(0)
    assert ((freq - p).abs() < Z * (p * (1 - p) / 50_000).sqrt()).all()
    cold = relaxed_bernoulli(logits, 1e-3, (1000,), generator=gen(9))
    assert ((cold < 0.01) | (cold > 0.99)).double().mean() > 0.99
    assert relaxed_bernoulli(torch.tensor(0.3), 1.0, generator=gen(0)).shape == ()


# --- bad input ------------------------------------------------------------------------
def test_bad_input_rejected():
    logits = torch.zeros(3)
    for tau in (
        0.0,
        -1.0,
        float("inf"),
        float("nan"),
        torch.tensor([0.5, 0.0, 1.0]),
        True,
        "1",
    ):
        with pytest.raises(ValueError, match="temperature"):
            relaxed_categorical(logits, tau)
    with pytest.raises(ValueError, match="temperature"):
        relaxed_bernoulli(logits, 0.0)
    with pytest.raises(ValueError, match="scalar"):
        relaxed_categorical(torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match="floating-point"):
        gumbel_max(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="NaN"):
        gumbel_max(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="n_samples"):
        reparam_grad(square, W, gaussian_sample, 0)
    with pytest.raises(ValueError, match="n_samples"):
        reinforce_grad(square, gaussian, W, 2.5)
    with pytest.raises(ValueError, match="floating-point"):
        reparam_grad(square, torch.tensor([1, 2]), gaussian_sample, 10)
    with pytest.raises(ValueError, match="floating-point"):
        reinforce_grad(square, gaussian, [1.0, 0.5], 10)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        reparam_grad(lambda y: y[:, None], W, gaussian_sample, 10)
    with pytest.raises(ValueError, match="do not depend differentiably"):
        reparam_grad(
            square, W, lambda w, n, generator: torch.randn(n, dtype=w.dtype), 10
        )
    with pytest.raises(ValueError, match="must return 10 samples"):
        reparam_grad(
            square,
            W,
            lambda w, n, generator: w[0] + torch.randn(n + 1, dtype=w.dtype),
            10,
        )
    with pytest.raises(ValueError, match="torch.distributions.Distribution"):
        reinforce_grad(square, lambda w: w, W, 10)
    with pytest.raises(ValueError, match="cannot draw from Gamma"):
        reinforce_grad(lambda y: y, lambda w: Gamma(w[0], w[1]), W, 10)
