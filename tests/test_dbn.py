"""Deep belief networks: sampler, greedy training, unrolled networks, exact enumeration
(float64).

References are independent of the code under test: the RBM's own conditionals and Gibbs
chain, brute-force enumeration of the joint over every layer, and autograd-free
hand-written forward passes. Sampling checks are chi-square tests at a stated failure
rate.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from dgmlib.data import bars_and_stripes
from dgmlib.energy import (
    DBN,
    BernoulliRBM,
    dbn_log_prob_exact,
    dbn_lower_bound_exact,
    dbn_posterior_exact,
    dbn_prior_exact,
    dbn_sample,
    dbn_to_mlp,
    finetune_autoencoder,
    finetune_classifier,
    fit_dbn,
    fit_rbm,
    hamming_distance,
    hamming_neighbours,
    mlp,
    unroll_autoencoder,
)
from dgmlib.exact import all_states, log_partition
from dgmlib.mcmc import gibbs_chain

DT = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_dbn(sizes, seed=0, scale=1.0) -> DBN:
    g = gen(seed)
    dbn = DBN(sizes, init_std=scale, generator=g, dtype=DT)
    for rbm in dbn.rbms:
        rbm.b = torch.randn(rbm.n_visible, generator=g, dtype=DT) * scale
        rbm.c = torch.randn(rbm.n_hidden, generator=g, dtype=DT) * scale
    return dbn


def brute_force_p_v(dbn: DBN, layer: int = 0) -> torch.Tensor:
    """P(h^(layer)) (default: P(v)) over all its states by summing the full joint over
    every layer.
    """
    sizes = dbn.layer_sizes
    L = len(sizes) - 1
    s = all_states(sum(sizes), dtype=DT)  # every joint state
    cuts = torch.tensor([0] + sizes).cumsum(0).tolist()
    x = [s[:, cuts[i] : cuts[i + 1]] for i in range(L + 1)]  # x[l] = layer l
    top = dbn.rbms[-1]
    log_p = -top.energy(x[L - 1], x[L]) - log_partition(top)  # P(h^(L-1), h^(L))
    for k in range(L - 1):  # directed layers below
        rbm = dbn.rbms[k]
        p = torch.sigmoid(x[k + 1] @ rbm.W.T + rbm.b)  # P(h^(k)=1 | h^(k+1))
        log_p = log_p + torch.where(x[k] == 1, p, 1 - p).log().sum(1)
    codes = (x[layer] * 2 ** torch.arange(sizes[layer], dtype=DT)).sum(1).long()
    return torch.zeros(2 ** sizes[layer], dtype=DT).index_add_(0, codes, log_p.exp())


# ----------------------------------------------------------------------------- sampler
def test_one_layer_dbn_sampler_is_rbm_gibbs():
    dbn = random_dbn([5, 3], seed=1)
    rbm = dbn.rbms[0]
    out = dbn_sample(dbn, 50, gibbs_steps=7, generator=gen(3))
    g = gen(3)
    v0 = torch.bernoulli(torch.full((50, 5), 0.5, dtype=DT), generator=g)
    ref = gibbs_chain(rbm, v0, 7, generator=g)
    assert torch.equal(out.v, ref)
    g = gen(3)
    v0 = torch.bernoulli(torch.full((50, 5), 0.5, dtype=DT), generator=g)
    mf = gibbs_chain(
        rbm, v0, 7, generator=g, mean_field_last=True
    )  # P(v | h) of the last step
    assert torch.allclose(out.v_mean, mf)
    assert len(out.layers) == 1 and torch.equal(out.layers[0], out.v)


def test_top_down_pass_uses_each_rbms_p_v_given_h():
    dbn = random_dbn([6, 4, 3, 2], seed=2)
    out = dbn_sample(dbn, 40, gibbs_steps=5, generator=gen(4))
    g = gen(4)
    h = torch.bernoulli(torch.full((40, 3), 0.5, dtype=DT), generator=g)
    h = gibbs_chain(dbn.rbms[2], h, 5, generator=g)  # top RBM: h^(2) <-> h^(3)
    expected = [h]
    for k in (1, 0):  # directed layers
        p = dbn.rbms[k].p_v_given_h(h)
        h = torch.bernoulli(p, generator=g)
        expected.append(h)
    assert all(torch.equal(a, b) for a, b in zip(out.layers, expected))
    assert torch.equal(out.v, expected[-1])
    assert torch.allclose(out.v_mean, dbn.rbms[0].p_v_given_h(out.layers[1]))
    hh = torch.bernoulli(torch.full((10, 4), 0.5, dtype=DT), generator=g)
    assert torch.allclose(dbn.p_down(0, hh), dbn.rbms[0].p_v_given_h(hh))


def test_recording_frames_does_not_change_samples():
    dbn = random_dbn([6, 4, 3], seed=5)
    a = dbn_sample(dbn, 8, gibbs_steps=9, generator=gen(1))
    b = dbn_sample(dbn, 8, gibbs_steps=9, generator=gen(1), record_every=3)
    assert torch.equal(a.v, b.v) and a.frames is None and len(b.frames) == 4
    assert b.frames[-1].shape == (8, 6) and torch.allclose(
        b.frames[-1], dbn.p_down(0, b.layers[0])
    )


def test_ancestral_samples_match_the_exact_dbn_distribution():
    # 4-3-2 DBN; 20,000 independent chains, 40 top-level sweeps each, then one pass
    # down. Chi-square over the 16 visible states; threshold = the 1 - 1e-4 quantile of
    # chi2(15), so a correct sampler fails 1 time in 10,000.
    dbn = random_dbn([4, 3, 2], seed=6, scale=1.0)
    vs = all_states(4, dtype=DT)
    p = dbn_log_prob_exact(dbn, vs).exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(p, brute_force_p_v(dbn), atol=1e-12)
    n = 20_000
    v = dbn_sample(dbn, n, gibbs_steps=40, generator=gen(7)).v
    codes = (v * torch.tensor([1.0, 2, 4, 8], dtype=DT)).sum(1).long()
    counts = torch.bincount(codes, minlength=16).double()
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    assert chi2 < stats.chi2.ppf(1 - 1e-4, 15), chi2


# ----------------------------------------------------------------------------- exact
# enumeration
def test_exact_log_prob_against_brute_force_for_deeper_nets_and_rbms():
    dbn = random_dbn([4, 3, 3, 2], seed=8)
    p = dbn_log_prob_exact(dbn, all_states(4, dtype=DT)).exp()
    assert torch.allclose(p, brute_force_p_v(dbn), atol=1e-12)
    h1, log_prior = dbn_prior_exact(dbn)  # P(h^(1)), states in all_states order
    assert torch.equal(h1, all_states(3, dtype=DT))
    assert torch.allclose(log_prior.exp(), brute_force_p_v(dbn, layer=1), atol=1e-12)
    one = random_dbn([4, 3], seed=9)  # a 1-layer DBN is its RBM
    log_p = dbn_log_prob_exact(one, all_states(4, dtype=DT))
    assert torch.allclose(log_p.exp(), brute_force_p_v(one), atol=1e-12)


def test_posterior_is_bayes_rule_and_not_factorial():
    dbn = random_dbn([4, 3, 2], seed=10, scale=2.0)
    v = all_states(4, dtype=DT)
    h1, post = dbn_posterior_exact(dbn, v)
    assert torch.allclose(post.sum(1), torch.ones(16, dtype=DT))
    # Bayes by hand: P(h1 | v) ∝ P(v | h1) P(h1), P(h1) = top RBM marginal
    top = dbn.rbms[1]
    prior = torch.softmax(-top.free_energy(h1), 0)
    pv = torch.sigmoid(h1 @ dbn.rbms[0].W.T + dbn.rbms[0].b)  # (8, 4)
    lik = torch.where(v[:, None, :] == 1, pv[None], 1 - pv[None]).prod(-1)  # (16, 8)
    assert torch.allclose(
        post, lik * prior / (lik * prior).sum(1, keepdim=True), atol=1e-12
    )
    # not a product of its marginals (explaining away): some v has KL(post || prod marg)
    # > 0.01
    marg = post @ h1  # (16, 3)
    prod = torch.where(h1[None] == 1, marg[:, None], 1 - marg[:, None]).prod(-1)
    kl = (post * (post.log() - prod.log())).sum(1)
    assert float(kl.max()) > 1e-2


def test_lower_bound_is_below_log_prob_and_tight_for_a_transposed_top():
    dbn = random_dbn([5, 3, 4], seed=11)
    v = all_states(5, dtype=DT)
    gap = dbn_log_prob_exact(dbn, v) - dbn_lower_bound_exact(dbn, v)
    assert float(gap.min()) > -1e-10 and float(gap.max()) > 1e-4
    bound, log_p = dbn_lower_bound_exact(dbn, v, with_log_prob=True)
    assert torch.allclose(log_p - bound, gap)
    # the gap is KL(Q || posterior), Q the factorial upward conditional of RBM 1
    h1, post = dbn_posterior_exact(dbn, v)
    q1 = dbn.rbms[0].p_h_given_v(v)
    q = torch.where(h1[None] == 1, q1[:, None], 1 - q1[:, None]).prod(-1)
    assert torch.allclose((q * (q.log() - post.log())).sum(1), gap, atol=1e-10)
    # Complementary prior (Hinton et al. 2006): a top RBM that is RBM 1 upside down
    # leaves P(v) equal to RBM 1's, the posterior factorial, and the bound tight.
    rbm = random_dbn([5, 3], seed=12).rbms[0]
    dbn = DBN([5, 3, 5], dtype=DT)
    dbn.rbms[0].W, dbn.rbms[0].b, dbn.rbms[0].c = rbm.W, rbm.b, rbm.c
    dbn.rbms[1].W, dbn.rbms[1].b, dbn.rbms[1].c = (
        rbm.W.T.clone(),
        rbm.c.clone(),
        rbm.b.clone(),
    )
    log_p_rbm = -rbm.free_energy(v) - log_partition(rbm)
    assert torch.allclose(dbn_log_prob_exact(dbn, v), log_p_rbm, atol=1e-10)
    assert torch.allclose(dbn_lower_bound_exact(dbn, v), log_p_rbm, atol=1e-10)


def test_exact_refuses_big_layers_and_one_layer_bounds():
    with pytest.raises(ValueError, match="layer 1 has 30 units"):
        dbn_log_prob_exact(DBN([4, 30, 2], dtype=DT), torch.zeros(1, 4, dtype=DT))
    with pytest.raises(ValueError, match="at least 2 hidden layers"):
        dbn_lower_bound_exact(DBN([4, 3], dtype=DT), torch.zeros(1, 4, dtype=DT))


# ----------------------------------------------------------------------------- greedy
# training
def test_greedy_training_leaves_lower_layers_unchanged():
    data = bars_and_stripes(4).to(DT).repeat(4, 1)  # (120, 16)
    dbn = DBN([16, 12, 8, 6], generator=gen(0), dtype=DT)
    fit_dbn(
        dbn,
        data,
        epochs=3,
        lr=0.05,
        batch_size=20,
        layers=[0],
        generator=gen(1),
        quiet=True,
    )
    snap = [[t.clone() for t in (r.W, r.b, r.c)] for r in dbn.rbms]
    fit_dbn(
        dbn,
        data,
        epochs=3,
        lr=0.05,
        batch_size=20,
        layers=[1],
        generator=gen(2),
        quiet=True,
    )
    same = lambda i: all(
        torch.equal(a, b)
        for a, b in zip(snap[i], (dbn.rbms[i].W, dbn.rbms[i].b, dbn.rbms[i].c))
    )
    assert same(0) and same(2) and not same(1)
    snap = [[t.clone() for t in (r.W, r.b, r.c)] for r in dbn.rbms]
    fit_dbn(
        dbn,
        data,
        epochs=2,
        lr=0.05,
        batch_size=20,
        layers=[2],
        upward="sample",
        generator=gen(3),
        quiet=True,
    )
    assert same(0) and same(1) and not same(2)


def test_first_layer_is_fit_rbm_and_upper_layers_see_mean_activations():
    data = bars_and_stripes(3).to(DT).repeat(5, 1)  # (70, 9)
    dbn = DBN([9, 6, 4], generator=gen(0), dtype=DT)
    rbm = BernoulliRBM(9, 6, generator=gen(0), dtype=DT)
    hists = fit_dbn(
        dbn, data, epochs=[4, 0], lr=0.1, batch_size=10, generator=gen(5), quiet=True
    )
    rbm.init_visible_bias_from_data(data)
    plain = dict(
        momentum=0.0, weight_decay=0.0, schedule="constant"
    )  # fit_dbn's recipe
    fit_rbm(
        rbm,
        data,
        epochs=4,
        lr=0.1,
        batch_size=10,
        generator=gen(5),
        quiet=True,
        **plain,
    )
    assert torch.allclose(dbn.rbms[0].W, rbm.W) and torch.allclose(dbn.rbms[0].b, rbm.b)
    assert len(hists) == 2 and len(hists[1]) == 0  # 0 epochs: no steps
    # before any update, RBM 2's visible bias is the log-odds of the mean activation of
    # layer 1
    p = (dbn.rbms[0].p_h_given_v(data).mean(0) + 0.01) / 1.02
    assert torch.allclose(dbn.rbms[1].b, torch.log(p / (1 - p)))
    assert torch.equal(
        dbn.rbms[1].W, DBN([9, 6, 4], generator=gen(0), dtype=DT).rbms[1].W
    )


# ----------------------------------------------------------------------------- unrolled
# networks
def test_dbn_to_mlp_forward_equals_stacked_conditionals():
    dbn = random_dbn([7, 5, 4, 3], seed=13)
    v = torch.bernoulli(torch.full((11, 7), 0.4, dtype=DT), generator=gen(1))
    net = dbn_to_mlp(dbn, 10, generator=gen(2))
    h = v
    for rbm in dbn.rbms:
        h = rbm.p_h_given_v(h)
    assert torch.allclose(net[:-1](v), h) and torch.allclose(dbn.up(v)[-1], h)
    out = net(v)
    assert out.shape == (11, 10)
    twin = mlp(
        [7, 5, 4, 3], 10, generator=gen(2), dtype=DT
    )  # same architecture, same output layer
    assert [type(m) for m in twin] == [type(m) for m in net]
    assert torch.equal(twin[-1].weight, net[-1].weight) and not torch.equal(
        twin[0].weight, net[0].weight
    )
    bound = 1 / math.sqrt(7)
    assert (
        float(twin[0].weight.detach().abs().max()) <= bound
        and float(twin[0].bias.detach().abs().max()) == 0
    )


def test_unroll_autoencoder_decoder_is_the_transpose():
    dbn = random_dbn([8, 6, 3], seed=14)
    enc, dec = unroll_autoencoder(dbn)
    e_lin = [m for m in enc if isinstance(m, torch.nn.Linear)]
    d_lin = [m for m in dec if isinstance(m, torch.nn.Linear)]
    for el, dl, rbm in zip(e_lin, reversed(d_lin), dbn.rbms):
        assert torch.equal(dl.weight, el.weight.T) and torch.equal(dl.weight, rbm.W)
        assert torch.equal(dl.bias, rbm.b) and torch.equal(el.bias, rbm.c)
    v = torch.bernoulli(torch.full((9, 8), 0.5, dtype=DT), generator=gen(1))
    recon = dbn.rbms[0].p_v_given_h(
        dbn.rbms[1].p_v_given_h(dbn.up(v)[-1])
    )  # mean-field up, then down
    assert torch.allclose(dec(enc(v)), recon)
    enc_lin, dec_lin = unroll_autoencoder(dbn, code="linear")
    assert torch.allclose(torch.sigmoid(enc_lin(v)), enc(v))  # linear code = logit
    assert torch.allclose(dec_lin(enc_lin(v)), recon)


# -----------------------------------------------------------------------------
# fine-tuning, hashing
def test_finetuning_reduces_the_losses():
    data = bars_and_stripes(3).to(DT)  # (14, 9)
    y = (data[:, 0] == data[:, 1]).long()  # some labels
    dbn = DBN([9, 8, 4], generator=gen(0), dtype=DT)
    fit_dbn(
        dbn,
        data.repeat(5, 1),
        epochs=5,
        lr=0.1,
        batch_size=10,
        generator=gen(1),
        quiet=True,
    )
    net = dbn_to_mlp(dbn, 2, generator=gen(2))
    h = finetune_classifier(
        net,
        data,
        y,
        epochs=30,
        lr=0.01,
        optimizer="adam",
        batch_size=7,
        x_test=data,
        y_test=y,
        generator=gen(3),
    )
    assert len(h["test_error"]) == 31 and h["train_loss"][-1] < h["train_loss"][0]
    enc, dec = unroll_autoencoder(dbn)
    h = finetune_autoencoder(
        enc,
        dec,
        data,
        epochs=30,
        lr=0.01,
        batch_size=7,
        x_test=data,
        code_noise=1.0,
        generator=gen(4),
    )
    assert (
        h["train_bce"][-1] < h["train_bce"][0]
        and h["test_sq_error"][-1] < h["test_sq_error"][0]
    )
    enc_lin, dec_lin = unroll_autoencoder(dbn, code="linear")
    with pytest.raises(ValueError, match="logistic code"):
        finetune_autoencoder(enc_lin, dec_lin, data, epochs=1, lr=0.01, code_noise=1.0)


def test_hamming_distance_and_neighbours():
    g = gen(0)
    a = torch.bernoulli(torch.full((6, 10), 0.5), generator=g)
    b = torch.bernoulli(torch.full((9, 10), 0.5), generator=g)
    d = hamming_distance(a, b)
    assert torch.equal(d, (a[:, None] != b[None]).sum(-1))
    dist, idx = hamming_neighbours(a, b, 4, generator=g)
    assert torch.equal(dist, torch.gather(d, 1, idx))
    assert torch.equal(dist, d.sort(1).values[:, :4])  # the 4 smallest, nearest first
    with pytest.raises(ValueError, match="k must be"):
        hamming_neighbours(a, b, 10)
    with pytest.raises(ValueError, match="codes"):
        hamming_distance(a, b[:, :5])


# ----------------------------------------------------------------------------- shapes
# and errors
def test_shapes_and_helpful_errors():
    dbn = DBN([6, 4, 3], generator=gen(0), dtype=DT)
    assert dbn.layer_sizes == [6, 4, 3] and dbn.n_layers == 2 and dbn.top is dbn.rbms[1]
    assert [t.shape for t in dbn.up(torch.zeros(5, 6, dtype=DT))] == [(5, 4), (5, 3)]
    s = dbn_sample(dbn, 5, gibbs_steps=2, generator=gen(1))
    assert s.v.shape == s.v_mean.shape == (5, 6) and [t.shape[1] for t in s.layers] == [
        4,
        6,
    ]
    for bad in ([6], [6, 0], [6, 2.5], (6, True)):
        with pytest.raises(ValueError, match="layer_sizes"):
            DBN(bad)
    with pytest.raises(ValueError, match="shape"):
        dbn.up(torch.zeros(5, 7, dtype=DT))
    with pytest.raises(ValueError, match="n_layers"):
        dbn.up(torch.zeros(5, 6, dtype=DT), n_layers=3)
    with pytest.raises(ValueError, match="layer k"):
        dbn.p_down(2, torch.zeros(1, 3, dtype=DT))
    with pytest.raises(ValueError, match="gibbs_steps"):
        dbn_sample(dbn, 5, gibbs_steps=0)
    with pytest.raises(ValueError, match="positive int"):
        dbn_sample(dbn, 0, gibbs_steps=1)
    with pytest.raises(ValueError, match="init"):
        dbn_sample(dbn, 5, gibbs_steps=1, init=torch.zeros(5, 3, dtype=DT))
    with pytest.raises(ValueError, match="rows"):
        dbn_sample(dbn, 5, gibbs_steps=1, init=torch.zeros(4, 4, dtype=DT))
    data = torch.zeros(10, 6, dtype=DT)
    with pytest.raises(ValueError, match="binary"):
        fit_dbn(dbn, data + 0.5, epochs=1)
    with pytest.raises(ValueError, match="upward"):
        fit_dbn(dbn, data, upward="mode")
    with pytest.raises(ValueError, match="method"):
        fit_dbn(dbn, data, method="pt")
    with pytest.raises(ValueError, match="layers"):
        fit_dbn(dbn, data, layers=[2])
    with pytest.raises(ValueError, match="epochs has 3 entries"):
        fit_dbn(dbn, data, epochs=[1, 1, 1])
    with pytest.raises(ValueError, match="code"):
        unroll_autoencoder(dbn, code="binary")
