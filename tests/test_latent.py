"""Tests for dgmlib.latent: mixtures, PPCA, factor analysis, EM and the ELBO.

References are independent of the code under test: scipy.stats densities, hand-written
Bayes' rule, Gaussian conditioning from the joint covariance, torch.distributions' KL,
scikit-learn's GaussianMixture / PCA / FactorAnalysis. Everything runs in float64 with
fixed seeds; sampling checks allow 5 standard errors (two-sided failure rate about 6e-7
per statistic).
"""

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp
from sklearn.decomposition import PCA
from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from dgmlib.latent import (
    PPCA,
    BernoulliMixture,
    FactorAnalysis,
    GaussianMixture,
    elbo,
    em_step,
    fit_em,
    kl_gaussians,
    kl_to_posterior,
    ppca_closed_form,
)

DT = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def toy_gmm(covariance: str = "full", reg_covar: float = 1e-6) -> GaussianMixture:
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=DT)
    mu = torch.tensor([[0.0, 0.0], [3.0, 1.0], [-2.0, 3.0]], dtype=DT)  # (K, D)
    cov = torch.tensor(
        [
            [[1.0, 0.5], [0.5, 1.5]],
            [[0.6, -0.2], [-0.2, 0.4]],
            [[2.0, 0.0], [0.0, 0.3]],
        ],
        dtype=DT,
    )
    return GaussianMixture(pi, mu, cov, covariance=covariance, reg_covar=reg_covar)


def toy_bernoulli(alpha: float = 1e-2) -> BernoulliMixture:
    pi = torch.tensor([0.6, 0.4], dtype=DT)
    mu = torch.tensor([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.5, 0.95]], dtype=DT)  # (K, D)
    return BernoulliMixture(pi, mu, alpha=alpha)


