"""Autoregressive networks: exact normalisation, the autoregressive property, samplers,
NADE's O(DH) path.

Everything in float64 with fixed seeds. Statistical tests state their failure rate.
"""

import math

import pytest
import torch
from scipy import stats
from torch import nn

from dgmlib.autoregressive import (
    FVBN,
    MADE,
    NADE,
    RNADE,
    CausalConv1d,
    MaskedConv2d,
    NeuralAR,
    PixelCNN,
    RecurrentAR,
    WaveNet,
    dependencies,
    ensemble_log_prob,
    fit_max_likelihood,
    inverse_order,
    marginal_log_odds,
    mean_log_prob,
    nade_backward,
    nade_logits_loop,
    order_agnostic_log_prob,
    order_known_first,
    random_orders,
    sample_sequential,
)
from dgmlib.exact import all_states

DT = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def perturbed(model, scale=0.7, seed=1):
    """The model in float64 with every parameter moved by N(0, scale^2): far from any
    symmetric start.
    """
    model = model.double()
    g = gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=DT))
    return model


def binary_models(d, seed=0):
    """One of each binary model on d variables (PixelCNN on a 3 x d/3 image), random
    orders where supported.
    """
    g = gen(seed)
    torch.manual_seed(seed)  # nn.Linear / Conv default initialisation
    return {
        "FVBN": FVBN(d, order=torch.randperm(d, generator=g), generator=g),
        "NeuralAR": NeuralAR(d, 5, order=torch.randperm(d, generator=g), generator=g),
        "NADE": NADE(d, 6, order=torch.randperm(d, generator=g), generator=g),
        "MADE": MADE(d, [16, 16], order=torch.randperm(d, generator=g)),
        "MADE-4-masks": MADE(d, [16], n_masks=4, order_agnostic=True, generator=g),
        "PixelCNN": PixelCNN((3, d // 3), channels=8, n_layers=2, kernel_size=3),
        "WaveNet": WaveNet(d, channels=8, dilations=(1, 2, 4, 8)),
        "RecurrentAR": RecurrentAR(d, 8),
    }


# ----------------------------------------------------------------------------- exact
# normalisation
@pytest.mark.parametrize("name", list(binary_models(12)))
def test_probabilities_over_all_states_sum_to_one(name):
    d = 12
    model = perturbed(binary_models(d)[name])
    x = all_states(d, dtype=DT)  # (4096, 12)
    with torch.no_grad():
        total = model.log_prob(x).exp().sum()
    assert abs(float(total) - 1.0) < 1e-10, (name, float(total))


def test_made_each_mask_and_nade_every_order_normalised():
    d = 10
    x = all_states(d, dtype=DT)
    made = perturbed(MADE(d, [12], n_masks=3, order_agnostic=True, generator=gen(2)))
    nade = perturbed(NADE(d, 4, generator=gen(3)))
    with torch.no_grad():
        for k in range(3):
            assert abs(float(made.log_prob(x, mask=k).exp().sum()) - 1) < 1e-10
        orders = random_orders(3, d, generator=gen(4))
        for o in orders:
            assert abs(float(nade.log_prob(x, order=o).exp().sum()) - 1) < 1e-10
        assert abs(float(ensemble_log_prob(nade, x, orders).exp().sum()) - 1) < 1e-10


# ----------------------------------------------------------------------------- NADE:
# O(DH) = loop
def test_nade_cumsum_equals_loop_and_untied_network():
    d, h = 11, 7
    nade = perturbed(
        NADE(d, h, order=torch.randperm(d, generator=gen(5)), generator=gen(6))
    )
    x = (torch.rand(20, d, generator=gen(7)) < 0.5).to(DT)
    fast = nade.logits(x)
    assert torch.allclose(fast, nade_logits_loop(nade, x), atol=1e-12)
    other = torch.randperm(d, generator=gen(8))
    assert torch.allclose(
        nade.logits(x, order=other), nade_logits_loop(nade, x, order=other), atol=1e-12
    )
    # eq. 20.83: NADE is the neural autoregressive net with W'[t, :, s] = W[:, o_s]
    untied = NeuralAR.from_nade(nade)
    assert torch.allclose(untied.logits(x), fast, atol=1e-12)
    assert untied.n_parameters > sum(p.numel() for p in nade.parameters())


def test_nade_per_example_orders_match_one_at_a_time():
    d = 9
    nade = perturbed(NADE(d, 5, generator=gen(9)))
    x = (torch.rand(6, d, generator=gen(10)) < 0.5).to(DT)
    orders = random_orders(6, d, generator=gen(11))
    batch = nade.log_prob(x, order=orders)
    single = torch.cat([nade.log_prob(x[i : i + 1], order=orders[i]) for i in range(6)])
    assert torch.allclose(batch, single, atol=1e-12)
    logits = nade.logits(x, order=orders)
    for i in range(6):
        assert torch.allclose(
            logits[i], nade.logits(x[i : i + 1], order=orders[i])[0], atol=1e-12
        )
    oa = order_agnostic_log_prob(nade, x, generator=gen(12))
    assert oa.shape == (6,) and torch.isfinite(oa).all()


@pytest.mark.parametrize("use_order", [False, True])
def test_nade_backward_equals_autograd(use_order):
    d = 13
    nade = perturbed(NADE(d, 7, generator=gen(13)))
    x = (torch.rand(30, d, generator=gen(14)) < 0.4).to(DT)
    order = torch.randperm(d, generator=gen(15)) if use_order else None
    loss = -nade.log_prob(x, order=order).mean()
    loss.backward()
    ref = {n: p.grad.clone() for n, p in nade.named_parameters()}
    nade.zero_grad(set_to_none=True)
    nll = nade_backward(nade, x, order=order)
    assert abs(float(nll) - loss.item()) < 1e-12
    for n, p in nade.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-12), n


# -----------------------------------------------------------------------------
# autoregressive property
def allowed(order):
    pos = inverse_order(torch.as_tensor(order))
    return pos[None, :] < pos[:, None]  # allowed[i, j]: j generated before i


def test_made_autoregressive_property_from_the_jacobian():
    d = 10
    x = torch.randn(
        5, d, generator=gen(16), dtype=DT
    )  # any real input: the Jacobian is the connectivity
    torch.manual_seed(0)
    made = MADE(
        d, [32, 32], order=torch.randperm(d, generator=gen(17)), activation=nn.Tanh
    ).double()
    dep = dependencies(lambda v: made.net(v)[..., 0], x)
    ok = allowed(made.order)
    assert not (dep & ~ok).any()  # never looks ahead
    assert (dep == ok).all()  # evenly spread degrees, tanh: every allowed edge exists
    several = MADE(
        d, [32], n_masks=3, order_agnostic=True, activation=nn.Tanh, generator=gen(18)
    ).double()
    orders = []
    for k in range(3):
        several.set_mask(k)
        dep = dependencies(lambda v: several.net(v)[..., 0], x)
        assert not (dep & ~allowed(several.order)).any(), k
        orders.append(several.order.clone())
    assert not torch.equal(
        orders[0], orders[1]
    )  # order-agnostic masks use different orders
    several.set_mask(1)
    assert torch.equal(several.order, orders[1])  # and the same mask comes back


def test_made_reset_masks_new_order_stays_exact():
    d = 8
    x = all_states(d, dtype=DT)
    torch.manual_seed(0)
    made = perturbed(MADE(d, [24], activation=nn.Tanh))
    new = torch.randperm(d, generator=gen(42))
    made.reset_masks(order=new, generator=gen(43))
    assert torch.equal(made.order, new)
    dep = dependencies(
        lambda v: made.net(v)[..., 0], torch.randn(4, d, generator=gen(44), dtype=DT)
    )
    assert not (dep & ~allowed(new)).any()
    several = perturbed(
        MADE(d, [24], n_masks=3, order_agnostic=True, generator=gen(45))
    )
    seeds = several.mask_seeds.clone()
    several.reset_masks(generator=gen(46))
    assert not torch.equal(seeds, several.mask_seeds)
    with torch.no_grad():
        assert abs(float(made.log_prob(x).exp().sum()) - 1) < 1e-10
        assert abs(float(several.log_prob(x).exp().sum()) - 1) < 1e-10


def test_pixelcnn_masks_and_autoregressive_property():
    a, b = MaskedConv2d(1, 1, 3, "A").mask[0, 0], MaskedConv2d(1, 1, 3, "B").mask[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    torch.manual_seed(0)
    net = PixelCNN((5, 5), channels=8, n_layers=3, kernel_size=3).double()
    x = (torch.rand(6, 25, generator=gen(19)) < 0.5).to(DT)
    dep = dependencies(net.logits, x)
    ok = allowed(torch.arange(25))
    assert not (dep & ~ok).any()
    # the blind spot: pixel (4, 4) may depend on (2, 4) (two rows up, same column... to
    # the right of the centre after a few B layers) but a plain 3x3 stack never reaches
    # pixels up and to the right
    assert dep.sum() < ok.sum()


def test_wavenet_is_causal_with_the_stated_receptive_field():
    torch.manual_seed(0)
    net = WaveNet(20, channels=6, dilations=(1, 2, 4)).double()
    assert net.receptive_field == 8
    x = (torch.rand(5, 20, generator=gen(20)) < 0.5).to(DT)
    dep = dependencies(net.logits, x)
    t = torch.arange(20)
    expected = (t[None, :] < t[:, None]) & (
        t[None, :] >= t[:, None] - net.receptive_field
    )
    assert (dep == expected).all()
    conv = CausalConv1d(3, 4, 3, dilation=2).double()
    v = torch.randn(2, 3, 10, generator=gen(40), dtype=DT)
    ref = torch.nn.functional.conv1d(
        torch.nn.functional.pad(v, (4, 0)), conv.weight, conv.bias, dilation=2
    )
    assert torch.allclose(conv(v), ref, atol=1e-12)


# ----------------------------------------------------------------------------- samplers
CHI2_FAIL = 1e-4


def chi2_check(samples, probs, label):
    """Pearson chi-square of sample counts over the 2^d states, small cells pooled;
    fails with prob 1e-4.
    """
    d = samples.shape[1]
    codes = (samples.long() * (2 ** torch.arange(d))).sum(1)
    counts = torch.bincount(codes, minlength=2**d).double()
    n = len(samples)
    expected = n * probs
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    chi2 = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    dof = int(keep.sum()) - 1
    threshold = stats.chi2.ppf(1 - CHI2_FAIL, dof)
    assert chi2 < threshold, (label, chi2, threshold, dof)


@pytest.mark.parametrize(
    "name",
    [
        "FVBN",
        "NeuralAR",
        "NADE",
        "MADE",
        "MADE-4-masks",
        "PixelCNN",
        "WaveNet",
        "RecurrentAR",
    ],
)
def test_samples_follow_the_model(name):
    d = 6
    model = perturbed(binary_models(d, seed=3)[name], scale=0.5)
    with torch.no_grad():
        probs = model.log_prob(all_states(d, dtype=DT)).exp()
        samples = model.sample(5_000, generator=gen(21))
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    chi2_check(samples, probs, name)


def test_nade_conditional_completion_is_exact():
    d = 6
    nade = perturbed(NADE(d, 5, generator=gen(22)))
    known = torch.tensor([False, True, False, True, False, False])
    order = order_known_first(known)
    assert order[:2].tolist() == [1, 3]
    states = all_states(d, dtype=DT)
    x0 = torch.tensor([0, 1, 0, 0, 0, 0], dtype=DT)  # x_1 = 1, x_3 = 0
    with torch.no_grad():
        match = (states[:, known] == x0[known]).all(1)
        # NADE with another order is another model: the reference is the conditional
        # p(x_unknown | x_known) of the joint under `order`, by enumeration.
        joint_o = nade.log_prob(states, order=order).exp()
        cond_o = torch.where(match, joint_o, torch.zeros_like(joint_o))
        cond_o = cond_o / cond_o.sum()
        samples = nade.sample(
            20_000, generator=gen(23), order=order, x=x0.expand(20_000, d), n_known=2
        )
    assert (samples[:, known] == x0[known]).all()
    chi2_check(samples, cond_o, "NADE completion")


def test_sample_sequential_records_frames():
    nade = perturbed(NADE(8, 4, generator=gen(24)))
    out, frames = nade.sample(5, generator=gen(25), record_every=3)
    assert len(frames) == 1 + 3 and torch.equal(frames[-1], out)  # steps 3, 6, 8
    made = MADE(8, [10]).double()
    out, frames = made.sample(4, generator=gen(26), record_every=4)
    assert len(frames) == 3 and torch.equal(frames[-1], out)
    assert (frames[0] == 0).all()


# ----------------------------------------------------------------------------- RNADE
def test_rnade_conditionals_integrate_to_one_and_are_autoregressive():
    d = 3
    rnade = perturbed(
        RNADE(d, 8, n_components=3, order=torch.tensor([2, 0, 1]), generator=gen(27)),
        scale=0.3,
    )
    x = torch.randn(4, d, generator=gen(28), dtype=DT)
    grid = torch.linspace(-40, 40, 8_001, dtype=DT)
    step = float(grid[1] - grid[0])
    with torch.no_grad():
        base = rnade.log_prob_terms(x)
        for dim in range(d):
            for b in range(len(x)):
                xs = x[b].expand(len(grid), d).clone()
                xs[:, dim] = grid
                terms = rnade.log_prob_terms(xs)
                mass = float(terms[:, dim].exp().sum() * step)
                assert abs(mass - 1) < 1e-6, (dim, b, mass)
                # changing x_dim leaves the conditionals of the dims generated before it
                # unchanged
                before = inverse_order(rnade.order) < inverse_order(rnade.order)[dim]
                assert torch.allclose(
                    terms[:, before], base[b, before].expand(len(grid), -1), atol=1e-12
                )


def test_rnade_joint_integrates_to_one_and_samples_match_first_marginal():
    rnade = perturbed(RNADE(2, 6, n_components=2, generator=gen(29)), scale=0.3)
    n = 801
    grid = torch.linspace(-12, 12, n, dtype=DT)
    gx, gy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)
    with torch.no_grad():
        mass = float(rnade.log_prob(pts).exp().sum()) * float(grid[1] - grid[0]) ** 2
        assert abs(mass - 1) < 1e-3, mass
        samples = rnade.sample(5_000, generator=gen(30))
        log_alpha, mu, log_sigma = rnade.conditionals(samples[:1])
    a, m, s = (
        log_alpha[0, 0].exp(),
        mu[0, 0],
        log_sigma[0, 0].exp(),
    )  # p(x_0): no predecessors

    def cdf(v):
        return (
            (
                a
                * torch.distributions.Normal(m, s).cdf(
                    torch.as_tensor(v, dtype=DT)[..., None]
                )
            )
            .sum(-1)
            .numpy()
        )

    # Kolmogorov-Smirnov test of x_0's samples against its mixture CDF: fails with
    # probability 1e-4
    assert stats.kstest(samples[:, 0].numpy(), cdf).pvalue > 1e-4


def test_rnade_order_agnostic_and_bad_input():
    rnade = RNADE(4, 5, generator=gen(31)).double()
    x = torch.randn(7, 4, generator=gen(32), dtype=DT)
    orders = random_orders(7, 4, generator=gen(33))
    batch = rnade.log_prob(x, order=orders)
    single = torch.cat(
        [rnade.log_prob(x[i : i + 1], order=orders[i]) for i in range(7)]
    )
    assert torch.allclose(batch, single, atol=1e-12)
    with pytest.raises(ValueError, match="finite"):
        rnade.log_prob(torch.full((2, 4), float("nan"), dtype=DT))
    with pytest.raises(ValueError, match="shape"):
        rnade.log_prob(torch.zeros(2, 5, dtype=DT))


# -----------------------------------------------------------------------------
# ensembles, training
def test_ensemble_beats_mean_of_logs_and_training_lowers_nll():
    d = 8
    nade = perturbed(NADE(d, 5, generator=gen(34)))
    x = (torch.rand(50, d, generator=gen(35)) < 0.3).to(DT)
    orders = random_orders(4, d, generator=gen(36))
    with torch.no_grad():
        ens = ensemble_log_prob(nade, x, orders)
        logs = torch.stack([nade.log_prob(x, order=o) for o in orders])
    assert (ens >= logs.mean(0) - 1e-12).all()  # Jensen, point by point
    torch.manual_seed(0)
    made = MADE(d, [20], n_masks=2, generator=gen(37)).double()
    copies = x[:, :1].expand(-1, d)  # all 0 or all 1: log p = -0.6 at best
    before = mean_log_prob(made, copies)
    hist = fit_max_likelihood(
        made,
        copies,
        epochs=20,
        batch_size=25,
        lr=1e-2,
        generator=gen(38),
        objective=made.cycle_log_prob,
        quiet=True,
    )
    assert len(hist["nll"]) == 40
    assert mean_log_prob(made, copies) > before + 1.5, (
        before,
        mean_log_prob(made, copies),
    )


def test_init_bias_from_data_starts_from_the_marginals():
    x = (
        torch.rand(200, 6, generator=gen(41))
        < torch.tensor([0.02, 0.1, 0.3, 0.5, 0.7, 0.98])
    ).to(DT)
    n1 = x.sum(0)
    lo = torch.log(n1 + 0.5) - torch.log(200 - n1 + 0.5)
    assert torch.allclose(marginal_log_odds(x), lo)
    for name, model in binary_models(6).items():
        model = model.double()
        model.init_bias_from_data(x)
        if name in ("FVBN", "NeuralAR"):
            assert torch.allclose(model.b, lo[model.order])
        elif name == "NADE":
            assert torch.allclose(model.b, lo)
        elif name.startswith("MADE"):
            assert torch.allclose(model.net.out.bias, lo)
            # the first variable of the order has no inputs: its conditional is the
            # marginal
            first = int(model.order[0])
            assert torch.allclose(model.logits(x[:3])[:, first], lo[first].expand(3))
        else:
            assert torch.allclose(model.bias, lo)
    with pytest.raises(ValueError, match="binary"):
        marginal_log_odds(torch.full((3, 2), 0.5))


# ----------------------------------------------------------------------------- bad
# input
@pytest.mark.parametrize("name", list(binary_models(6)))
def test_binary_models_reject_bad_input(name):
    model = binary_models(6)[name].double()
    with pytest.raises(ValueError, match="binary"):
        model.log_prob(torch.full((2, 6), 0.5, dtype=DT))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 7, dtype=DT))


