"""Tests for dgmlib.adversarial.mmd (mmd2, fit_gmmn) and the MMD permutation test of
dgmlib.evaluate.metrics.

References: a direct double loop over pairs of points; the closed-form expectation of
the Gaussian kernel between two isotropic Gaussians; the binomial law of a valid test's
false-positive count. Float64, fixed seeds; each statistical test states the rates of
its correct and broken variants measured over seeds.
"""

import math

import pytest
import torch
from torch import nn

import dgmlib.adversarial.mmd as mmd_module
from dgmlib.adversarial import fit_gmmn, gaussian_kernel, mmd2, sample_generator
from dgmlib.evaluate import metrics, mmd_test

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------- references
def mmd2_double_loop(x, y, bandwidths, unbiased):
    """Gretton et al. (2012), eq. 3 (unbiased) and eq. 5 (biased), pair by pair."""

    def k(a, b):
        return sum(
            math.exp(-float(((a - b) ** 2).sum()) / (2 * s * s)) for s in bandwidths
        )

    n, m = len(x), len(y)
    xx = sum(
        k(x[i], x[j]) for i in range(n) for j in range(n) if i != j or not unbiased
    )
    yy = sum(
        k(y[i], y[j]) for i in range(m) for j in range(m) if i != j or not unbiased
    )
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    dn = n * (n - 1) if unbiased else n * n
    dm = m * (m - 1) if unbiased else m * m
    return xx / dn + yy / dm - 2 * xy / (n * m)


def expected_mmd2(mu, s1, s2, dim, h):
    """MMD^2 between N(0, s1^2 I) and N(mu 1, s2^2 I) in ``dim`` dimensions with the
    kernel exp(-|x - y|^2 / (2 h^2)): for u = x - y ~ N(m, v I),
    E exp(-|u|^2 / (2 h^2)) = (h^2 / (h^2 + v))^(dim/2) exp(-|m|^2 / (2 (h^2 + v))).
    """

    def ek(m2, v):
        return (h * h / (h * h + v)) ** (dim / 2) * math.exp(-m2 / (2 * (h * h + v)))

    return (
        ek(0, 2 * s1 * s1) + ek(0, 2 * s2 * s2) - 2 * ek(mu * mu * dim, s1**2 + s2**2)
    )


# ------------------------------------------------------------ broken variants
def mmd2_diagonal_kept(x, y, *, bandwidths, unbiased=True):
    """The U-statistic's normalisation with the diagonal terms k(x_i, x_i) left in."""
    n, m = len(x), len(y)

    def K(a, b):
        return gaussian_kernel(a, b, bandwidths)

    return (
        K(x, x).sum() / (n * (n - 1))
        + K(y, y).sum() / (m * (m - 1))
        - 2 * K(x, y).mean()
    )


MMD2_VARIANTS = {
    "correct": mmd2,
    "diagonal_kept": mmd2_diagonal_kept,
    "biased_for_unbiased": lambda x, y, **kw: mmd2(
        x, y, bandwidths=kw["bandwidths"], unbiased=False
    ),
}


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("variant", ["correct", "diagonal_kept"])
def test_mmd2_matches_double_loop(variant, unbiased):
    g = gen(0)
    x = torch.randn(7, 3, generator=g, dtype=DT)
    y = 0.5 + 1.3 * torch.randn(5, 3, generator=g, dtype=DT)
    bw = (0.5, 1.0, 2.0)
    fn = MMD2_VARIANTS[variant]
    got = float(fn(x, y, bandwidths=bw, unbiased=unbiased))
    ok = abs(got - mmd2_double_loop(x, y, bw, unbiased)) < 1e-12
    # the diagonal-kept twin (it ignores ``unbiased``) matches neither estimator
    assert ok == (variant == "correct"), got


