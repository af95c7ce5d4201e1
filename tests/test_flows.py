"""Normalizing flows: invertibility, log|det J| against autograd, normalisation,
structure, errors.

Every check runs in float64 with fixed seeds. Zero-initialised output layers make fresh
flows the identity, so each test first gives the parameters random values
(``randomize``).
"""

import math

import numpy as np
import pytest
import torch

from dgmlib.flows import (
    IAF,
    MAF,
    ActNorm,
    AffineCoupling,
    ConvAffineCoupling,
    ElementwiseAffine,
    Flow,
    FullGaussian,
    Glow,
    IAFLayer,
    IndependentCategorical,
    InvertibleConv1x1,
    Logit,
    MAFLayer,
    Permutation,
    RealNVP,
    Reshape,
    Reverse,
    Squeeze,
    bits_per_dim,
    dequantize,
    elbo,
    energy_2d,
    fit_flow,
    fit_reverse_kl,
    log_normaliser_2d,
    mean_log_prob,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small nets: one thread (two threads on a loaded 2-core machine are 10-30x slower
    here).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def randomize(
    module: torch.nn.Module, scale: float = 0.3, seed: int = 0
) -> torch.nn.Module:
    """Give every parameter N(0, scale^2) values (coupling/AR ``scale`` parameters:
    around 1).
    """
    g = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64) * scale
            p.copy_(
                1.0 + noise if name.endswith("scale") and "log" not in name else noise
            )
    for m in module.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    return module


