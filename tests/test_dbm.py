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

from dgmlib.energy import DBM, gibbs_sweep
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