def test_mmd2_is_symmetric_and_zero_on_equal_samples():
    g = gen(1)
    x = torch.randn(6, 2, generator=g, dtype=DT)
    y = torch.randn(9, 2, generator=g, dtype=DT)
    bw = (1.0,)
    assert torch.allclose(mmd2(x, y, bandwidths=bw), mmd2(y, x, bandwidths=bw))
    assert float(mmd2(x, x, bandwidths=bw, unbiased=False)) == pytest.approx(
        0, abs=1e-14
    )
    assert float(mmd2(x, y, bandwidths=bw, unbiased=False)) > 0


def unbiased_mean_error(fn, seed, draws=500, n=10, dim=2, mu=0.3, s2=1.5, h=1.0):
    """Mean over ``draws`` estimates (n points per sample) minus the closed form."""
    g = gen(seed)
    vals = torch.empty(draws, dtype=DT)
    for r in range(draws):
        x = torch.randn(n, dim, generator=g, dtype=DT)
        y = mu + s2 * torch.randn(n, dim, generator=g, dtype=DT)
        vals[r] = fn(x, y, bandwidths=(h,))
    return float(vals.mean()) - expected_mmd2(mu, 1.0, s2, dim, h)


@pytest.mark.parametrize("variant", ["correct", "diagonal_kept", "biased_for_unbiased"])
def test_unbiased_estimator_mean_matches_closed_form(variant):
    err = unbiased_mean_error(MMD2_VARIANTS[variant], seed=3)
    # Seeds 0-19 (2,000 draws each, sd of the mean 0.0022): correct, errors in
    # [-0.0023, 0.0041] (false alarms 0/20 at 0.02, about 9 sd of 500 draws' mean
    # 0.0044 -> 4.5 sd); diagonal kept, +0.220 to +0.226; biased, +0.146 to +0.152
    # (misses 0/20).
    ok = abs(err) < 0.02
    assert ok == (variant == "correct"), err


# --------------------------------------------------------- permutation test
def test_permutation_null_equals_relabelled_mmd2():
    """The fast quadratic-form null equals mmd2 on each relabelled split."""
    g = gen(2)
    x = torch.randn(6, 2, generator=g, dtype=DT)
    y = 1 + torch.randn(4, 2, generator=g, dtype=DT)
    bw = (0.7, 1.5)
    pooled = torch.cat([x, y])
    K = gaussian_kernel(pooled, pooled, bw)
    perms = torch.stack([torch.randperm(10, generator=g) for _ in range(5)])
    for unbiased in (True, False):
        fast = metrics._permutation_null(K, 6, perms, unbiased)
        slow = torch.stack(
            [
                mmd2(pooled[p[:6]], pooled[p[6:]], bandwidths=bw, unbiased=unbiased)
                for p in perms
            ]
        )
        assert torch.allclose(fast, slow, atol=1e-12)


def not_permuting(monkeypatch):
    """A permutation test whose 'permutations' are all the identity."""
    real = metrics._permutation_null

    def identity_null(K, n, perms, unbiased):
        same = torch.arange(perms.shape[1]).expand_as(perms)
        return real(K, n, same, unbiased)

    monkeypatch.setattr(metrics, "_permutation_null", identity_null)


def rejections(seed, shift, reps=200, n=25, alpha=0.05):
    """How many of ``reps`` tests reject at level ``alpha``: x ~ N(0, I_2), y ~
    N(shift, I_2), n points each, 99 permutations.
    """
    g = gen(seed)
    count = 0
    for _ in range(reps):
        x = torch.randn(n, 2, generator=g, dtype=DT)
        y = shift + torch.randn(n, 2, generator=g, dtype=DT)
        _, p = mmd_test(
            x, y, bandwidths=(0.5, 1.0, 2.0), n_permutations=99, generator=g
        )
        count += p <= alpha
    return count