def correlated_gaussian(
    n: int = 1000, D: int = 6, q: int = 2, seed: int = 0, fa: bool = False
) -> torch.Tensor:
    """Data from a linear-Gaussian model with a clear eigen-gap: (n, D)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, q)) * 2.0
    noise = rng.uniform(0.2, 1.0, size=D) if fa else np.full(D, 0.3)
    x = (
        rng.normal(size=(n, q)) @ W.T
        + rng.normal(size=(n, D)) * np.sqrt(noise)
        + rng.normal(size=D)
    )
    return torch.tensor(x, dtype=DT)


def scipy_gmm_log_prob(model: GaussianMixture, x: torch.Tensor) -> np.ndarray:
    comps = np.stack(
        [
            stats.multivariate_normal(model.mu[k].numpy(), model.cov[k].numpy()).logpdf(
                x.numpy()
            )
            for k in range(model.K)
        ],
        axis=1,
    )  # (B, K)
    return logsumexp(comps + model.log_pi.numpy(), axis=1)


# --------------------------------------------------------------------------- mixtures:
# exact quantities


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_log_prob_matches_scipy(covariance):
    model = toy_gmm(covariance)
    x = torch.randn(50, 2, generator=gen(1), dtype=DT) * 3
    np.testing.assert_allclose(
        model.log_prob(x).numpy(), scipy_gmm_log_prob(model, x), rtol=1e-12, atol=1e-12
    )
    if covariance == "diag":  # off-diagonals dropped
        assert (
            torch.count_nonzero(
                model.cov - torch.diag_embed(torch.diagonal(model.cov, dim1=1, dim2=2))
            )
            == 0
        )


def test_gmm_posterior_is_bayes_rule():
    model = toy_gmm()
    x = torch.randn(40, 2, generator=gen(2), dtype=DT) * 3
    r = model.posterior(x)
    pdf = np.stack(
        [
            stats.multivariate_normal(model.mu[k].numpy(), model.cov[k].numpy()).pdf(
                x.numpy()
            )
            for k in range(3)
        ],
        axis=1,
    )
    joint = pdf * model.pi.numpy()  # p(x, z=k)
    np.testing.assert_allclose(r.sum(1).numpy(), 1.0, atol=1e-14)
    np.testing.assert_allclose(
        r.numpy(), joint / joint.sum(1, keepdims=True), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(model.log_joint(x).numpy(), np.log(joint), rtol=1e-12)


def _assert_within_se(samples: np.ndarray, expected: np.ndarray, n_se: float = 5.0):
    """Sample mean of each column within n_se standard errors of ``expected``."""
    se = samples.std(0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(0) - expected) < n_se * se), (
        samples.mean(0),
        expected,
        se,
    )


def test_gmm_sample_moments():
    model = toy_gmm()
    x, z = model.sample(20000, generator=gen(3))
    assert x.shape == (20000, 2) and z.shape == (20000,) and x.dtype == DT
    pi, mu, cov = model.pi.numpy(), model.mu.numpy(), model.cov.numpy()
    # component frequencies: one-hot means with binomial standard errors
    _assert_within_se(np.eye(3)[z.numpy()], pi)
    mean = pi @ mu  # E[x] = sum_k pi_k mu_k
    second = np.einsum(
        "k,kij->ij", pi, cov + np.einsum("ki,kj->kij", mu, mu)
    )  # E[x x^T]
    xs = x.numpy()
    _assert_within_se(xs, mean)
    _assert_within_se(
        np.einsum("bi,bj->bij", xs, xs).reshape(len(xs), -1), second.ravel()
    )
    # and each component's conditional mean
    for k in range(3):
        _assert_within_se(xs[z.numpy() == k], mu[k])


def test_bernoulli_log_prob_matches_scipy_and_normalises():
    model = toy_bernoulli()
    x = torch.tensor(
        list(itertools.product([0.0, 1.0], repeat=4)), dtype=DT
    )  # all 16 states
    comps = np.stack(
        [
            stats.bernoulli(model.mu[k].numpy()).logpmf(x.numpy()).sum(1)
            for k in range(2)
        ],
        axis=1,
    )
    ref = logsumexp(comps + model.log_pi.numpy(), axis=1)
    log_p = model.log_prob(x)
    np.testing.assert_allclose(log_p.numpy(), ref, rtol=1e-12)
    assert abs(torch.logsumexp(log_p, 0).item()) < 1e-12  # sums to 1 over {0,1}^4
    joint = np.exp(comps + model.log_pi.numpy())
    np.testing.assert_allclose(
        model.posterior(x).numpy(), joint / joint.sum(1, keepdims=True), rtol=1e-12
    )
    # int and bool inputs are accepted and mean the same thing
    torch.testing.assert_close(model.log_prob(x.to(torch.int64)), log_p)
    torch.testing.assert_close(model.log_prob(x.bool()), log_p)


def test_bernoulli_sample_moments():
    model = toy_bernoulli()
    x, z = model.sample(20000, generator=gen(4))
    assert set(np.unique(x.numpy())) <= {0.0, 1.0}
    _assert_within_se(x.numpy(), model.pi.numpy() @ model.mu.numpy())
    for k in range(2):
        _assert_within_se(x.numpy()[z.numpy() == k], model.mu[k].numpy())


# --------------------------------------------------------------------------- EM


def _gmm_data():
    return toy_gmm().sample(600, generator=gen(10))[0]


def _binary_data():
    return toy_bernoulli().sample(400, generator=gen(11))[0]


CASES = {
    # name: (make model from data, data)
    "gmm-full-textbook": (
        lambda x: GaussianMixture.from_data(x, 3, reg_covar=0.0, generator=gen(20)),
        _gmm_data,
    ),
    "gmm-full-default": (
        lambda x: GaussianMixture.from_data(x, 3, generator=gen(21)),
        _gmm_data,
    ),
    "gmm-diag": (
        lambda x: GaussianMixture.from_data(
            x, 3, covariance="diag", reg_covar=0.0, generator=gen(22)
        ),
        _gmm_data,
    ),
    "bernoulli-textbook": (
        lambda x: BernoulliMixture.from_data(x, 3, alpha=0.0, generator=gen(23)),
        _binary_data,
    ),
    "bernoulli-random-data": (
        lambda x: BernoulliMixture.from_data(x, 4, alpha=0.0, generator=gen(25)),
        lambda: (torch.rand(300, 12, generator=gen(12), dtype=DT) < 0.4).to(DT),
    ),
    "ppca": (lambda x: PPCA.from_data(x, 2, generator=gen(26)), correlated_gaussian),
    "fa": (
        lambda x: FactorAnalysis.from_data(x, 2, generator=gen(27)),
        lambda: correlated_gaussian(fa=True),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_em_never_decreases_log_likelihood(name):
    make, data = CASES[name]
    x = data()
    model = make(x)
    history = fit_em(
        model, x, n_iter=150, tol=-np.inf, quiet=True
    )  # tol=-inf: run all 150 iterations
    ll = np.array(history["log_likelihood"])
    assert len(ll) == 150 and np.all(np.isfinite(ll))
    assert np.all(np.diff(ll) >= -1e-10 * np.abs(ll[1:])), np.diff(ll).min()
    assert ll[-1] > ll[0] + 0.01  # and it actually learned something
    # the model after the last update is at least as good as the last recorded value
    assert model.log_prob(x).mean().item() >= ll[-1] - 1e-10 * abs(ll[-1])


def test_smoothed_bernoulli_em_is_map_em():
    """With alpha > 0 the M-step is a MAP step under a Beta prior: EM never decreases
    sum_n log p(x_n) + log_prior (the likelihood alone may dip by ~1e-9 near
    convergence).
    """
    x = _binary_data()
    model = BernoulliMixture.from_data(x, 3, alpha=0.5, generator=gen(24))
    objective = []
    for _ in range(150):
        objective.append(model.log_prob(x).sum().item() + model.log_prior().item())
        em_step(model, x)
    objective = np.array(objective)
    assert np.all(np.diff(objective) >= -1e-10 * np.abs(objective[1:])), np.diff(
        objective
    ).min()
    assert model.mu.min() > 0 and model.mu.max() < 1


@pytest.mark.parametrize(
    "name", ["gmm-full-default", "bernoulli-textbook", "ppca", "fa"]
)
def test_em_step_returns_log_likelihood_before_update(name):
    make, data = CASES[name]
    x = data()
    model = make(x)
    before = model.log_prob(x).mean().item()
    assert em_step(model, x) == pytest.approx(before, rel=1e-12)
    assert model.log_prob(x).mean().item() > before


def _damped_bernoulli_step(model, x):
    """Broken variant of the Bernoulli M-step: mu <- (old + new) / 2."""
    from dgmlib.latent.mixtures import _em_step_bernoulli

    old = model.mu.clone()
    out = _em_step_bernoulli(model, x)
    model.mu.copy_((old + model.mu) / 2)
    return out


@pytest.mark.parametrize("variant", ["correct", "damped"])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_bernoulli_em_step_equals_weighted_counts_by_hand(variant, alpha, monkeypatch):
    """One em_step against the textbook update computed independently: r_nk from
    Bayes' rule with every product written out, then pi_k = N_k / N and
    mu_kd = (sum_n r_nk x_nd + alpha) / (N_k + 2 alpha). Deterministic; the damped
    M-step (which still increases the likelihood) must differ.
    """
    if variant == "damped":
        import dgmlib.latent.mixtures as mixtures

        monkeypatch.setitem(
            mixtures._EM_STEPS, BernoulliMixture, _damped_bernoulli_step
        )
    x = toy_bernoulli().sample(60, generator=gen(13))[0]
    model = BernoulliMixture.from_data(x, 3, alpha=alpha, generator=gen(14))
    pi, mu, xs = model.pi.numpy(), model.mu.numpy(), x.numpy()
    joint = np.array(
        [
            [pi[k] * np.prod(mu[k] ** xn * (1 - mu[k]) ** (1 - xn)) for k in range(3)]
            for xn in xs
        ]
    )  # (N, K) p(x_n, z = k)
    r = joint / joint.sum(1, keepdims=True)
    Nk = r.sum(0)
    mu_hand = (r.T @ xs + alpha) / (Nk[:, None] + 2 * alpha)
    ll = em_step(model, x)
    assert ll == pytest.approx(np.log(joint.sum(1)).mean(), rel=1e-12)
    assert np.allclose(model.pi.numpy(), Nk / len(xs), atol=1e-12)
    matches = np.allclose(model.mu.numpy(), mu_hand, atol=1e-12)
    assert matches == (variant == "correct"), np.abs(model.mu.numpy() - mu_hand).max()


def test_fit_em_stops_at_tol():
    x = _gmm_data()
    history = fit_em(
        GaussianMixture.from_data(x, 3, generator=gen(30)),
        x,
        n_iter=500,
        tol=1e-3,
        quiet=True,
    )
    ll = history["log_likelihood"]
    assert len(ll) < 500 and ll[-1] - ll[-2] < 1e-3
    assert all(b - a >= 1e-3 for a, b in zip(ll[:-2], ll[1:-1]))


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_em_matches_sklearn_from_same_start(covariance):
    """Same start, same reg_covar, same number of iterations: the same algorithm, so
    tight agreement.
    """
    x = _gmm_data()
    model = GaussianMixture.from_data(x, 3, covariance=covariance, generator=gen(31))
    precisions = np.linalg.inv(model.cov.numpy())  # (K, D, D)
    sk = SkGaussianMixture(
        n_components=3,
        covariance_type=covariance,
        reg_covar=model.reg_covar,
        max_iter=30,
        tol=0.0,
        weights_init=model.pi.numpy(),
        means_init=model.mu.numpy(),
        precisions_init=precisions
        if covariance == "full"
        else np.diagonal(precisions, axis1=1, axis2=2),
    )
    with pytest.warns(Warning):  # ConvergenceWarning: tol=0 is never reached
        sk.fit(x.numpy())
    fit_em(model, x, n_iter=30, tol=-np.inf, quiet=True)
    assert abs(model.log_prob(x).mean().item() - sk.score(x.numpy())) < 1e-8
    np.testing.assert_allclose(model.mu.numpy(), sk.means_, atol=1e-6)
    sk_cov = (
        sk.covariances_
        if covariance == "full"
        else np.stack([np.diag(v) for v in sk.covariances_])
    )
    np.testing.assert_allclose(model.cov.numpy(), sk_cov, atol=1e-6)


# --------------------------------------------------------------------------- ELBO
# identity


@pytest.mark.parametrize("which", ["gmm", "bernoulli"])
def test_elbo_identity_mixtures(which):
    if which == "gmm":
        model, x = toy_gmm(), torch.randn(30, 2, generator=gen(40), dtype=DT) * 2
    else:
        model, x = (
            toy_bernoulli(),
            (torch.rand(30, 4, generator=gen(40), dtype=DT) < 0.5).to(DT),
        )
    log_p = model.log_prob(x)
    q = torch.softmax(
        3 * torch.randn(30, model.K, generator=gen(41), dtype=DT), 1
    )  # arbitrary q(z)
    q[0] = torch.nn.functional.one_hot(torch.tensor(0), model.K)  # a q with zeros
    L, kl = elbo(model, x, q), kl_to_posterior(model, x, q)
    torch.testing.assert_close(
        L + kl, log_p, rtol=0, atol=1e-10
    )  # log p(x) = L(q) + KL(q || p(z|x))
    assert (kl > 1e-6).all() and (L < log_p).all()
    r = model.posterior(x)  # at q = p(z|x): KL = 0, the bound is tight
    torch.testing.assert_close(
        kl_to_posterior(model, x, r), torch.zeros_like(log_p), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(elbo(model, x, r), log_p, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cls", [PPCA, FactorAnalysis])
def test_elbo_identity_linear(cls):
    x = correlated_gaussian(n=20, fa=cls is FactorAnalysis)
    model = cls.from_data(x, 2, generator=gen(42))
    log_p = model.log_prob(x)
    mean, cov = model.posterior(x)
    torch.testing.assert_close(elbo(model, x, (mean, cov)), log_p, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        kl_to_posterior(model, x, (mean, cov)),
        torch.zeros_like(log_p),
        rtol=0,
        atol=1e-10,
    )
    # a wrong q: shifted means and a different (per-example) covariance
    A = torch.randn(20, 2, 2, generator=gen(43), dtype=DT)
    q_cov = A @ A.transpose(1, 2) + 0.1 * torch.eye(2, dtype=DT)  # (B, q, q)
    q_mean = mean + torch.randn(20, 2, generator=gen(44), dtype=DT)
    L, kl = elbo(model, x, (q_mean, q_cov)), kl_to_posterior(model, x, (q_mean, q_cov))
    torch.testing.assert_close(L + kl, log_p, rtol=0, atol=1e-10)
    assert (kl > 1e-3).all()


def test_kl_gaussians_matches_torch_distributions():
    g = gen(45)
    A, B = (
        torch.randn(7, 3, 3, generator=g, dtype=DT),
        torch.randn(7, 3, 3, generator=g, dtype=DT),
    )
    S0, S1 = (
        A @ A.mT + 0.1 * torch.eye(3, dtype=DT),
        B @ B.mT + 0.1 * torch.eye(3, dtype=DT),
    )
    m0, m1 = (
        torch.randn(7, 3, generator=g, dtype=DT),
        torch.randn(7, 3, generator=g, dtype=DT),
    )
    MVN = torch.distributions.MultivariateNormal
    ref = torch.distributions.kl_divergence(MVN(m0, S0), MVN(m1, S1))
    torch.testing.assert_close(
        kl_gaussians(m0, S0, m1, S1), ref, rtol=1e-10, atol=1e-12
    )


# --------------------------------------------------------------------------- PPCA and
# FA


@pytest.mark.parametrize("cls", [PPCA, FactorAnalysis])
def test_linear_log_prob_matches_scipy(cls):
    x = correlated_gaussian(n=50, fa=True)
    model = cls.from_data(x, 2, generator=gen(50))
    C = model.marginal_cov()
    torch.testing.assert_close(C, model.W @ model.W.T + torch.diag(model.psi))
    ref = stats.multivariate_normal(model.mu.numpy(), C.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(model.log_prob(x).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("cls", [PPCA, FactorAnalysis])
def test_linear_posterior_is_gaussian_conditioning(cls):
    """p(z|x) from the joint N((0, mu), [[I, W^T], [W, C]]): mean W^T C^-1 (x - mu), cov
    I - W^T C^-1 W.
    """
    x = correlated_gaussian(n=10, fa=True)
    model = cls.from_data(x, 2, generator=gen(51))
    W, C = model.W.numpy(), model.marginal_cov().numpy()
    mean, cov = model.posterior(x)
    np.testing.assert_allclose(
        mean.numpy(), (x - model.mu).numpy() @ np.linalg.solve(C, W), rtol=1e-10
    )
    np.testing.assert_allclose(
        cov.numpy(), np.eye(2) - W.T @ np.linalg.solve(C, W), rtol=1e-10, atol=1e-14
    )


def test_ppca_closed_form_matches_sklearn_pca():
    """sklearn's PCA.score is the PPCA log-likelihood, but built from the 1/(N-1)
    covariance.

    So sklearn's C equals N/(N-1) times the maximum-likelihood C, and its score is below
    ours by exactly D/2 (log c + 1/c - 1), c = N/(N-1), because tr(C_ml^-1 S) = D at the
    optimum.
    """
    x = correlated_gaussian(n=300)
    N, D = x.shape
    model = ppca_closed_form(x, 2)
    sk = PCA(n_components=2, svd_solver="full").fit(x.numpy())
    c = N / (N - 1)
    np.testing.assert_allclose(
        model.marginal_cov().numpy() * c, sk.get_covariance(), rtol=1e-10, atol=1e-12
    )
    ll = model.log_prob(x).mean().item()
    assert ll - D / 2 * (np.log(c) + 1 / c - 1) == pytest.approx(
        sk.score(x.numpy()), abs=1e-10
    )
    assert abs(ll - sk.score(x.numpy())) < 1e-4
    # it is a fixed point of EM, and no PPCA with q=2 does better on x
    assert em_step(model, x) == pytest.approx(
        model.log_prob(x).mean().item(), abs=1e-12
    )
    assert model.log_prob(x).mean().item() == pytest.approx(ll, abs=1e-10)


def test_ppca_em_converges_to_closed_form():
    x = correlated_gaussian()
    best = ppca_closed_form(x, 2).log_prob(x).mean().item()
    model = PPCA.from_data(x, 2, generator=gen(52))
    history = fit_em(model, x, n_iter=2000, tol=1e-12, quiet=True)
    final = model.log_prob(x).mean().item()
    assert final <= best + 1e-10 and best - final < 1e-4, (best, final, len(history))
    # W is identified up to a rotation: compare W W^T
    torch.testing.assert_close(
        model.W @ model.W.T,
        ppca_closed_form(x, 2).W @ ppca_closed_form(x, 2).W.T,
        rtol=0,
        atol=1e-3,
    )


def test_ppca_sample_covariance():
    model = ppca_closed_form(correlated_gaussian(), 2)
    x, z = model.sample(20000, generator=gen(53))
    assert x.shape == (20000, 6) and z.shape == (20000, 2)
    xs, C, mu = x.numpy(), model.marginal_cov().numpy(), model.mu.numpy()
    _assert_within_se(xs, mu)
    xc = xs - mu  # centred at the true mean, so E[xc xc^T] = C exactly
    _assert_within_se(np.einsum("bi,bj->bij", xc, xc).reshape(len(xs), -1), C.ravel())


def test_fa_em_reaches_sklearn_likelihood():
    """FA has local optima; on well-conditioned data from an FA model, EM from a random
    start should reach sklearn's (SVD-based) optimum to within 1e-3 nats per example.
    """
    x = correlated_gaussian(n=2000, fa=True)
    sk = SkFactorAnalysis(
        n_components=2, tol=1e-8, max_iter=5000, svd_method="lapack"
    ).fit(x.numpy())
    model = FactorAnalysis.from_data(x, 2, generator=gen(54))
    fit_em(model, x, n_iter=1000, tol=1e-10, quiet=True)
    ours = model.log_prob(x).mean().item()
    assert ours >= sk.score(x.numpy()) - 1e-3, (ours, sk.score(x.numpy()))
    # same optimum; sklearn stops at its own tol, so the noise variances agree to ~1e-3
    # relative
    np.testing.assert_allclose(model.psi.numpy(), sk.noise_variance_, rtol=5e-3)


# --------------------------------------------------------------------------- errors,
# randomness, dtype


@pytest.mark.parametrize(
    "model",
    [
        toy_gmm(),
        toy_bernoulli(),
        ppca_closed_form(correlated_gaussian(), 2),
        FactorAnalysis.from_data(correlated_gaussian(), 2, generator=gen(60)),
    ],
    ids=["gmm", "bernoulli", "ppca", "fa"],
)
def test_wrong_shape_raises_helpful_error(model):
    D = model.D
    with pytest.raises(
        ValueError, match=rf"shape \(B, D\) with D={D}; got shape \({D},\)"
    ):
        model.log_prob(torch.zeros(D, dtype=DT))
    with pytest.raises(ValueError, match=rf"D={D}; got shape \(3, {D + 1}\)"):
        model.log_prob(torch.zeros(3, D + 1, dtype=DT))
    with pytest.raises(ValueError, match="shape"):
        em_step(model, torch.zeros(3, D + 1, dtype=DT))


def test_bernoulli_rejects_non_binary():
    x = torch.tensor([[0.0, 1.0, 0.5, 1.0]], dtype=DT)
    msg = (
        r"BernoulliMixture expects binary x in \{0,1\}; got values in \[0, 1\]\. "
        "Binarize first"
    )
    with pytest.raises(ValueError, match=msg):
        toy_bernoulli().log_prob(x)
    with pytest.raises(ValueError, match="expects binary"):
        BernoulliMixture.from_data(torch.randn(10, 4, dtype=DT), 2, generator=gen(61))


def test_bad_q_and_bad_parameters_raise():
    model, x = toy_gmm(), torch.zeros(5, 2, dtype=DT)
    with pytest.raises(ValueError, match=r"q must have shape \(B, K\) = \(5, 3\)"):
        elbo(model, x, torch.full((5, 2), 0.5, dtype=DT))
    with pytest.raises(ValueError, match="sum to 1"):
        kl_to_posterior(model, x, torch.full((5, 3), 0.5, dtype=DT))
    with pytest.raises(ValueError, match="pi must be positive and sum to 1"):
        GaussianMixture(
            torch.tensor([0.5, 0.6], dtype=DT),
            torch.zeros(2, 2, dtype=DT),
            torch.eye(2, dtype=DT).repeat(2, 1, 1),
        )
    with pytest.raises(TypeError, match="em_step knows"):
        em_step(torch.nn.Linear(2, 2), x)


def test_randomness_only_through_generator():
    x = _gmm_data()
    state = torch.random.get_rng_state()
    a = GaussianMixture.from_data(x, 3, generator=gen(70)).sample(5, generator=gen(71))[
        0
    ]
    b = GaussianMixture.from_data(x, 3, generator=gen(70)).sample(5, generator=gen(71))[
        0
    ]
    c = PPCA.from_data(x, 1, generator=gen(70)).sample(5, generator=gen(71))[0]
    d = PPCA.from_data(x, 1, generator=gen(70)).sample(5, generator=gen(71))[0]
    assert torch.equal(a, b) and torch.equal(c, d)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched


def test_float32_follows_parameters():
    x = _gmm_data().float()
    for model in [
        GaussianMixture.from_data(x, 3, generator=gen(80)),
        PPCA.from_data(x, 1, generator=gen(80)),
        toy_bernoulli().float(),
    ]:
        xx = x if model.D == 2 else (torch.rand(10, 4, generator=gen(81)) < 0.5).float()
        assert model.log_prob(xx).dtype == torch.float32
        assert model.sample(3, generator=gen(82))[0].dtype == torch.float32
        assert np.isfinite(em_step(model, xx))
