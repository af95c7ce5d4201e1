"""BoltzmannMachine, exact learning and sequential Gibbs sampling against enumeration
(float64).
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from dgmlib.energy import BoltzmannMachine, exact_gradient, fit_bm_exact, hebbian_update
from dgmlib.exact import all_states
from dgmlib.mcmc.sequential import (
    evolve_distribution,
    gibbs_transition_matrix,
    sequential_gibbs,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def random_bm(n_visible=4, n_hidden=2, seed=0, scale=1.0) -> BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    bm = BoltzmannMachine(n_visible, n_hidden, generator=g, init_std=scale, dtype=F64)
    bm.b = scale * torch.randn(bm.n_units, generator=g, dtype=F64)
    return bm


def brute_energy(bm, x):
    """E(x) = -sum_ij U_ij x_i x_j - sum_i b_i x_i, term by term (eq. 20.2)."""
    d = bm.n_units
    return -sum(bm.U[i, j] * x[i] * x[j] for i in range(d) for j in range(d)) - sum(
        bm.b[i] * x[i] for i in range(d)
    )


def brute_table(bm, temperature=1.0):
    """All joint states and their probabilities, from the brute-force energy."""
    x = all_states(bm.n_units, dtype=F64)
    e = torch.stack([brute_energy(bm, row) for row in x])
    return x, torch.softmax(-e / temperature, 0), torch.logsumexp(-e / temperature, 0)


def test_energy_by_hand_and_block_form():
    bm = BoltzmannMachine(2, 1, dtype=F64)
    bm.set_weights(
        torch.tensor([[0.0, 0.5, -1.0], [0.5, 0.0, 2.0], [-1.0, 2.0, 0.0]], dtype=F64),
        torch.tensor([0.1, -0.2, 0.3], dtype=F64),
    )
    x = torch.tensor([[1.0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=F64)
    # x^T U x counts each pair twice: (1,0,1) -> -2 U_02 - b_0 - b_2 = 2 - 0.4
    expected = torch.tensor(
        [2.0 - 0.4, -1.0 + 0.1, 0.0, -2 * (0.5 - 1.0 + 2.0) - 0.2], dtype=F64
    )
    assert torch.allclose(bm.energy(x), expected)
    # eq. 20.3: -v R v - v W h - h S h - b v - c h with W = 2 U[:D, D:]
    bm = random_bm(4, 3, seed=1)
    x = all_states(7, dtype=F64)
    v, h = x[:, :4], x[:, 4:]
    e_blocks = (
        -((v @ bm.R) * v).sum(1)
        - ((v @ bm.W) * h).sum(1)
        - ((h @ bm.S) * h).sum(1)
        - v @ bm.b[:4]
        - h @ bm.b[4:]
    )
    assert torch.allclose(bm.energy(x), e_blocks)
    assert torch.allclose(
        bm.energy(x[:5]), torch.stack([brute_energy(bm, r) for r in x[:5]])
    )


def test_init_is_symmetric_with_zero_diagonal():
    bm = BoltzmannMachine(
        5, 3, generator=torch.Generator().manual_seed(0), init_std=0.3, dtype=F64
    )
    assert torch.equal(bm.U, bm.U.T) and bool((bm.U.diagonal() == 0).all())
    assert float(bm.U.abs().max()) > 0
    assert torch.equal(BoltzmannMachine(3, dtype=F64).U, torch.zeros(3, 3, dtype=F64))


def test_conditionals_equal_enumeration_ratios():
    bm = random_bm(3, 2, seed=2)
    x, p, _ = brute_table(bm)
    index = {tuple(r.tolist()): k for k, r in enumerate(x)}
    cond = bm.p_unit_given_rest(x)  # (32, 5)
    for k, row in enumerate(x):
        for i in range(bm.n_units):
            on, off = row.clone(), row.clone()
            on[i], off[i] = 1, 0
            p_on, p_off = p[index[tuple(on.tolist())]], p[index[tuple(off.tolist())]]
            ratio = p_on / (p_on + p_off)  # P(x_i=1, x_-i) / P(x_-i)
            assert float(cond[k, i]) == pytest.approx(float(ratio), abs=1e-12)
    for i in range(bm.n_units):
        assert torch.allclose(bm.conditional(x, i), cond[:, i])
    # the factor 2: the "half" logistic sigmoid(b + U x) is not the conditional of eq.
    # 20.2
    assert float((torch.sigmoid(x @ bm.U + bm.b) - cond).abs().max()) > 0.05


def test_log_partition_joint_vs_marginal_and_distributions():
    bm = random_bm(4, 3, seed=3)
    _, p_brute, log_z_brute = brute_table(bm)
    log_z = bm.log_partition()
    assert float(log_z) == pytest.approx(float(log_z_brute), abs=1e-10)
    # marginalise the hidden units first: log Z = logsumexp_v -F(v)
    v = all_states(4, dtype=F64)
    assert float(torch.logsumexp(bm.log_unnormalized(v), 0)) == pytest.approx(
        float(log_z), abs=1e-10
    )
    # F(v) = -log sum_h exp(-E(v, h)) by brute force
    h = all_states(3, dtype=F64)
    for row in v:
        x = torch.cat([row.expand(8, 4), h], 1)
        assert float(bm.free_energy(row[None])[0]) == pytest.approx(
            float(-torch.logsumexp(-bm.energy(x), 0)), abs=1e-12
        )
    # distributions and marginals
    x, p = bm.state_distribution()
    assert torch.allclose(p, p_brute, atol=1e-14)
    vs, pv = bm.visible_distribution()
    assert torch.allclose(pv, bm.log_prob(vs).exp(), atol=1e-14)
    assert float(pv.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(bm.marginals(), p @ x, atol=1e-14)
    log_z2, m1, m2 = bm.model_moments()
    assert torch.allclose(m2, (x * p[:, None]).T @ x, atol=1e-14) and torch.allclose(
        m1, m2.diagonal()
    )
    # temperature T: P_T proportional to exp(-E/T)
    for T in (0.5, 3.0):
        _, p_t, log_z_t = brute_table(bm, temperature=T)
        assert float(bm.log_partition(temperature=T)) == pytest.approx(
            float(log_z_t), abs=1e-10
        )
        assert torch.allclose(bm.state_distribution(temperature=T)[1], p_t, atol=1e-14)
        pv_t = bm.visible_distribution(temperature=T)[1]
        assert torch.allclose(
            pv_t, (p_t.reshape(8, 16)).sum(0), atol=1e-14
        )  # bits 4..6 (hidden) are the high bits


def test_large_chunked_enumeration_matches_direct():
    bm = random_bm(14, 2, seed=4, scale=0.3)  # 16 units: two chunks of 2**15
    x = all_states(16, dtype=F64)
    log_w = -bm.energy(x)
    assert float(bm.log_partition()) == pytest.approx(
        float(torch.logsumexp(log_w, 0)), abs=1e-9
    )
    p = torch.softmax(log_w, 0)
    assert torch.allclose(bm.marginals(), p @ x, atol=1e-12)
    assert float(bm.visible_distribution()[1].sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n_hidden", [0, 2])
def test_exact_gradient_equals_autograd(n_hidden):
    bm = random_bm(4, n_hidden, seed=5, scale=0.7)
    g = torch.Generator().manual_seed(6)
    v = torch.bernoulli(torch.full((23, 4), 0.4, dtype=F64), generator=g)
    dU, db, ll = exact_gradient(bm, v, return_log_likelihood=True)
    U, b = bm.U.clone().requires_grad_(), bm.b.clone().requires_grad_()
    bm.U, bm.b = U, b
    mean_ll = bm.log_prob(v).mean()
    gU, gb = torch.autograd.grad(mean_ll, (U, b))
    off = ~torch.eye(bm.n_units, dtype=torch.bool)
    assert torch.allclose(dU[off], gU[off], atol=1e-12)
    assert torch.allclose(db, gb, atol=1e-12)
    assert torch.equal(dU, dU.T) and bool((dU.diagonal() == 0).all())
    assert float(ll) == pytest.approx(float(mean_ll.detach()), abs=1e-12)


def test_hebbian_update_is_local():
    g = torch.Generator().manual_seed(7)
    x_pos = torch.bernoulli(torch.full((50, 6), 0.5, dtype=F64), generator=g)
    x_neg = torch.bernoulli(torch.full((70, 6), 0.3, dtype=F64), generator=g)
    dU, db = hebbian_update(x_pos, x_neg)
    assert float(dU[1, 4]) == pytest.approx(
        float((x_pos[:, 1] * x_pos[:, 4]).mean() - (x_neg[:, 1] * x_neg[:, 4]).mean())
    )
    # scramble units other than 1 and 4 in both phases: entry (1, 4) and b_1, b_4 do not
    # move
    y_pos, y_neg = x_pos.clone(), x_neg.clone()
    for k in (0, 2, 3, 5):
        y_pos[:, k] = 1 - y_pos[torch.randperm(50, generator=g), k]
        y_neg[:, k] = torch.bernoulli(torch.full((70,), 0.8, dtype=F64), generator=g)
    dU2, db2 = hebbian_update(y_pos, y_neg)
    assert dU2[1, 4] == dU[1, 4] and db2[1] == db[1] and db2[4] == db[4]
    assert float((dU2 - dU).abs().max()) > 0.1


def test_fit_bm_exact_improves_likelihood():
    x = all_states(3, dtype=F64)
    parity = x[x.sum(1) % 2 == 0]
    # fully visible: the log-likelihood is concave; small steps increase it
    # monotonically, but the pairwise statistics of 3-bit parity are those of the
    # uniform distribution
    bm = random_bm(3, 0, seed=8, scale=0.5)
    hist = fit_bm_exact(bm, parity, lr=0.2, n_steps=100, quiet=True)
    ll = torch.tensor(hist["log_likelihood"])
    assert len(ll) == 100 and bool((ll[1:] >= ll[:-1] - 1e-12).all())
    assert float(bm.log_prob(parity).mean()) == pytest.approx(-math.log(8), abs=1e-3)
    # one hidden unit represents the third-order interaction
    bm = BoltzmannMachine(
        3, 1, generator=torch.Generator().manual_seed(0), init_std=0.5, dtype=F64
    )
    fit_bm_exact(bm, parity, lr=0.3, n_steps=300, momentum=0.9, quiet=True)
    assert float(bm.log_prob(parity).mean()) > -math.log(8) + 0.3


def brute_transition_matrix(bm, temperature=1.0):
    """T[s, s'] of one sweep over units 0..d-1, by following every path of single-site
    updates.
    """
    d = bm.n_units
    states = all_states(d, dtype=F64)
    n = 2**d
    T = torch.zeros(n, n, dtype=F64)
    for s in range(n):
        paths = {s: 1.0}
        for i in range(d):
            nxt = {}
            for code, w in paths.items():
                x = states[code]
                p1 = float(torch.sigmoid((2 * (bm.U[i] @ x) + bm.b[i]) / temperature))
                on, off = code | (1 << i), code & ~(1 << i)
                nxt[on] = nxt.get(on, 0.0) + w * p1
                nxt[off] = nxt.get(off, 0.0) + w * (1 - p1)
            paths = nxt
        for code, w in paths.items():
            T[s, code] = w
    return T


@pytest.mark.parametrize("d,n_hidden", [(3, 0), (4, 1)])
def test_sweep_transition_matrix_leaves_p_invariant(d, n_hidden):
    bm = random_bm(d - n_hidden, n_hidden, seed=9, scale=1.0)
    for T_ in (1.0, 2.5):
        T = gibbs_transition_matrix(bm, temperature=T_)
        assert torch.allclose(T, brute_transition_matrix(bm, T_), atol=1e-14)
        assert torch.allclose(T.sum(1), torch.ones(2**d, dtype=F64))
        _, p = bm.state_distribution(temperature=T_)
        assert torch.allclose(p @ T, p, atol=1e-14)  # P is invariant
    # one sweep is the product of the single-site kernels; each is reversible
    # (detailed balance)
    _, p = bm.state_distribution()
    prod = torch.eye(2**d, dtype=F64)
    for i in range(d):
        K = gibbs_transition_matrix(bm, order=[i])
        flow = p[:, None] * K
        assert torch.allclose(flow, flow.T, atol=1e-15)
        prod = prod @ K
    assert torch.allclose(prod, gibbs_transition_matrix(bm), atol=1e-14)
    # the sweep distribution after n steps is p0 T^n
    p0 = torch.softmax(
        torch.randn(2**d, generator=torch.Generator().manual_seed(1), dtype=F64), 0
    )
    assert torch.allclose(
        evolve_distribution(bm, p0, 3),
        p0 @ torch.linalg.matrix_power(gibbs_transition_matrix(bm), 3),
    )


def _codes(x):
    return (x.long() << torch.arange(x.shape[1])).sum(1)  # bit j = unit j


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sequential_gibbs_chi2_against_exact(temperature):
    bm = random_bm(3, 1, seed=10, scale=1.0)
    n, n_sweeps = 20_000, 2
    g = torch.Generator().manual_seed(11)
    x0 = torch.bernoulli(torch.full((n, 4), 0.5, dtype=F64), generator=g)
    x, frames = sequential_gibbs(
        bm, x0, n_sweeps, temperature=temperature, generator=g, record_every=1
    )
    assert (
        len(frames) == n_sweeps + 1
        and torch.equal(frames[0], x0)
        and torch.equal(frames[-1], x)
    )
    # exact law of the chains after n_sweeps from the uniform start: p0 T^n
    # (no mixing assumed)
    p_exact = evolve_distribution(
        bm, torch.full((16,), 1 / 16, dtype=F64), n_sweeps, temperature=temperature
    )
    counts = torch.bincount(_codes(x), minlength=16).to(F64)
    expected = n * p_exact
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # failure rate 1e-4 under the null (independent chains, exact multinomial law)
    assert chi2 < stats.chi2.ppf(1 - 1e-4, 15), chi2
    # and p0 T^n approaches P_T
    _, p = bm.state_distribution(temperature=temperature)
    assert (
        float(
            (evolve_distribution(bm, p_exact, 60, temperature=temperature) - p)
            .abs()
            .sum()
        )
        < 1e-6
    )


def test_sampler_does_not_modify_input_and_is_seeded():
    bm = random_bm(3, 1, seed=12)
    x0 = torch.zeros(5, 4, dtype=F64)
    a = sequential_gibbs(bm, x0, 3, generator=torch.Generator().manual_seed(0))
    b = sequential_gibbs(bm, x0, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(x0, torch.zeros(5, 4, dtype=F64))
    assert torch.equal(sequential_gibbs(bm, x0, 0), x0)


def test_no_hidden_units_is_the_fully_visible_case():
    bm = random_bm(5, 0, seed=13)
    v = all_states(5, dtype=F64)
    assert torch.allclose(bm.free_energy(v), bm.energy(v))
    assert torch.allclose(
        bm.log_prob(v), -bm.energy(v) - torch.logsumexp(-bm.energy(v), 0)
    )
    assert bm.W.shape == (5, 0) and bm.S.shape == (0, 0) and torch.equal(bm.R, bm.U)
    data = v[torch.tensor([1, 5, 5, 30, 17])]
    dU, db = exact_gradient(bm, data)
    p = torch.softmax(-bm.energy(v), 0)
    ref = data.T @ data / 5 - (v * p[:, None]).T @ v
    ref.fill_diagonal_(0)
    assert torch.allclose(dU, ref, atol=1e-14) and torch.allclose(
        db, data.mean(0) - p @ v, atol=1e-14
    )
    # disconnected hidden units (zero weights and biases) change nothing about P(v)
    bm2 = BoltzmannMachine(5, 2, dtype=F64)
    U2 = torch.zeros(7, 7, dtype=F64)
    U2[:5, :5] = bm.U
    bm2.set_weights(U2, torch.cat([bm.b, torch.zeros(2, dtype=F64)]))
    assert torch.allclose(bm2.log_prob(v), bm.log_prob(v), atol=1e-12)


def test_helpful_errors():
    bm = random_bm(3, 1)
    with pytest.raises(ValueError, match="binary"):
        bm.energy(torch.tensor([[0.0, 0.5, 1.0, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        bm.energy(torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="unsqueeze"):
        bm.energy(torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match="binary"):
        exact_gradient(bm, torch.full((2, 3), 0.5, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        bm.log_prob(torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="enumerat"):
        BoltzmannMachine(18, 3, dtype=F64).log_partition()
    with pytest.raises(ValueError, match="enumerat"):
        BoltzmannMachine(2, 21, dtype=F64).free_energy(torch.zeros(1, 2, dtype=F64))
    with pytest.raises(ValueError, match="too large"):
        gibbs_transition_matrix(BoltzmannMachine(13, dtype=F64))
    with pytest.raises(ValueError, match="symmetric"):
        bm.set_weights(torch.triu(torch.ones(4, 4, dtype=F64), 1))
    with pytest.raises(ValueError, match="diagonal"):
        bm.set_weights(torch.eye(4, dtype=F64))
    with pytest.raises(ValueError, match="temperature"):
        sequential_gibbs(bm, torch.zeros(1, 4, dtype=F64), 1, temperature=0.0)
    with pytest.raises(ValueError, match="n_visible"):
        BoltzmannMachine(0, 2)
    with pytest.raises(ValueError, match="order"):
        gibbs_transition_matrix(bm, order=[0, 4])
    with pytest.raises(ValueError, match="lr"):
        fit_bm_exact(bm, torch.zeros(2, 3, dtype=F64), lr=0.0, n_steps=1)