@pytest.mark.parametrize("variant", ["correct", "not_permuting"])
def test_permutation_test_level_and_power(variant, monkeypatch):
    if variant == "not_permuting":
        not_permuting(monkeypatch)
    false_pos = rejections(seed=5, shift=0.0)
    power = rejections(seed=6, shift=1.0, reps=50)
    # Under H0 the count is Binomial(200, 0.05) for a valid test (p-values (1 + #)/100
    # are exactly uniform on {0.01, ..., 1}): P(count <= 2) = 2.3e-3 and P(count >= 19)
    # = 2.1e-3, a failure rate of 4.4e-3. Seeds 0-19: correct, 4-13 false positives
    # out of 200 (false alarms 0/20), power 47-50 of 50 against a shift of 1 per
    # coordinate; not permuting, the null equals the statistic up to rounding, so p is
    # 1 or 0.01 at random: 41-67 false positives (misses 0/20).
    ok = 3 <= false_pos <= 18 and power >= 40
    assert ok == (variant == "correct"), (false_pos, power)


# ------------------------------------------------------------------- GMMN
def gmmn_fit_1d(seed, steps=400):
    """An affine generator G(z) = a z + b fitted to N(3, 0.5^2) by fit_gmmn."""
    g = gen(seed)
    torch.manual_seed(seed)
    G = nn.Linear(1, 1).double()
    data = 3 + 0.5 * torch.randn(2000, 1, generator=g, dtype=DT)
    hist = fit_gmmn(
        G,
        data,
        latent_dim=1,
        bandwidths=(0.25, 0.5, 1, 2, 4),
        batch_size=200,
        steps=steps,
        lr=0.05,
        generator=g,
        quiet=True,
    )
    x = sample_generator(G, 5000, latent_dim=1, generator=g)
    return float(x.mean()), float(x.std()), hist


def attraction_only(monkeypatch):
    """The GMMN loss without its repulsive terms: only -2 E k(G(z), x)."""

    def loss(x, y, *, bandwidths, unbiased=True):
        return -2 * gaussian_kernel(x, y, bandwidths).mean()

    monkeypatch.setattr(mmd_module, "mmd2", loss)


@pytest.mark.parametrize("variant", ["correct", "attraction_only"])
def test_fit_gmmn_matches_a_gaussian(variant, monkeypatch):
    if variant == "attraction_only":
        attraction_only(monkeypatch)
    mean, sd, hist = gmmn_fit_1d(seed=0)
    # Seeds 0-19: correct, mean 2.96-3.06 and sd 0.47-0.54 (false alarms 0/20);
    # attraction only, the samples collapse onto the mode, sd < 0.006 (misses 0/20).
    ok = abs(mean - 3) < 0.1 and abs(sd - 0.5) < 0.08
    assert ok == (variant == "correct"), (mean, sd)
    assert len(hist["mmd2"]) == 400


# ------------------------------------------------------------------ bad input
def test_bad_input_is_rejected():
    x = torch.randn(5, 3, dtype=DT)
    with pytest.raises(ValueError, match="same number of features"):
        mmd2(x, torch.randn(5, 4, dtype=DT), bandwidths=1.0)
    with pytest.raises(ValueError, match="same number of features"):
        mmd_test(x, torch.randn(5, 2, dtype=DT), bandwidths=1.0, n_permutations=10)
    with pytest.raises(ValueError, match="must all be finite and > 0"):
        mmd2(x, x, bandwidths=(1.0, 0.0))
    with pytest.raises(ValueError, match="must all be finite and > 0"):
        mmd_test(x, x, bandwidths=-1.0, n_permutations=10)
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2(x[:1], x, bandwidths=1.0)
    with pytest.raises(ValueError, match="n_permutations must be >= 1"):
        mmd_test(x, x, bandwidths=1.0, n_permutations=0)
    G = nn.Linear(2, 4).double()  # makes 4 features; the data have 3
    with pytest.raises(ValueError, match=r"the data need \(B, 3\)"):
        fit_gmmn(G, x, latent_dim=2, bandwidths=1.0, batch_size=4, steps=1)
    with pytest.raises(ValueError, match="batch_size must be between 2"):
        fit_gmmn(
            nn.Linear(2, 3), x, latent_dim=2, bandwidths=1.0, batch_size=50, steps=1
        )
    with pytest.raises(ValueError, match="bandwidths"):
        fit_gmmn(nn.Linear(2, 3), x, latent_dim=2, bandwidths=(), batch_size=4, steps=1)