def jacobian_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det d fn(x_b) / d x_b| for each example b from the autograd Jacobian: (B,)"""
    out = []
    for xb in x:
        jac = torch.autograd.functional.jacobian(
            lambda v: fn(v[None])[0], xb
        )  # (*shape, *shape)
        n = xb.numel()
        out.append(torch.linalg.slogdet(jac.reshape(n, n))[1])
    return torch.stack(out)


def vector_transforms():
    d = 5
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([1.0, 0, 1, 0, 0])
    return {
        "ElementwiseAffine": ElementwiseAffine(d),
        "ActNorm": ActNorm(d),
        "Permutation": Permutation(torch.randperm(d, generator=g)),
        "Reverse": Reverse(d),
        "AffineCoupling": AffineCoupling(mask, 8),
        "MAFLayer": MAFLayer(d, 8, order=torch.randperm(d, generator=g)),
        "IAFLayer": IAFLayer(d, 8, order=torch.randperm(d, generator=g)),
        "InvertibleConv1x1": InvertibleConv1x1(d, generator=g),
        "RealNVP": RealNVP(d, 4, 8, actnorm=True),
        "MAF": MAF(d, 3, 8, actnorm=True),
        "IAF": IAF(d, 3, 8),
        "Glow": Glow(d, 2, 8, generator=g),
    }


def image_transforms():
    g = torch.Generator().manual_seed(2)
    return {
        "ElementwiseAffine-img": (ElementwiseAffine(4), (4, 2, 3)),
        "ActNorm-img": (ActNorm(4), (4, 2, 3)),
        "InvertibleConv1x1-img": (InvertibleConv1x1(4, generator=g), (4, 2, 3)),
        "ConvAffineCoupling": (ConvAffineCoupling(4, 6), (4, 2, 3)),
        "Squeeze": (Squeeze(2), (2, 4, 2)),
        "Reshape": (Reshape((12,), (3, 2, 2)), (12,)),
    }


@pytest.mark.parametrize("name", list(vector_transforms()))
def test_vector_transform_inverse_and_logdet(name):
    t = randomize(vector_transforms()[name])
    x = torch.randn(
        4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    z, log_det = t(x)
    x_back, log_det_inv = t.inverse(z)
    assert z.shape == x.shape and log_det.shape == (4,)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(
        log_det_inv, -log_det, atol=1e-10, rtol=1e-10
    )  # log|det dx/dz| at z
    torch.testing.assert_close(
        log_det, jacobian_logdet(lambda v: t(v)[0], x), atol=1e-9, rtol=1e-9
    )
    torch.testing.assert_close(
        log_det_inv, jacobian_logdet(lambda v: t.inverse(v)[0], z), atol=1e-9, rtol=1e-9
    )


@pytest.mark.parametrize("name", list(image_transforms()))
def test_image_transform_inverse_and_logdet(name):
    t, shape = image_transforms()[name]
    randomize(t)
    x = torch.randn(
        3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4)
    )
    z, log_det = t(x)
    x_back, log_det_inv = t.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(log_det_inv, -log_det, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(
        log_det, jacobian_logdet(lambda v: t(v)[0], x), atol=1e-9, rtol=1e-9
    )


def test_glow_on_images_and_logit():
    g = torch.Generator().manual_seed(5)
    flow = randomize(
        Glow(
            16,
            2,
            4,
            image_shape=(1, 4, 4),
            n_levels=2,
            preprocess=Logit(16, bound=17.0),
            generator=g,
        ),
        scale=0.2,
    )
    x = torch.rand(3, 16, dtype=torch.float64, generator=g) * 17
    z, log_det = flow(x)
    torch.testing.assert_close(flow.inverse(z)[0], x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(
        log_det, jacobian_logdet(lambda v: flow(v)[0], x), atol=1e-8, rtol=1e-8
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: RealNVP(2, 4, 16),
        lambda: MAF(2, 3, 16),
        lambda: IAF(2, 3, 16),
        lambda: Glow(2, 3, 16, generator=torch.Generator().manual_seed(0)),
    ],
)
def test_density_integrates_to_one(make):
    # Midpoint rule on a 600 x 600 grid over [-20, 20]^2 (h = 0.067). These random flows
    # put about 1% of their mass beyond |x| = 10 but < 1e-5 beyond 20; the quadrature
    # error of a smooth density is O(h^2): measured |mass - 1| < 3e-5 at n = 800, so the
    # tolerance 1e-3 is loose.
    flow = randomize(make(), scale=0.4)
    n, L = 600, 20.0
    h = 2 * L / n
    c = torch.linspace(-L + h / 2, L - h / 2, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(c, c, indexing="xy")
    with torch.no_grad():
        mass = float(
            flow.log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).exp().sum()
            * h
            * h
        )
    assert abs(mass - 1) < 1e-3, mass


def test_rsample_log_prob_matches_log_prob():
    flow = randomize(RealNVP(3, 4, 8))
    x, log_q = flow.rsample_with_log_prob(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_q, flow.log_prob(x), atol=1e-10, rtol=1e-10)
    assert x.requires_grad


def test_one_dimensional_change_of_variables():
    # x = 2 z + 1 with z ~ N(0, 1): p(x) = N(x; 1, 2^2), the density halves and shifts
    flow = Flow([ElementwiseAffine(1)], 1).double()
    with torch.no_grad():
        flow.transforms[0].shift.fill_(1.0)
        flow.transforms[0].log_scale.fill_(math.log(2.0))
    x = torch.linspace(-5, 7, 13, dtype=torch.float64)[:, None]
    expected = torch.distributions.Normal(1.0, 2.0).log_prob(x[:, 0])
    torch.testing.assert_close(flow.log_prob(x), expected)
    s = flow.sample(100_000, generator=torch.Generator().manual_seed(0))
    # sample mean and sd: standard errors 2/sqrt(n) = 0.0063 and ~0.0045; 6 s.e.
    # (failure rate < 1e-8)
    assert abs(float(s.mean()) - 1) < 0.04 and abs(float(s.std()) - 2) < 0.03


def _dependency(fn, d: int, seed: int = 0) -> torch.Tensor:
    x = torch.randn(
        d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    return (
        torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], x).abs() > 0
    )  # (D, D)


@pytest.mark.parametrize("cls", [MAFLayer, IAFLayer])
def test_autoregressive_structure(cls):
    d = 6
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    layer = randomize(cls(d, 16, order=order, activation=torch.nn.Tanh))
    pos = torch.empty(d, dtype=torch.long)
    pos[order] = torch.arange(d)
    allowed = pos[:, None] >= pos[None, :]  # z_i may depend on x_j with j not after i
    for fn in (layer.forward, layer.inverse):
        dep = _dependency(fn, d)
        assert not (dep & ~allowed).any()
        assert (
            dep.diagonal().all() and (dep == allowed).all()
        )  # and on all of them (tanh: no dead units)
    # the MADE network itself: (mu, alpha)_i depends only on strictly earlier inputs
    x = torch.randn(1, d, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(
        lambda v: torch.stack(layer.params(v), -1)[0], x
    )[:, :, 0, :]  # (D, 2, D)
    assert not ((jac.abs().sum(1) > 0) & ~(pos[:, None] > pos[None, :])).any()


def _count_passes(layer, fn, x):
    calls = []
    handle = layer.net.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        fn(x)
    handle.remove()
    return len(calls)


def test_maf_density_one_pass_iaf_sampling_one_pass():
    d = 7
    x = torch.randn(3, d, dtype=torch.float64)
    maf, iaf = randomize(MAFLayer(d, 8)), randomize(IAFLayer(d, 8))
    assert (
        _count_passes(maf, maf.forward, x) == 1
        and _count_passes(maf, maf.inverse, x) == d
    )
    assert (
        _count_passes(iaf, iaf.inverse, x) == 1
        and _count_passes(iaf, iaf.forward, x) == d
    )


@pytest.mark.parametrize("shape", [(200, 3), (50, 3, 4, 2)])
def test_actnorm_data_dependent_init(shape):
    g = torch.Generator().manual_seed(6)
    x = 3.0 + 5.0 * torch.randn(*shape, dtype=torch.float64, generator=g)
    layer = ActNorm(3).double()
    z, _ = layer(x)  # first call in training mode initialises
    per_channel = z.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(
        per_channel.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(
        per_channel.var(1, unbiased=False),
        torch.ones(3, dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )
    assert bool(layer.initialized)
    z2, _ = layer(x + 1.0)  # afterwards the parameters stay put
    torch.testing.assert_close(
        z2 - z,
        torch.full_like(z, 1.0)
        / layer.log_scale.exp().view(1, 3, *([1] * (len(shape) - 2))),
    )


def test_lu_conv_equals_dense_matrix():
    conv = randomize(InvertibleConv1x1(5, generator=torch.Generator().manual_seed(7)))
    P, L, U = conv.factors()
    W = conv.weight()
    torch.testing.assert_close(W, P @ L @ U)
    assert torch.equal(L.triu(1), torch.zeros_like(L)) and torch.equal(
        U.tril(-1), torch.zeros_like(U)
    )
    torch.testing.assert_close(torch.linalg.slogdet(W)[1], conv.log_s.sum())
    torch.testing.assert_close(
        conv.weight_inverse() @ W, torch.eye(5, dtype=torch.float64), atol=1e-12, rtol=0
    )
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(
        conv(x)[0], torch.einsum("ij,bjhw->bihw", W, x)
    )  # 1x1 conv = W at every pixel
    v = torch.randn(6, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(v)[0], v @ W.T)
    torch.testing.assert_close(
        conv(x)[1],
        torch.full((2,), 12 * float(conv.log_s.sum().detach()), dtype=torch.float64),
    )


def test_squeeze_moves_2x2_blocks_to_channels():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    z, _ = Squeeze(1)(x)
    assert z.shape == (1, 4, 2, 2)
    assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left 2x2 block


def test_bad_input_rejected():
    flow = RealNVP(4, 2, 8)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        flow.log_prob(torch.randn(3, 5))
    with pytest.raises(ValueError, match="batch dimension"):
        flow.log_prob(torch.randn(4))
    with pytest.raises(ValueError, match="non-finite"):
        flow.log_prob(torch.tensor([[0.0, float("nan"), 0, 0]]))
    with pytest.raises(ValueError, match="floating"):
        flow.log_prob(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="z of shape"):
        flow.inverse(torch.randn(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        flow.sample(-1)
    with pytest.raises(ValueError, match="dim >= 2"):
        RealNVP(1, 2, 8)
    with pytest.raises(ValueError, match="mask"):
        AffineCoupling(torch.ones(3), 8)
    with pytest.raises(ValueError, match="even"):
        Squeeze(1)(torch.randn(2, 1, 3, 4))
    with pytest.raises(ValueError, match="even number of channels"):
        ConvAffineCoupling(3, 8)
    with pytest.raises(ValueError, match="holds"):
        Glow(64, 1, 8, image_shape=(1, 7, 7))
    with pytest.raises(ValueError, match=r"\[0, 17\]"):
        Logit(2, bound=17.0)(torch.tensor([[1.0, 18.0]]))
    with pytest.raises(ValueError, match="permutation"):
        Permutation([0, 0, 1])
    with pytest.raises(ValueError, match="unknown target"):
        energy_2d("U9")
    with pytest.raises(ValueError, match="integer"):
        dequantize(torch.tensor([0.5]))


def test_dequantized_baselines():
    # an independent categorical is a normalised density on [0, K)^D: its bins sum to 1
    g = torch.Generator().manual_seed(8)
    k = torch.randint(0, 3, (40, 2), generator=g)
    cat = IndependentCategorical.fit(k, 3)
    cells = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0)) + 0.5
    assert abs(float(cat.log_prob(cells.double()).exp().sum()) - 1) < 1e-12
    x = dequantize(k, generator=g)
    assert bool(((x >= k) & (x < k + 1)).all())
    torch.testing.assert_close(cat.log_prob(x), cat.log_prob(k.double()))
    gauss = FullGaussian.fit(x, ridge=0.0)
    torch.testing.assert_close(gauss.dist.mean, x.double().mean(0))
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)


class UnbiasedGaussian(FullGaussian):
    """Broken variant of FullGaussian.fit: the unbiased (N - 1) covariance."""

    @classmethod
    def fit(cls, x, ridge=0.0):
        x = x.double()
        return cls(
            x.mean(0),
            torch.cov(x.T) + ridge * torch.eye(x.shape[1], dtype=torch.float64),
        )


class UnnormalisedCategorical(IndependentCategorical):
    """Broken variant of IndependentCategorical.fit: smoothing left out of the total."""

    @classmethod
    def fit(cls, k, n_levels, smoothing=1.0):
        counts = torch.stack(
            [torch.bincount(c, minlength=n_levels) for c in k.T.long()]
        )
        return cls(((counts + smoothing) / len(k)).double().log())


@pytest.mark.parametrize("variant", ["correct", "unbiased"])
def test_full_gaussian_fit_is_the_maximum_likelihood_gaussian(variant):
    """The baseline every flow must beat. Deterministic: mean and covariance equal
    numpy's ML estimates (+ ridge I), log_prob equals scipy's density, and at ridge 0
    the mean training log-likelihood is the ML value -(D log 2 pi + log det S + D) / 2.
    The N - 1 covariance is not the ML fit.
    """
    from scipy import stats

    cls = FullGaussian if variant == "correct" else UnbiasedGaussian
    g = torch.Generator().manual_seed(9)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64) @ torch.randn(
        3, 3, generator=g, dtype=torch.float64
    )
    xs = x.numpy()
    cov = np.cov(xs.T, bias=True)
    ok = True
    for ridge in (0.0, 0.3):
        model = cls.fit(x.float(), ridge=ridge)
        ref = stats.multivariate_normal(xs.mean(0), cov + ridge * np.eye(3))
        assert np.allclose(model.dist.mean.numpy(), xs.mean(0), atol=1e-6)
        ok &= np.allclose(model.log_prob(x).numpy(), ref.logpdf(xs), atol=1e-4)
    ml = -(3 * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + 3) / 2
    ok &= abs(float(cls.fit(x).log_prob(x).mean()) - ml) < 1e-10
    assert ok == (variant == "correct")


@pytest.mark.parametrize("variant", ["correct", "unnormalised"])
def test_independent_categorical_fit_is_add_smoothing_counts(variant):
    """Deterministic: P_d(level) = (count + s) / (N + K s) counted by hand, each pixel's
    probabilities sum to 1, and log_prob of a dequantized image is the sum of its bins'
    log-probabilities.
    """
    cls = IndependentCategorical if variant == "correct" else UnnormalisedCategorical
    g = torch.Generator().manual_seed(10)
    k = torch.randint(0, 4, (50, 3), generator=g)
    ok = True
    for s in (0.5, 1.0):
        model = cls.fit(k, 4, smoothing=s)
        by_hand = np.array(
            [
                [((k[:, d] == j).sum().item() + s) / (50 + 4 * s) for j in range(4)]
                for d in range(3)
            ]
        )
        ok &= np.allclose(model.log_p.exp().numpy(), by_hand, atol=1e-12)
        ok &= np.allclose(model.log_p.exp().sum(1).numpy(), 1.0, atol=1e-12)
        x = dequantize(k, generator=g)
        logs = np.log(by_hand)[np.arange(3), k.numpy()].sum(1)
        assert np.allclose(
            model.log_prob(x).numpy(),
            model.log_p.numpy()[np.arange(3), k.numpy()].sum(1),
        )
        ok &= np.allclose(model.log_prob(x).numpy(), logs, atol=1e-12)
    assert ok == (variant == "correct")


def test_vi_exact_when_q_contains_target():
    # target exp(-|z|^2 / 2): log Z = log 2 pi, and q = N(0, I) (an identity
    # ElementwiseAffine) is exact, so the ELBO equals log Z for every sample
    # (zero variance)
    energy = lambda z: 0.5 * (z**2).sum(1)  # noqa: E731
    assert abs(log_normaliser_2d(energy) - math.log(2 * math.pi)) < 1e-8
    q = Flow([ElementwiseAffine(2)], 2).double()
    assert abs(float(elbo(q, energy, 100).detach()) - math.log(2 * math.pi)) < 1e-12
    # fitting a flow to the sine ridge U2 raises its ELBO, which stays <= log Z (Jensen)
    u2 = energy_2d("U2")
    torch.manual_seed(0)
    flow = RealNVP(2, 4, 16).double()
    g = torch.Generator().manual_seed(1)
    before = float(elbo(flow, u2, 20_000, generator=g).detach())
    hist = fit_reverse_kl(
        flow, u2, steps=150, n_samples=128, lr=5e-3, generator=g, quiet=True
    )
    after = float(elbo(flow, u2, 20_000, generator=g).detach())
    log_z = log_normaliser_2d(u2)
    # the ELBO estimates have sd < 0.01 (measured spread of log p~ - log q below 1.5
    # nats); 0.05 is > 5 sd (failure < 1e-6)
    assert after < log_z + 0.05, (after, log_z)
    assert after > before + 0.5 and len(hist["elbo"]) == 150, (before, after)


def test_fit_flow_learns_and_early_stops():
    g = torch.Generator().manual_seed(9)
    x = (
        torch.randn(600, 2, dtype=torch.float64, generator=g)
        @ torch.tensor([[1.0, 0.9], [0.0, 0.3]], dtype=torch.float64)
        + 2
    )
    torch.manual_seed(0)
    flow = RealNVP(2, 4, 16, actnorm=True).double()
    before = mean_log_prob(flow, x[400:])
    hist = fit_flow(
        flow,
        x[:400],
        epochs=15,
        batch_size=100,
        lr=5e-3,
        valid=x[400:],
        patience=3,
        generator=g,
        quiet=True,
    )
    after = mean_log_prob(flow, x[400:])
    assert after > before + 1.0
    best = hist.values["best_epoch"][0]
    assert after == pytest.approx(
        -hist.values["valid_nll"][best]
    )  # the best state was restored