def test_bad_orders_and_arguments_rejected():
    with pytest.raises(ValueError, match="permutation"):
        NADE(4, 3, order=[0, 1, 1, 2])
    with pytest.raises(ValueError, match="permutation"):
        FVBN(3, order=[0, 1])
    with pytest.raises(ValueError, match="permutation"):
        MADE(4, [8], order=[3, 2, 1, 1])
    nade = NADE(4, 3)
    with pytest.raises(ValueError, match="permutation"):
        nade.log_prob(
            torch.zeros(2, 4), order=torch.tensor([[0, 1, 2, 3], [0, 0, 1, 2]])
        )
    with pytest.raises(ValueError, match="shape"):
        nade.log_prob(torch.zeros(2, 4), order=torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="n_known"):
        nade.sample(2, n_known=5)
    with pytest.raises(ValueError, match="mask index"):
        MADE(4, [8], n_masks=2).set_mask(2)
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4, "A")
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        PixelCNN((4, 4)).log_prob(torch.zeros(2, 15))
    with pytest.raises(ValueError, match="n_known"):
        sample_sequential(lambda v: v, 2, torch.arange(3), n_known=4)
    with pytest.raises(ValueError, match="orders"):
        ensemble_log_prob(nade, torch.zeros(2, 4), torch.arange(4))
    assert math.isfinite(nade.log_prob(torch.ones(1, 4)).item())
