"""The deep Boltzmann machine against exact enumeration of tiny models (§20.4).

Every reference here is brute force over all joint states: the energy written out
term by term, conditionals as ratios of joint probabilities, the posterior P(h | v)
by summing the joint, log Z by summing exp(-E) over every (v, h1, h2, ...).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import random_dbm

from dgmlib.energy import (
    DBM,
    DBMStep,
    fit_dbm,
    gibbs_sweep,
    pretrain_dbm,
    variational_sml_step,
)
from dgmlib.exact import all_states, dbm_log_partition, log_partition

pytestmark = pytest.mark.usefixtures("one_thread")


def joint_states(sizes):
    """Every joint state: a list of (S, n_l) tensors, S = 2**sum(sizes)."""
    x = all_states(sum(sizes), dtype=torch.float64)
    return list(torch.split(x, list(sizes), dim=1))


def log_z_brute(dbm) -> torch.Tensor:
    return torch.logsumexp(-dbm.energy(joint_states(dbm.sizes)), 0)


def energy_by_hand(dbm, x):
    """eq. 20.25 with biases and offsets, one unit pair at a time."""
    out = torch.zeros(len(x[0]), dtype=torch.float64)
    for n in range(len(x[0])):
        e = 0.0
        for l, xl in enumerate(x):
            for i in range(xl.shape[1]):
                e -= (xl[n, i] - dbm.mu[l][i]) * dbm.b[l][i]
        for l in range(len(x) - 1):
            for i, j in itertools.product(
                range(x[l].shape[1]), range(x[l + 1].shape[1])
            ):
                e -= (
                    (x[l][n, i] - dbm.mu[l][i])
                    * dbm.W[l][i, j]
                    * (x[l + 1][n, j] - dbm.mu[l + 1][j])
                )
        out[n] = e
    return out


@pytest.mark.parametrize("centered", [False, True])
def test_energy_matches_the_sum_written_out(centered):
    dbm = random_dbm((3, 2, 2, 2), seed=1, centered=centered)
    x = joint_states(dbm.sizes)
    idx = torch.arange(0, len(x[0]), 37)
    xs = [t[idx] for t in x]
    torch.testing.assert_close(dbm.energy(xs), energy_by_hand(dbm, xs))


def test_parameters_are_readable_and_assignable_in_place():
    dbm = DBM([4, 3, 2], dtype=torch.float64)
    assert [tuple(w.shape) for w in dbm.W] == [(4, 3), (3, 2)]
    assert [len(b) for b in dbm.b] == [4, 3, 2]
    dbm.W[1].copy_(torch.ones(3, 2))
    dbm.b[0].fill_(2.0)
    assert float(dbm.W1.sum()) == 6.0 and float(dbm.b0.sum()) == 8.0
    dbm.W[0] = torch.full((4, 3), 0.5)
    assert dbm.W[0].dtype == torch.float64 and float(dbm.W[0].sum()) == 6.0
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        dbm.W[0] = torch.zeros(3, 4)
    assert set(dict(dbm.state_dict())) >= {"W0", "W1", "b0", "b1", "b2"}


@pytest.mark.parametrize("centered", [False, True])
def test_conditionals_match_enumeration(centered):
    """P(x_l = 1 | all other layers) = P(x_l = 1 | neighbours) (eq. 20.26-20.28),
    from ratios of joint probabilities over every state.
    """
    dbm = random_dbm((3, 2, 3), seed=2, centered=centered)
    x = joint_states(dbm.sizes)
    log_p = -dbm.energy(x)  # (S,) unnormalised
    for l in range(dbm.n_layers):
        p_model = dbm.conditional(x, l)  # (S, n_l)
        for i in range(dbm.sizes[l]):
            flipped = [t.clone() for t in x]
            flipped[l][:, i] = 1 - flipped[l][:, i]
            log_p_flip = -dbm.energy(flipped)
            # P(x_li = 1 | rest) = p(x with x_li=1) / (p(x) + p(flipped))
            on = torch.where(x[l][:, i] == 1, log_p, log_p_flip)
            p_exact = torch.exp(on - torch.logaddexp(log_p, log_p_flip))
            torch.testing.assert_close(p_model[:, i], p_exact)


def test_conditionals_of_the_textbook_two_layer_case():
    """With zero biases the conditionals are eq. 20.26-20.28 verbatim."""
    dbm = random_dbm((3, 2, 3), seed=3)
    for bl in dbm.b:
        bl.zero_()
    v, h1, h2 = joint_states(dbm.sizes)
    W1, W2 = dbm.W
    torch.testing.assert_close(
        dbm.conditional([v, h1, h2], 0), torch.sigmoid(h1 @ W1.T)
    )
    torch.testing.assert_close(
        dbm.conditional([v, h1, h2], 1), torch.sigmoid(v @ W1 + h2 @ W2.T)
    )
    torch.testing.assert_close(dbm.conditional([v, h1, h2], 2), torch.sigmoid(h1 @ W2))


def test_gibbs_sweep_leaves_the_joint_invariant():
    """The exact transition matrix of one two-block sweep, built from the
    conditionals, has the enumerated joint as its stationary distribution.
    """
    dbm = random_dbm((2, 2, 2), seed=4)
    x = joint_states(dbm.sizes)
    S = len(x[0])
    p = torch.softmax(-dbm.energy(x), 0)

    def block_kernel(side):  # T[s, s'] for resampling every layer of one parity
        T = torch.ones(S, S, dtype=torch.float64)
        for l in range(dbm.n_layers):
            if l % 2 == side:
                q = dbm.conditional(x, l)  # (S, n_l) from the current state s
                lik = (
                    q[:, None, :] ** x[l][None]
                    * (1 - q[:, None, :]) ** (1 - x[l][None])
                ).prod(-1)
                T = T * lik
            else:
                T = T * (x[l][:, None, :] == x[l][None]).all(-1)
        return T

    T = block_kernel(1) @ block_kernel(0)
    torch.testing.assert_close(T.sum(1), torch.ones(S, dtype=torch.float64))
    torch.testing.assert_close(p @ T, p)
    # and the sampler draws from those conditionals
    g = torch.Generator().manual_seed(0)
    out = gibbs_sweep(dbm, [t[:1].expand(4000, -1) for t in x], generator=g)
    torch.testing.assert_close(
        out[1].mean(0), dbm.conditional([t[:1] for t in x], 1)[0], atol=0.04, rtol=0
    )


def exact_posterior(dbm, v):
    """P(h | v) for one v (1, n_0): hidden states (S, ...), their probabilities."""
    h = joint_states(dbm.sizes[1:])
    x = [v.expand(len(h[0]), -1), *h]
    return h, torch.softmax(-dbm.energy(x), 0)


def test_mean_field_reaches_the_fixed_point_of_20_33_20_34():
    dbm = random_dbm((4, 3, 3), seed=5)
    v = joint_states([4])[0]
    mu1, mu2 = dbm.mean_field(v, n_iter=200)
    W1, W2 = dbm.W
    b = dbm.b
    torch.testing.assert_close(mu1, torch.sigmoid(v @ W1 + mu2 @ W2.T + b[1]))
    torch.testing.assert_close(mu2, torch.sigmoid(mu1 @ W2 + b[2]))


@pytest.mark.parametrize("centered", [False, True])
def test_bound_rises_and_stays_below_exact_log_p(centered):
    """L(Q) (eq. 20.35) never decreases over iterations, stays below log P(v), and
    at the fixed point the gap is KL(Q || P(h | v)) computed by enumeration.
    """
    dbm = random_dbm((4, 3, 2, 3), seed=6, scale=1.5, centered=centered)
    log_z = log_z_brute(dbm)
    v = joint_states([4])[0]  # every visible state
    x = joint_states(dbm.sizes)
    log_p_joint = -dbm.energy(x) - log_z
    codes = (x[0] * 2 ** torch.arange(4, dtype=torch.float64)).sum(1).long()
    log_p_v = torch.stack(
        [torch.logsumexp(log_p_joint[codes == c], 0) for c in range(16)]
    )
    bounds, mu = [], dbm.mean_field(v, n_iter=0)
    for _ in range(30):
        bounds.append(dbm.variational_bound(v, mu, log_z=log_z))
        mu = dbm.mean_field(v, n_iter=1, init=mu)
    bounds = torch.stack(bounds)  # (T, 16)
    assert bool((bounds.diff(dim=0) >= -1e-10).all())
    assert bool((bounds <= log_p_v + 1e-10).all())
    # gap = KL(Q || P(h|v)) for the first visible state
    h, post = exact_posterior(dbm, v[:1])
    log_q = sum(
        (h[l] * torch.log(m[:1]) + (1 - h[l]) * torch.log1p(-m[:1])).sum(-1)
        for l, m in enumerate(mu)
    )
    kl = (torch.exp(log_q) * (log_q - torch.log(post))).sum()
    torch.testing.assert_close(log_p_v[0] - bounds[-1, 0], kl)


def test_top_down_feedback_changes_the_posterior():
    """With W2 = 0 mean field is the bottom-up RBM posterior; with W2 it is not, and
    it fits the exact marginals P(h1 | v) better than the bottom-up pass does.
    """
    dbm = random_dbm((4, 3, 3), seed=7, scale=2.0)
    v = joint_states([4])[0][5:6]
    h, post = exact_posterior(dbm, v)
    exact_h1 = (post[:, None] * h[0]).sum(0)
    mu1, _ = dbm.mean_field(v, n_iter=100)
    bottom_up = torch.sigmoid(v @ dbm.W[0] + dbm.b[1])[0]
    assert float((mu1[0] - exact_h1).abs().max()) < float(
        (bottom_up - exact_h1).abs().max()
    )


@pytest.mark.parametrize("sizes", [(3, 2, 3), (2, 3, 2, 2)])
def test_recentering_keeps_the_distribution(sizes):
    """Centered and uncentered parametrisations represent the same distribution
    (eq. 20.37): moving the offsets changes every energy by the same constant C,
    the one recenter returns, and so no probability.
    """
    dbm = random_dbm(sizes, seed=8, centered=True)
    x = joint_states(dbm.sizes)
    log_p = torch.log_softmax(-dbm.energy(x), 0)
    E_old, log_z_old = dbm.energy(x), log_z_brute(dbm)
    g = torch.Generator().manual_seed(1)
    C = dbm.recenter([torch.rand(n, generator=g, dtype=torch.float64) for n in sizes])
    torch.testing.assert_close(E_old, dbm.energy(x) + C)
    torch.testing.assert_close(torch.log_softmax(-dbm.energy(x), 0), log_p)
    torch.testing.assert_close(log_z_brute(dbm), log_z_old + C)
    C0 = dbm.recenter([torch.zeros(n, dtype=torch.float64) for n in sizes])
    assert not dbm.centered
    torch.testing.assert_close(torch.log_softmax(-dbm.energy(x), 0), log_p)
    torch.testing.assert_close(E_old, dbm.energy(x) + C + C0)


@pytest.mark.parametrize("sum_out", ["odd", "even"])
def test_log_p_star_sums_one_side_out(sum_out):
    dbm = random_dbm((3, 2, 3, 2), seed=9, centered=True)
    x = joint_states(dbm.sizes)
    beta = 0.7
    kept = 0 if sum_out == "odd" else 1
    lp = -beta * dbm.energy(x)
    # group the joint by the kept side's state and sum the rest out
    key = torch.cat([x[l] for l in range(kept, 4, 2)], 1)
    codes = (key * 2 ** torch.arange(key.shape[1], dtype=torch.float64)).sum(1).long()
    got = dbm.log_p_star(x, sum_out=sum_out, beta=beta)
    for c in codes.unique():
        sel = codes == c
        torch.testing.assert_close(got[sel][0], torch.logsumexp(lp[sel], 0))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="at least 2 layers"):
        DBM([784])
    with pytest.raises(ValueError, match="positive ints"):
        DBM([784, 0, 10])
    dbm = DBM([4, 3, 2])
    with pytest.raises(ValueError, match="binary"):
        dbm.energy([torch.full((2, 4), 0.5), torch.zeros(2, 3), torch.zeros(2, 2)])
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        dbm.energy([torch.zeros(2, 4), torch.zeros(2, 5), torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="list of 3 layer states"):
        dbm.energy([torch.zeros(2, 4), torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        dbm.mean_field(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="sum_out"):
        dbm.log_p_star([None] * 3, sum_out="visible")


@pytest.mark.parametrize("sizes", [(3, 2, 3), (4, 5, 2), (2, 3, 2, 4), (5, 2, 2, 2, 2)])
@pytest.mark.parametrize("centered", [False, True])
def test_exact_log_z_two_ways(sizes, centered):
    """log_partition enumerates the smaller side and sums the other out; brute force
    sums exp(-E) over every joint state. Also in float32 (computed in float64).
    """
    dbm = random_dbm(sizes, seed=10, centered=centered)
    torch.testing.assert_close(log_partition(dbm), log_z_brute(dbm))
    torch.testing.assert_close(dbm_log_partition(dbm), log_z_brute(dbm))
    small = random_dbm(sizes, seed=10, centered=centered).float()
    torch.testing.assert_close(
        log_partition(small), log_z_brute(dbm), rtol=0, atol=1e-4
    )
    assert small.W[0].dtype == torch.float32  # the model is not converted


def test_exact_log_z_refuses_large_dbms():
    with pytest.raises(ValueError, match="smaller"):
        log_partition(DBM([784, 30, 30]))


# --- learning ---------------------------------------------------------------------
def exact_log_likelihood(dbm, data):
    """Mean exact log P(v) over ``data``: the odd layers summed out, the even hidden
    layers enumerated, log Z by enumeration.
    """
    sizes = dbm.sizes
    even_hidden = list(range(2, len(sizes), 2))
    h = joint_states([sizes[l] for l in even_hidden]) if even_hidden else []
    S = len(h[0]) if h else 1
    B = len(data)
    x = [None] * len(sizes)
    x[0] = data.repeat_interleave(S, 0)
    for l, hl in zip(even_hidden, h):
        x[l] = hl.repeat(B, 1)
    log_p_star = dbm.log_p_star(x, sum_out="odd").reshape(B, S)
    log_z = log_partition(dbm)
    return float((torch.logsumexp(log_p_star, 1) - log_z).mean().detach())


def bars(n=3):
    from dgmlib.data import bars_and_stripes

    return bars_and_stripes(n).to(torch.float64)


def test_fast_step_equals_algorithm_20_1():
    """DBMStep with the recipe's extras off (no momentum, no decay) makes the same
    update as variational_sml_step, Algorithm 20.1 as written, on the same seed.
    """
    data = bars().repeat(3, 1)[:20]
    a = random_dbm((9, 4, 3), seed=11, scale=0.3)
    b = random_dbm((9, 4, 3), seed=11, scale=0.3)
    chains = [
        torch.bernoulli(
            torch.full((7, n), 0.5, dtype=torch.float64),
            generator=torch.Generator().manual_seed(1),
        )
        for n in a.sizes
    ]
    step = DBMStep(
        b,
        [t.clone() for t in chains],
        k=2,
        n_mean_field=5,
        generator=torch.Generator().manual_seed(2),
    )
    step.lr = 0.1
    g = torch.Generator().manual_seed(2)
    x = [t.clone() for t in chains]
    for _ in range(3):
        x = variational_sml_step(a, data, x, lr=0.1, k=2, n_mean_field=5, generator=g)
        step(data)
    for s, t in zip(x, step.chains):
        torch.testing.assert_close(s, t)
    for p, q in zip([*a.W, *a.b], [*b.W, *b.b]):
        torch.testing.assert_close(p, q)
    # and the fast mean field is the model's
    for p, q in zip(step.mean_field(data)[1:], b.mean_field(data, n_iter=5)):
        torch.testing.assert_close(p, q)


def test_algorithm_20_1_ascends_the_exact_gradient_on_average():
    """With many chains drawn exactly from the model and mean field exact for a DBM
    with one hidden layer (an RBM: the posterior is factorial), the step's direction
    is the exact gradient of the log-likelihood, checked against autograd of the
    enumerated log-likelihood.
    """
    data = bars()
    dbm = random_dbm((9, 5), seed=12, scale=0.5)
    W = dbm.W[0].clone().requires_grad_()
    b0, b1 = (t.clone().requires_grad_() for t in dbm.b)
    ref = DBM([9, 5], dtype=torch.float64)
    ref.W0, ref.b0, ref.b1 = W, b0, b1
    loss = exact_log_likelihood(ref, data)  # float: recompute with autograd below
    x = joint_states([9, 5])
    log_z = torch.logsumexp(-ref._energy(x), 0)
    ll = (-ref.free_energy([data, None]) - log_z).mean()
    ll.backward()
    assert abs(float(ll.detach()) - loss) < 1e-9
    # the step with exact model samples: 200,000 chains from the enumerated joint
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(-dbm.energy(x), 0)
    idx = torch.multinomial(p, 200_000, replacement=True, generator=g)
    before = [t.clone() for t in (*dbm.W, *dbm.b)]
    # k sweeps leave exact samples exact; lr = 1 makes the change the direction
    variational_sml_step(
        dbm, data, [t[idx] for t in x], lr=1.0, k=1, n_mean_field=1, generator=g
    )
    for t0, t1, grad in zip(before, (*dbm.W, *dbm.b), (W.grad, b0.grad, b1.grad)):
        torch.testing.assert_close(t1 - t0, grad, atol=0.01, rtol=0)


@pytest.mark.parametrize("centered", [False, True])
def test_fit_dbm_raises_the_exact_likelihood(centered):
    """Variational SML with the recipe, centered or not, from a random start on the
    14 bars-and-stripes patterns: uniform is 9 log 2 = 6.24 nats, the optimum
    log 14 = 2.64. Measured: -3.94 (uncentered), -3.27 (centered).
    """
    data = bars().repeat(10, 1)
    g = torch.Generator().manual_seed(4)
    dbm = DBM([9, 6, 4], init_std=0.5, generator=g, dtype=torch.float64)
    before = exact_log_likelihood(dbm, data)
    hist = fit_dbm(
        dbm,
        data,
        epochs=100,
        batch_size=20,
        lr=0.05,
        momentum=0.9,
        centered=centered,
        generator=torch.Generator().manual_seed(5),
        quiet=True,
    )
    after = exact_log_likelihood(dbm, data)
    assert after > before + 1.5 and after > -4.2, (before, after)
    assert dbm.centered == centered
    assert len(hist.chains) == 3 and hist.chains[0].shape == (20, 9)
    assert hist.updates == 100 * 7


def test_chains_persist_across_calls():
    data = bars().repeat(4, 1)
    dbm = DBM(
        [9, 4, 3], generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    h1 = fit_dbm(
        dbm,
        data,
        epochs=1,
        generator=torch.Generator().manual_seed(7),
        quiet=True,
        n_chains=5,
    )
    passed = [t.clone() for t in h1.chains]
    chains_seen = []
    import dgmlib.energy.dbm as module

    class Spy(module.DBMStep):
        def __init__(self, dbm, chains, **kw):
            chains_seen.append([t.clone() for t in chains])
            super().__init__(dbm, chains, **kw)

    module_step, module.DBMStep = module.DBMStep, Spy
    try:
        fit_dbm(dbm, data, epochs=1, chains=passed, quiet=True)
    finally:
        module.DBMStep = module_step
    for a, b in zip(chains_seen[0], passed):
        torch.testing.assert_close(a, b)


def test_pretraining_doubles_the_ends_and_halves_the_middle():
    """The stack's weights go into the DBM as trained at both ends and halved in the
    middle; and for a 2-layer DBM, pretraining gives a better exact likelihood than
    the same number of updates of an RBM stack trained without the doubling.
    """
    data = bars().repeat(10, 1)
    dbm = DBM(
        [9, 5, 4, 3], generator=torch.Generator().manual_seed(8), dtype=torch.float64
    )
    seen = []
    import dgmlib.energy.dbm as module

    real = module._fit_rbm_with_copies

    def spy(W, b, c, x, **kw):
        out = real(W, b, c, x, **kw)
        seen.append((W.clone(), kw["copies"]))
        return out

    module._fit_rbm_with_copies = spy
    try:
        pretrain_dbm(
            dbm,
            data,
            epochs=[5, 5, 5],
            batch_size=20,
            generator=torch.Generator().manual_seed(9),
            quiet=True,
        )
    finally:
        module._fit_rbm_with_copies = real
    assert [c for _, c in seen] == [(2, 1), (1, 1), (1, 2)]
    torch.testing.assert_close(dbm.W[0], seen[0][0])
    torch.testing.assert_close(dbm.W[1], seen[1][0] / 2)
    torch.testing.assert_close(dbm.W[2], seen[2][0])
    assert not dbm.centered


def test_fit_dbm_rejects_bad_input():
    dbm = DBM([4, 3, 2])
    with pytest.raises(ValueError, match="binary"):
        fit_dbm(dbm, torch.full((5, 4), 0.5))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        fit_dbm(dbm, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="negative"):
        fit_dbm(dbm, torch.zeros(5, 4), negative="cd")
    with pytest.raises(ValueError, match="k"):
        fit_dbm(dbm, torch.zeros(5, 4), k=0)
    with pytest.raises(ValueError, match="list of 3 layer states"):
        fit_dbm(dbm, torch.zeros(5, 4), chains=[torch.zeros(5, 4)])
    with pytest.raises(ValueError, match="epochs needs one entry"):
        pretrain_dbm(dbm, torch.zeros(5, 4), epochs=[1])
    dbm.recenter([torch.full((n,), 0.5) for n in dbm.sizes])
    with pytest.raises(ValueError, match="centered=True"):
        variational_sml_step(
            dbm, torch.zeros(5, 4), [torch.zeros(5, n) for n in dbm.sizes], lr=0.1
        )


def test_bfloat16_products_stay_close_to_float32():
    """matmul_dtype=torch.bfloat16: the mean field and one update agree with the
    float32 step to bfloat16's rounding (the draws are the same but for units whose
    u falls within the rounding of p).
    """
    data = bars().repeat(3, 1)[:20].float()
    a, b = (
        DBM([9, 6, 4], init_std=0.5, generator=torch.Generator().manual_seed(13))
        for _ in range(2)
    )
    chains = [
        torch.bernoulli(
            torch.full((8, n), 0.5), generator=torch.Generator().manual_seed(1)
        )
        for n in a.sizes
    ]
    steps = [
        DBMStep(
            m,
            [t.clone() for t in chains],
            generator=torch.Generator().manual_seed(2),
            matmul_dtype=dt,
        )
        for m, dt in ((a, None), (b, torch.bfloat16))
    ]
    for s in steps:
        s.lr = 0.05
    q32, q16 = (s.mean_field(data) for s in steps)
    for p, q in zip(q32[1:], q16[1:]):
        torch.testing.assert_close(p, q, atol=0.02, rtol=0)
    for s in steps:
        s(data)
    for p, q in zip([*a.W, *a.b], [*b.W, *b.b]):
        torch.testing.assert_close(p, q, atol=0.05 * 2 / 8, rtol=0)
    with pytest.raises(ValueError, match="floating"):
        fit_dbm(a, data, matmul_dtype=torch.int8)


def test_bfloat16_pretraining_stays_close_to_float32():
    """pretrain_dbm(matmul_dtype=torch.bfloat16): after one epoch on the same seed
    the stack's weights agree with float32 pretraining's to bfloat16's rounding of
    the products (a few draws differ, where u falls within that rounding of p).
    """
    data = bars().repeat(4, 1).float()
    dbms = [
        DBM([9, 6, 4], init_std=0.5, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    for dbm, dt in zip(dbms, (None, torch.bfloat16)):
        pretrain_dbm(
            dbm,
            data,
            epochs=1,
            batch_size=8,
            generator=torch.Generator().manual_seed(4),
            quiet=True,
            matmul_dtype=dt,
        )
    a, b = dbms
    for p, q in zip([*a.W, *a.b], [*b.W, *b.b]):
        torch.testing.assert_close(p, q, atol=0.02, rtol=0)
    assert not torch.equal(a.W[0], b.W[0])  # the products did run in bfloat16
    with pytest.raises(ValueError, match="floating"):
        pretrain_dbm(a, data, matmul_dtype=torch.int8)
