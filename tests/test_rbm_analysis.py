"""dgmlib.energy.rbm_analysis against enumeration, autograd and closed forms
(float64, fixed seeds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_rbm

from dgmlib.energy import BernoulliRBM, cd_update
from dgmlib.energy.rbm_analysis import (
    PCDRun,
    bias_variance,
    cd_estimates,
    cd_moments,
    data_statistics,
    estimator_moments,
    exact_gradient,
    exact_gradient_ascent,
    flatten_gradient,
    from_sklearn,
    gibbs_kernel,
    gradient_estimates,
    joint_distribution,
    log_likelihood,
    model_statistics,
    posterior_by_enumeration,
    pseudo_log_likelihood_bruteforce,
    state_index,
    stochastic_pseudo_log_likelihood,
    to_sklearn,
)
from dgmlib.exact import all_states
from dgmlib.mcmc import gibbs_chain

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def random_data(n, d, seed=1, p=0.4):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, d), p, dtype=F64), generator=g)


def marginal_v(rbm):
    """P(v) over all_states(D) order, summed out of the joint table."""
    v, _, p = joint_distribution(rbm)
    idx = state_index(v)
    return torch.zeros(2**rbm.n_visible, dtype=F64).index_add_(0, idx, p)


def test_state_index_follows_all_states_order():
    s = all_states(6, dtype=F64)
    assert torch.equal(state_index(s), torch.arange(64))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        state_index(torch.zeros(3))


def test_joint_distribution_marginal_is_exp_minus_free_energy():
    rbm = random_rbm()
    vs = all_states(5, dtype=F64)
    p_free = torch.softmax(-rbm.free_energy(vs), 0)
    assert torch.allclose(marginal_v(rbm), p_free, atol=1e-13)
    assert torch.allclose(log_likelihood(rbm, vs).exp(), p_free, atol=1e-13)
    with pytest.raises(ValueError, match="D \\+ H"):
        joint_distribution(BernoulliRBM(15, 10))


def test_posterior_by_enumeration_is_the_product_of_the_factorial_conditionals():
    rbm = random_rbm(seed=2)
    v = all_states(5, dtype=F64)
    h, p = posterior_by_enumeration(rbm, v)  # (8, 3), (32, 8)
    q = rbm.p_h_given_v(v)  # (32, 3)
    prod = torch.where(h[None] == 1, q[:, None], 1 - q[:, None]).prod(-1)  # (32, 8)
    assert torch.allclose(p, prod, atol=1e-13)
    assert torch.allclose(p.sum(1), torch.ones(32, dtype=F64))


@pytest.mark.parametrize("d,h", [(5, 3), (3, 6)])
def test_model_statistics_match_the_joint_table(d, h):
    rbm = random_rbm(d, h, seed=3)
    v, hh, p = joint_distribution(rbm)
    vh, ev, eh = model_statistics(rbm)
    assert torch.allclose(vh, torch.einsum("n,ni,nj->ij", p, v, hh), atol=1e-13)
    assert torch.allclose(ev, p @ v, atol=1e-13) and torch.allclose(
        eh, p @ hh, atol=1e-13
    )


@pytest.mark.parametrize("d,h", [(5, 3), (3, 6)])
def test_exact_gradient_is_the_autograd_gradient_of_the_log_likelihood(d, h):
    rbm = random_rbm(d, h, seed=4)
    data = random_data(11, d)
    dW, db, dc = exact_gradient(rbm, data)
    for t in (rbm.W, rbm.b, rbm.c):
        t.requires_grad_(True)
    gW, gb, gc = torch.autograd.grad(
        log_likelihood(rbm, data).mean(), (rbm.W, rbm.b, rbm.c)
    )
    assert (
        torch.allclose(dW, gW, atol=1e-12)
        and torch.allclose(db, gb, atol=1e-12)
        and torch.allclose(dc, gc, atol=1e-12)
    )


def test_gradient_estimates_equal_cd_update_group_by_group():
    rbm = random_rbm(seed=5)
    v_pos = random_data(7, 5, seed=6)
    v_neg = random_data(4 * 9, 5, seed=7).reshape(4, 9, 5)
    est = gradient_estimates(rbm, v_pos, v_neg)
    loop = torch.stack(
        [flatten_gradient(cd_update(rbm, v_pos, v_neg[r])) for r in range(4)]
    )
    assert est.shape == (4, 5 * 3 + 5 + 3)
    assert torch.allclose(est, loop, atol=1e-14)
    assert torch.allclose(
        flatten_gradient(data_statistics(rbm, v_pos)),
        torch.cat(
            [
                (v_pos.T @ rbm.p_h_given_v(v_pos) / 7).reshape(-1),
                v_pos.mean(0),
                rbm.p_h_given_v(v_pos).mean(0),
            ]
        ),
    )
    with pytest.raises(ValueError, match=r"\(R, M, 5\)"):
        gradient_estimates(rbm, v_pos, v_neg[0])


def test_gibbs_kernel_is_the_block_gibbs_transition():
    rbm = random_rbm(4, 3, seed=8)
    A, B = gibbs_kernel(rbm)
    _, post = posterior_by_enumeration(rbm, all_states(4, dtype=F64))
    assert torch.allclose(A, post, atol=1e-13)
    T = A @ B
    assert torch.allclose(T.sum(1), torch.ones(16, dtype=F64))
    p = marginal_v(rbm)
    assert torch.allclose(p @ T, p, atol=1e-13)  # P(v) is invariant
    # B[h, v'] = prod_i P(v'_i | h)
    pv = rbm.p_v_given_h(all_states(3, dtype=F64))
    vs = all_states(4, dtype=F64)
    assert torch.allclose(
        B, torch.where(vs[None] == 1, pv[:, None], 1 - pv[:, None]).prod(-1), atol=1e-13
    )


def test_estimator_moments_with_exact_samples_unbiased_and_cd_with_long_chains():
    rbm = random_rbm(4, 3, seed=9, scale=0.7)
    data = random_data(6, 4, seed=10)
    g_exact = flatten_gradient(exact_gradient(rbm, data))
    p = marginal_v(rbm)
    mean, var = estimator_moments(rbm, data, p.expand(6, -1))
    assert torch.allclose(mean, g_exact, atol=1e-13) and var > 0
    A, B = gibbs_kernel(rbm)
    q = torch.nn.functional.one_hot(state_index(data), 16).to(
        F64
    ) @ torch.linalg.matrix_power(A @ B, 200)
    mean_long, var_long = estimator_moments(rbm, data, q)
    assert torch.allclose(mean_long, g_exact, atol=1e-10) and var_long == pytest.approx(
        var, rel=1e-8
    )
    with pytest.raises(ValueError, match="2\\*\\*4"):
        estimator_moments(rbm, data, p)
    # cd_moments: k = 0 is the data itself (zero gradient estimate's negative = positive
    # phase)
    means, variances = cd_moments(rbm, data, [0, 200, 3])
    assert torch.allclose(means[0], torch.zeros_like(g_exact), atol=1e-13) and float(
        variances[0]
    ) == pytest.approx(0.0, abs=1e-13)
    assert torch.allclose(means[1], mean_long, atol=1e-10)
    q3 = torch.nn.functional.one_hot(state_index(data), 16).to(
        F64
    ) @ torch.linalg.matrix_power(A @ B, 3)
    assert torch.allclose(means[2], estimator_moments(rbm, data, q3)[0], atol=1e-13)


def test_cd_estimates_agree_with_their_exact_moments():
    # 4,000 CD-2 estimates: the exact expected estimate must lie within the
    # concentration radius of bias_variance (t = 4: fails with probability <= exp(-8) =
    # 3e-4), and the sample variance within 10% of the exact one (its relative sd here
    # is about 2%).
    rbm = random_rbm(4, 3, seed=11, scale=0.8)
    data = random_data(6, 4, seed=12)
    est = cd_estimates(rbm, data, 2, 4000, generator=torch.Generator().manual_seed(13))
    A, B = gibbs_kernel(rbm)
    q = torch.nn.functional.one_hot(state_index(data), 16).to(
        F64
    ) @ torch.linalg.matrix_power(A @ B, 2)
    mean, var = estimator_moments(rbm, data, q)
    bv = bias_variance(est, mean)
    assert bv.bias_low == 0.0, bv
    assert bv.variance == pytest.approx(var, rel=0.10)
    # and CD-2 with a single estimate reproduces gibbs_chain + cd_update on the same
    # seed
    one = cd_estimates(rbm, data, 2, 1, generator=torch.Generator().manual_seed(14))
    v2 = gibbs_chain(rbm, data, 2, generator=torch.Generator().manual_seed(14))
    assert torch.allclose(one[0], flatten_gradient(cd_update(rbm, data, v2)))


def test_bias_variance_bounds_contain_a_known_bias():
    # Gaussian estimates with a known bias and covariance; t = 4 bounds fail with prob
    # <= 3e-4.
    g = torch.Generator().manual_seed(15)
    p, n = 30, 2000
    truth, bias = torch.zeros(p, dtype=F64), torch.full((p,), 0.05, dtype=F64)
    scale = torch.linspace(0.1, 1.0, p, dtype=F64)
    est = truth + bias + scale * torch.randn(n, p, generator=g, dtype=F64)
    bv = bias_variance(est, truth)
    assert bv.bias_low <= float(bias.norm()) <= bv.bias_high
    assert bv.variance == pytest.approx(float((scale**2).sum()), rel=0.1)
    assert bv.mse == pytest.approx(bv.bias_norm**2 + bv.variance)
    with pytest.raises(ValueError, match="at least 2"):
        bias_variance(est[:1], truth)
    with pytest.raises(ValueError, match=r"\(R, P\)"):
        bias_variance(est, truth[:-1])


def test_exact_gradient_ascent_raises_likelihood_and_tracks_chain_distribution():
    rbm = random_rbm(5, 3, seed=16, scale=0.1)
    data = random_data(8, 5, seed=17)
    q0 = torch.full((1, 32), 1 / 32, dtype=F64)
    ll, q = exact_gradient_ascent(
        rbm, data, n_steps=50, lr=0.2, chain_dist=q0, record_every=10
    )
    assert len(ll) == 6 and all(b > a for a, b in zip(ll, ll[1:]))
    assert torch.allclose(q.sum(1), torch.ones(1, dtype=F64))
    # with lr = 0 the tracked distribution converges to the model's P(v)
    _, q_still = exact_gradient_ascent(rbm, data, n_steps=40, lr=0.0, chain_dist=q0)
    assert torch.allclose(q_still[0], marginal_v(rbm), atol=1e-8)


def test_pseudo_log_likelihood_bruteforce_matches_the_model_and_the_definition():
    rbm = random_rbm(5, 3, seed=18)
    v = all_states(5, dtype=F64)
    p = marginal_v(rbm)
    # P(v_i | v_-i) from the exact table: p(v) / (p(v) + p(v with unit i flipped))
    direct = torch.zeros(32, dtype=F64)
    for i in range(5):
        flipped = state_index(v) ^ (1 << i)
        direct += torch.log(p / (p + p[flipped]))
    assert torch.allclose(pseudo_log_likelihood_bruteforce(rbm, v), direct, atol=1e-12)
    assert torch.allclose(rbm.pseudo_log_likelihood(v), direct, atol=1e-12)


def test_pseudo_likelihood_equals_likelihood_for_a_factorial_model():
    rbm = random_rbm(6, 3, seed=19)
    rbm.W.zero_()  # no interactions
    v = random_data(20, 6, seed=20)
    assert torch.allclose(
        rbm.pseudo_log_likelihood(v), log_likelihood(rbm, v), atol=1e-12
    )


def test_stochastic_pseudo_likelihood_averages_to_the_pseudo_likelihood():
    rbm = random_rbm(5, 3, seed=21)
    v = random_data(9, 5, seed=22)
    every = torch.stack(
        [
            stochastic_pseudo_log_likelihood(rbm, v, index=torch.full((9,), i))
            for i in range(5)
        ]
    )
    assert torch.allclose(every.mean(0), rbm.pseudo_log_likelihood(v), atol=1e-12)
    with pytest.raises(ValueError, match="one unit"):
        stochastic_pseudo_log_likelihood(rbm, v, index=torch.full((9,), 5))


def test_sklearn_score_samples_is_the_one_unit_estimate():
    pytest.importorskip("sklearn")
    rbm = random_rbm(7, 4, seed=23)
    v = random_data(50, 7, seed=24)
    est = to_sklearn(rbm, random_state=3)
    idx = np.random.RandomState(3).randint(0, 7, 50)  # sklearn's draw
    ours = stochastic_pseudo_log_likelihood(rbm, v, index=torch.from_numpy(idx))
    assert np.allclose(est.score_samples(v.numpy()), ours.numpy(), atol=1e-10)
    back = from_sklearn(est)
    assert (
        torch.equal(back.W, rbm.W)
        and torch.equal(back.b, rbm.b)
        and torch.equal(back.c, rbm.c)
    )
    with pytest.raises(ValueError, match="fitted"):
        from sklearn.neural_network import BernoulliRBM as SkRBM

        from_sklearn(SkRBM())


def test_pcd_run_keeps_chains_and_round_trips_through_the_cache(tmp_path, monkeypatch):
    from dgmlib.cache import train_or_load

    monkeypatch.setenv("DGMLIB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DGMLIB_CACHE", "on")
    data = random_data(40, 6, seed=25)
    calls = []

    def build():
        return PCDRun(
            BernoulliRBM(6, 4, generator=torch.Generator().manual_seed(0), dtype=F64),
            n_chains=10,
            epochs=3,
        )

    def train(run):
        calls.append(1)
        run.fit(
            data,
            batch_size=10,
            lr=0.1,
            generator=torch.Generator().manual_seed(1),
            quiet=True,
        )

    a = train_or_load("pcd-test", {"v": 1}, build=build, train=train)
    b = train_or_load("pcd-test", {"v": 1}, build=build, train=train)
    assert len(calls) == 1
    assert torch.equal(a.chains, b.chains) and torch.equal(a.rbm.W, b.rbm.W)
    assert ((a.chains == 0) | (a.chains == 1)).all() and (a.recon_error > 0).all()
    with pytest.raises(ValueError, match="epochs"):
        a.fit(data, epochs=2)
    with pytest.raises(ValueError, match="n_chains >= 1"):
        PCDRun(BernoulliRBM(6, 4), n_chains=0, epochs=1)
