"""The training recipe (dgmlib.energy.recipe), fit_rbm's use of it, the fused RBM step
and the centered RBM.

Deterministic tests, float64: closed forms, exact enumeration, autograd. Each check that
could pass wrong code runs beside a named broken variant (a monkeypatch or a one-line
copy in this file) that must fail the same assertion.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dgmlib.energy import BernoulliRBM, RBMStep, fit_rbm
from dgmlib.energy import rbm as rbm_module
from dgmlib.energy.rbm import (
    centered_energy,
    centered_gradient,
    centered_to_uncentered,
    uncentered_parameters,
)
from dgmlib.energy.recipe import (
    MomentumSGD,
    Progress,
    constant,
    cosine_decay,
    linear_decay,
    momentum_ramp,
    resolve_schedule,
    visible_bias_from_data,
)

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_states(n: int) -> torch.Tensor:
    """Every binary vector of length n, (2^n, n)."""
    idx = torch.arange(2**n)
    return ((idx[:, None] >> torch.arange(n)) & 1).to(F64)


def random_data(n: int, d: int, seed: int, p: float = 0.4) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, d), p, dtype=F64), generator=gen(seed))


# --- schedules, momentum, the update --------------------------------------------------
def test_schedules_are_the_stated_functions_of_progress():
    ts = [0.0, 0.25, 0.5, 1.0]
    assert [constant(t) for t in ts] == [1.0] * 4
    assert [linear_decay(t) for t in ts] == [1.0, 0.75, 0.5, 0.0]
    assert [cosine_decay(t) for t in ts] == pytest.approx([1.0, 0.8535534, 0.5, 0.0])
    assert resolve_schedule("linear") is linear_decay
    f = lambda t: 0.3  # noqa: E731
    assert resolve_schedule(f) is f
    with pytest.raises(ValueError, match="schedule must be one of"):
        resolve_schedule("exponential")
    ramp = momentum_ramp(0.5, 0.9, at=0.1)
    assert (ramp(0.0), ramp(0.09), ramp(0.1), ramp(1.0)) == (0.5, 0.5, 0.9, 0.9)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        momentum_ramp(0.5, 1.0)


def momentum_by_hand(theta, grads, lr, m, wd, decayed):
    """v_{t+1} = m v_t + lr (g_t - wd theta_t); theta_{t+1} = theta_t + v_{t+1}."""
    v = 0.0
    for g in grads:
        v = m * v + lr * (g - (wd * theta if decayed else 0.0))
        theta = theta + v
    return theta


def test_momentum_sgd_is_the_update_by_hand_both_ways():
    W, b = torch.tensor([[1.0, -2.0]], dtype=F64), torch.tensor([0.5], dtype=F64)
    gW = [torch.tensor([[0.3, 0.1]], dtype=F64), torch.tensor([[-0.2, 0.4]], dtype=F64)]
    gb = [torch.tensor([1.0], dtype=F64), torch.tensor([-1.0], dtype=F64)]
    want_W = momentum_by_hand(W.clone(), gW, 0.1, 0.5, 0.2, True)
    want_b = momentum_by_hand(b.clone(), gb, 0.1, 0.5, 0.2, False)  # biases not decayed
    readable = [W.clone(), b.clone()]
    split = [W.clone(), b.clone()]
    opt_r = MomentumSGD(readable, [True, False], momentum=0.5, weight_decay=0.2)
    opt_s = MomentumSGD(split, [True, False], momentum=0.5, weight_decay=0.2)
    for g in zip(gW, gb):
        opt_r.step(g, 0.1)
        for v, gi in zip(opt_s.begin(0.1), g):
            v.add_(gi, alpha=0.1)
        opt_s.apply()
    for got in (readable, split):
        assert torch.allclose(got[0], want_W, atol=1e-15)
        assert torch.allclose(got[1], want_b, atol=1e-15)
    with pytest.raises(ValueError, match="one flag per tensor"):
        MomentumSGD([W, b], [True])


def test_progress_counts_steps_and_visible_bias_is_the_log_odds():
    p = Progress(total_steps=4)
    seen = []
    while not p.done:
        seen.append(p())
        p.tick()
    assert seen == [0.0, 0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match="exactly one"):
        Progress()
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=F64)
    p1, p2 = (0.75 + 0.01) / 1.02, 0.01 / 1.02
    want = torch.tensor([math.log(p1 / (1 - p1)), math.log(p2 / (1 - p2))], dtype=F64)
    assert torch.allclose(visible_bias_from_data(v), want)


# --- fit_rbm carries the recipe -------------------------------------------------------
def test_a_model_without_generator_starts_random_and_with_one_keeps_its_stream():
    torch.manual_seed(0)
    a, b = BernoulliRBM(784, 500), BernoulliRBM(784, 500)
    assert 0.009 < float(a.W.std()) < 0.011 and not torch.equal(a.W, b.W)
    assert not BernoulliRBM(5, 3, init_std=0.0).W.any()
    seeded = BernoulliRBM(6, 4, init_std=0.1, generator=gen(3), dtype=F64)
    assert torch.equal(seeded.W, 0.1 * torch.randn(6, 4, generator=gen(3), dtype=F64))
    with pytest.raises(ValueError, match="init_std"):
        BernoulliRBM(5, 3, init_std=-1.0)


def test_fit_rbm_follows_the_schedule_over_the_budget():
    data = random_data(40, 6, seed=1)
    seen = []

    def spy(t):
        seen.append(t)
        return 1.0

    fit_rbm(BernoulliRBM(6, 4, dtype=F64), data, epochs=2, batch_size=10, schedule=spy,
            generator=gen(2), quiet=True)  # fmt: skip
    assert seen == [i / 8 for i in range(8)]
    # a time budget: stops by itself with the epochs unbounded
    hist = fit_rbm(BernoulliRBM(6, 4, dtype=F64), data, seconds=0.3, batch_size=10,
                   generator=gen(2), quiet=True)  # fmt: skip
    assert hist.updates > 4 and len(hist["recon_error"]) == hist.updates


def test_chains_persist_across_calls_when_passed_back():
    data = random_data(40, 6, seed=4)
    rbm = BernoulliRBM(6, 4, init_std=0.3, generator=gen(5), dtype=F64)
    hist = fit_rbm(rbm, data, epochs=1, batch_size=10, generator=gen(6), quiet=True)
    again = fit_rbm(rbm, data, epochs=0, chains=hist.chains, quiet=True)
    assert torch.equal(again.chains, hist.chains)  # no update: the chains unchanged
    # one epoch from passed chains is the step run by hand from the same chains
    by_hand = BernoulliRBM(6, 4, dtype=F64)
    by_hand.load_state_dict(rbm.state_dict())
    cont = fit_rbm(rbm, data, epochs=1, batch_size=10, schedule="constant",
                   chains=hist.chains, generator=gen(7), quiet=True)  # fmt: skip
    g = gen(7)
    step = RBMStep(by_hand, "pcd", 1, 0.05, 0.5, 1e-4, g, chains=hist.chains.clone())
    for v in torch.utils.data.DataLoader(data[torch.randperm(40, generator=g)], 10):
        step(v)
    assert torch.allclose(rbm.W, by_hand.W, atol=1e-14)
    assert torch.equal(cont.chains, step.chains)
    with pytest.raises(ValueError, match="persistent chains"):
        fit_rbm(rbm, data, method="cd", chains=hist.chains)


def test_visible_biases_start_from_the_data_only_on_a_fresh_model():
    data = random_data(40, 6, seed=8, p=0.2)
    rbm = BernoulliRBM(6, 4, dtype=F64, generator=gen(9))
    hist = fit_rbm(rbm, data, epochs=0, quiet=True)
    assert torch.allclose(rbm.b, visible_bias_from_data(data))
    rbm.b.fill_(0.7)
    fit_rbm(rbm, data, epochs=0, quiet=True)  # trained biases are kept
    fit_rbm(BernoulliRBM(6, 4, dtype=F64), data, epochs=0, chains=hist.chains)
    assert torch.all(rbm.b == 0.7)
    fresh = BernoulliRBM(6, 4, dtype=F64)
    fit_rbm(fresh, data, epochs=0, init_visible_bias=False, quiet=True)
    assert not fresh.b.any()


def test_bad_recipe_arguments_are_rejected():
    data = random_data(10, 6, seed=10)
    rbm = BernoulliRBM(6, 4, dtype=F64)
    for kwargs, match in [
        ({"schedule": "step"}, "schedule must be one of"),
        ({"seconds": 0.0}, "seconds"),
        ({"momentum": 1.0}, "momentum"),
        ({"epochs": -1}, "epochs"),
    ]:
        with pytest.raises(ValueError, match=match):
            fit_rbm(rbm, data, quiet=True, **kwargs)


# --- the fused step is the readable step ----------------------------------------------
def run_steps(fused: bool, method: str, k: int, centered: bool, dtype=F64, lo=None):
    g = gen(11)
    rbm = BernoulliRBM(7, 5, init_std=0.3, generator=g, dtype=dtype)
    data = torch.bernoulli(torch.full((30, 7), 0.4, dtype=dtype), generator=g)
    step = RBMStep(rbm, method, k, 0.1, 0.5, 0.01, g, chains=data[:6].clone(),
                   matmul_dtype=lo, fused=fused, centered=centered,
                   mu=data.mean(0))  # fmt: skip
    for i in range(5):  # four batches of 6, then a smaller one (buffers re-made)
        step(data[6 * i : 6 * i + 6] if i < 4 else data[:4])
    return rbm, step


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("method, k", [("pcd", 1), ("cd", 2), ("pcd", 3)])
def test_fused_step_equals_the_readable_step_on_the_same_seed(method, k, centered):
    (a, sa), (b, sb) = (run_steps(f, method, k, centered) for f in (False, True))
    for x, y in [(a.W, b.W), (a.b, b.b), (a.c, b.c)]:
        assert torch.allclose(x, y, atol=1e-13)
    assert torch.equal(sa.chains, sb.chains)
    if centered:
        assert torch.allclose(sa.lam, sb.lam, atol=1e-14)


@pytest.mark.parametrize("variant", ["correct", "no_weight_momentum"])
def test_fused_step_equality_catches_a_step_without_the_weights_momentum(
    variant, monkeypatch
):
    """The equality above, run on a fused step that drops the momentum of W (beta=0
    in its first product): the same draws, other weights.
    """
    want, _ = run_steps(False, "pcd", 1, False)
    if variant == "no_weight_momentum":
        real = torch.Tensor.addmm_

        def no_beta(self, m1, m2, *, beta=1, alpha=1):
            return real(self, m1, m2, beta=0 if beta != 1 else 1, alpha=alpha)

        monkeypatch.setattr(torch.Tensor, "addmm_", no_beta)
    got, _ = run_steps(True, "pcd", 1, False)
    ok = bool(torch.allclose(want.W, got.W, atol=1e-13))
    assert ok == (variant == "correct")


def test_fused_bfloat16_step_equals_the_readable_one_to_its_rounding():
    (a, sa), (b, sb) = (
        run_steps(f, "pcd", 1, False, torch.float32, torch.bfloat16)
        for f in (False, True)
    )
    # the same draws up to rare flips where bf16 rounding crosses a uniform
    assert (sa.chains != sb.chains).float().mean() < 0.05
    assert (a.W - b.W).abs().max() < 0.02 * 5 * 0.1


# --- the centered RBM -----------------------------------------------------------------
def centered_model(seed: int, D: int = 4, H: int = 3):
    g = gen(seed)
    W, b_c, c_c = (
        torch.randn(*s, generator=g, dtype=F64) for s in ((D, H), (D,), (H,))
    )
    mu = torch.rand(D, generator=g, dtype=F64)
    lam = torch.rand(H, generator=g, dtype=F64)
    return W, b_c, c_c, mu, lam


def joint_probabilities(energy, D: int, H: int) -> torch.Tensor:
    v, h = all_states(D), all_states(H)
    vv, hh = v.repeat_interleave(len(h), 0), h.repeat(len(v), 1)
    return torch.softmax(-energy(vv, hh), 0)  # (2^(D+H),) exact P(v, h)


def broken_uncentered_parameters(W, b_c, c_c, mu, lam):
    """One term dropped: c = c_c, without - W^T mu."""
    return W, b_c - W @ lam, c_c


@pytest.mark.parametrize("variant", ["correct", "no_visible_offset_in_c"])
def test_centered_and_uncentered_parametrisations_are_one_distribution(variant):
    to_rbm = {
        "correct": uncentered_parameters,
        "no_visible_offset_in_c": broken_uncentered_parameters,
    }[variant]
    ok = True
    for seed in range(3):
        params = centered_model(seed)
        p_centered = joint_probabilities(
            lambda v, h: centered_energy(v, h, *params), 4, 3
        )
        rbm = BernoulliRBM(4, 3, dtype=F64)
        rbm.W, rbm.b, rbm.c = (t.clone() for t in to_rbm(*params))
        p_rbm = joint_probabilities(rbm.energy, 4, 3)
        ok &= bool(torch.allclose(p_centered, p_rbm, atol=1e-14))
    assert ok == (variant == "correct")


def centered_free_energy(v, W, b_c, c_c, mu, lam):
    """F_c(v) = -(v - mu).b_c - sum_j [softplus(a_j) - lam_j a_j],
    a = c_c + (v - mu) W: the centered energy with h summed out by hand.
    """
    a = c_c + (v - mu) @ W
    return -((v - mu) @ b_c) - (F.softplus(a) - lam * a).sum(-1)


def broken_centered_gradient(rbm, v_pos, v_neg, mu, lam):
    """The hidden offsets not subtracted: dW = <(v - mu) h^T>_data - <...>_model."""
    ph_pos, ph_neg = rbm.p_h_given_v(v_pos), rbm.p_h_given_v(v_neg)
    dW = (v_pos - mu).T @ ph_pos / len(v_pos) - (v_neg - mu).T @ ph_neg / len(v_neg)
    return dW, v_pos.mean(0) - v_neg.mean(0), ph_pos.mean(0) - ph_neg.mean(0)


@pytest.mark.parametrize("variant", ["correct", "hidden_offsets_not_subtracted"])
def test_centered_gradient_is_the_autograd_gradient(variant, monkeypatch):
    grad_fn = {
        "correct": centered_gradient,
        "hidden_offsets_not_subtracted": broken_centered_gradient,
    }[variant]
    ok = True
    for seed in range(3):
        W, b_c, c_c, mu, lam = centered_model(seed, D=6, H=4)
        v_pos, v_neg = random_data(8, 6, seed + 10), random_data(5, 6, seed + 20)
        params = [t.clone().requires_grad_() for t in (W, b_c, c_c)]
        loglik = -centered_free_energy(v_pos, *params, mu, lam).mean()
        loglik = loglik + centered_free_energy(v_neg, *params, mu, lam).mean()
        want = torch.autograd.grad(loglik, params)
        rbm = BernoulliRBM(6, 4, dtype=F64)
        rbm.W, rbm.b, rbm.c = (
            t.clone() for t in uncentered_parameters(W, b_c, c_c, mu, lam)
        )
        got = grad_fn(rbm, v_pos, v_neg, mu, lam)
        ok &= all(bool(torch.allclose(x, y, atol=1e-12)) for x, y in zip(got, want))
    assert ok == (variant == "correct")


def test_the_centered_step_is_a_centered_gradient_step_in_the_model():
    """One step of RBMStep(centered=True), no momentum or decay: the model moves by
    lr * centered_to_uncentered(centered_gradient(...)), and that is the same model as
    stepping the centered parameters and converting them.
    """
    W, b_c, c_c, mu, lam = centered_model(3, D=6, H=4)
    rbm, before = BernoulliRBM(6, 4, dtype=F64), BernoulliRBM(6, 4, dtype=F64)
    for m in (rbm, before):
        m.W, m.b, m.c = (t.clone() for t in uncentered_parameters(W, b_c, c_c, mu, lam))
    v_pos = random_data(8, 6, seed=30)
    step = RBMStep(rbm, "pcd", 1, 0.1, 0.0, 0.0, gen(31), chains=v_pos[:5].clone(),
                   centered=True, mu=mu.clone(), lam=lam.clone(),
                   offset_rate=0.0)  # fmt: skip
    step(v_pos)
    g_c = centered_gradient(before, v_pos, step.chains, mu, lam)
    d = centered_to_uncentered(*g_c, mu, lam)
    for new, old, di in zip((rbm.W, rbm.b, rbm.c), (before.W, before.b, before.c), d):
        assert torch.allclose(new - old, 0.1 * di, atol=1e-13)
    stepped = [p + 0.1 * g for p, g in zip((W, b_c, c_c), g_c)]
    for x, y in zip(uncentered_parameters(*stepped, mu, lam), (rbm.W, rbm.b, rbm.c)):
        assert torch.allclose(x, y, atol=1e-13)


def test_fit_rbm_centered_learns_and_returns_its_offsets():
    data = random_data(60, 6, seed=40, p=0.3)
    rbm = BernoulliRBM(6, 4, init_std=0.1, generator=gen(41), dtype=F64)
    hist = fit_rbm(rbm, data, centered=True, epochs=3, batch_size=10, generator=gen(42),
                   quiet=True)  # fmt: skip
    mu, lam = hist.offsets
    assert torch.allclose(mu, data.mean(0)) and lam.shape == (4,)
    assert not torch.allclose(lam, torch.full_like(lam, 0.5))  # it moved
    assert rbm_module.RBMStep is RBMStep
