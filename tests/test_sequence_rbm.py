"""Sequence RBMs (§20.7): the conditional RBM's and the RNN-RBM's frame likelihoods
against enumeration of (x, h) on tiny frames, sequence probabilities summing to one,
AIS per frame against the exact log Z, bad input rejected."""

import itertools
import math

import pytest
import torch

import dgmlib.energy.sequence as seq
from dgmlib.energy.sequence import (
    RNNRBM,
    ConditionalRBM,
    bouncing_balls_1d,
    frame_log_partition,
)
from dgmlib.exact import all_states

pytestmark = pytest.mark.usefixtures("one_thread")


def scramble(m, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, scale, generator=g)
    return m


def log_p_frame_by_enumeration(W, b, c, x):
    """log sum_h exp(-E(x, h)) - log sum_{x', h} exp(-E(x', h)) over every state."""
    D, H = W.shape
    xs, hs = all_states(D, dtype=torch.float64), all_states(H, dtype=torch.float64)

    def neg_e(x, h):  # -E(x, h) = b.x + c.h + x.W.h
        return x @ b + h @ c + ((x @ W) * h).sum(-1)

    num = torch.logsumexp(neg_e(x.expand(len(hs), -1), hs), 0)
    pairs = list(itertools.product(range(len(xs)), range(len(hs))))
    X = xs[[i for i, _ in pairs]]
    Hs = hs[[j for _, j in pairs]]
    return num - torch.logsumexp(neg_e(X, Hs), 0)


class LeakyCRBM(ConditionalRBM):
    """Broken: the window includes the frame it predicts (x^(t) in its own past)."""

    def frame_biases(self, x):
        xt, _, _ = super().frame_biases(x)
        past = torch.cat([xt] + [xt] * (self.order - 1), -1)
        b_t, c_t = self.dynamic_biases(past)
        return xt, b_t, c_t


class LeakyRNNRBM(RNNRBM):
    """Broken: the biases of frame t come from u_t, which has read x^(t)."""

    def frame_biases(self, x):
        x = x.double()
        u, b_t, c_t = self.u0.expand(x.shape[0], -1), [], []
        for t in range(x.shape[1]):
            u = self.step(u, x[:, t])
            b, c = self.dynamic_biases(u)
            b_t.append(b)
            c_t.append(c)
        return x, torch.stack(b_t, 1), torch.stack(c_t, 1)


def crbm_by_enumeration(m, x):
    """Frame log-probabilities with b_t, c_t written out: b + sum_j A_j^T x^(t-j)."""
    D, m_ = m.W.shape[0], m.order
    out = []
    for t in range(m_, x.shape[0]):
        b, c = m.b.clone(), m.c.clone()
        for j in range(1, m_ + 1):
            A_j, B_j = m.A[(j - 1) * D : j * D], m.B[(j - 1) * D : j * D]
            b, c = b + x[t - j] @ A_j, c + x[t - j] @ B_j
        out.append(log_p_frame_by_enumeration(m.W, b, c, x[t]))
    return torch.stack(out)


def rnnrbm_by_enumeration(m, x):
    """Frame log-probabilities with the recurrence written out step by step."""
    u, out = m.u0, []
    for t in range(x.shape[0]):
        b, c = m.b + u @ m.W_uv, m.c + u @ m.W_uh
        out.append(log_p_frame_by_enumeration(m.W, b, c, x[t]))
        u = torch.tanh(m.b_u + u @ m.W_uu + x[t] @ m.W_vu)
    return torch.stack(out)


def all_sequences(D, T):
    return all_states(D * T, dtype=torch.float64).reshape(-1, T, D)


@pytest.mark.parametrize("variant", ["correct", "leaky"])
def test_crbm_frame_likelihood_matches_enumeration(variant):
    cls = ConditionalRBM if variant == "correct" else LeakyCRBM
    m = scramble(cls(3, 2, order=2), seed=0)
    xs = all_sequences(3, 4)  # 4096 sequences; frames 2 and 3 are modelled
    with torch.no_grad():
        lp = m.frame_log_prob(xs)  # (4096, 2)
        want = torch.stack([crbm_by_enumeration(m, x) for x in xs[::97]])
        # given the first two frames, p(x^(2), x^(3) | past) sums to one
        total = torch.logsumexp(lp.sum(1).reshape(64, 64), 0)  # frames 2-3: high bits
    first = xs[:, :2].reshape(len(xs), -1) @ (2.0 ** torch.arange(6)).double()
    assert torch.equal(first[:64], torch.arange(64).double())
    agree = torch.allclose(lp[::97], want, atol=1e-10)
    sums_to_one = torch.allclose(
        total, torch.zeros(64, dtype=torch.float64), atol=1e-10
    )
    ok = agree and sums_to_one
    assert ok == (variant == "correct"), (agree, sums_to_one)


@pytest.mark.parametrize("variant", ["correct", "leaky"])
def test_rnnrbm_frame_likelihood_matches_enumeration(variant):
    cls = RNNRBM if variant == "correct" else LeakyRNNRBM
    m = scramble(cls(2, 3, 4), seed=1)
    xs = all_sequences(2, 4)  # all 256 sequences of 4 frames of 2 units
    with torch.no_grad():
        lp = m.frame_log_prob(xs)  # (256, 4)
        want = torch.stack([rnnrbm_by_enumeration(m, x) for x in xs[::13]])
        total = torch.logsumexp(lp.sum(1), 0)
    agree = torch.allclose(lp[::13], want, atol=1e-10)
    ok = agree and abs(float(total)) < 1e-10
    assert ok == (variant == "correct"), (agree, float(total))


def test_rnn_with_independent_outputs():
    """n_hidden = 0: log p(x^(t) | past) = sum_i log Bernoulli(x_i; sigmoid(b_t,i))."""
    m = scramble(RNNRBM(3, 0, 4), seed=2)
    x = all_sequences(3, 3)[::7]
    with torch.no_grad():
        _, b_t, _ = m.frame_biases(x)
        want = -torch.nn.functional.binary_cross_entropy_with_logits(
            b_t, x, reduction="none"
        ).sum(-1)
        assert torch.allclose(m.frame_log_prob(x), want, atol=1e-12)


def test_visible_enumeration_when_hidden_is_larger():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(3, 6, generator=g, dtype=torch.float64)
    b, c = (
        torch.randn(4, 3, dtype=torch.float64),
        torch.randn(4, 6, dtype=torch.float64),
    )
    hs = all_states(6, dtype=torch.float64)
    want = torch.stack(
        [
            torch.logsumexp(
                hs @ ci + torch.nn.functional.softplus(hs @ W.T + bi).sum(-1), 0
            )
            for bi, ci in zip(b, c)
        ]
    )
    assert torch.allclose(frame_log_partition(W, b, c), want, atol=1e-10)


def ais_frame_errors(seed, broken=False):
    """Largest |AIS - exact| frame log-likelihood (nats) over 8 frames of a 12-visible,
    10-hidden RNN-RBM with weights of scale 0.5: 100 chains, 300 betas each."""
    m = scramble(RNNRBM(12, 10, 5), seed=50, scale=0.5)
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.rand(2, 4, 12, generator=torch.Generator().manual_seed(51)) < 0.5
    ).double()
    with torch.no_grad():
        exact = m.frame_log_prob(x, method="exact")
        est = m.frame_log_prob(x, method="ais", n_chains=100, n_betas=300, generator=g)
    return float((est - exact).abs().max())


@pytest.mark.parametrize("variant", ["correct", "no_transitions"])
def test_frame_ais_agrees_with_exact(variant, monkeypatch):
    if variant == "no_transitions":
        monkeypatch.setattr(
            seq.FrameRBMPath, "transition", lambda self, x, beta, generator=None: x
        )
    # Seeds 0-19 (ais_frame_errors): correct, max error 0.005-0.020 nats (false
    # alarms 0/20); no transitions, 0.15-0.58 nats (misses 0/20).
    ok = ais_frame_errors(seed=0) < 0.1
    assert ok == (variant == "correct")


def test_bouncing_balls():
    x = bouncing_balls_1d(
        20, 30, width=8, n_balls=2, generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (20, 30, 8) and set(x.unique().tolist()) <= {0.0, 1.0}
    on = x.sum(-1)
    assert bool(((on >= 1) & (on <= 2)).all())
    # a lone ball moves exactly one pixel a step
    one = bouncing_balls_1d(
        5, 30, width=8, n_balls=1, generator=torch.Generator().manual_seed(1)
    )
    pos = one.argmax(-1).double()
    assert bool((pos.diff(dim=1).abs() == 1).all())


def test_bad_input_rejected():
    m = RNNRBM(4, 3, 2)
    with pytest.raises(ValueError, match=r"sequences of shape \(N, T, 4\)"):
        m.frame_log_prob(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="expects binary x"):
        m.frame_log_prob(torch.full((1, 3, 4), 0.5))
    with pytest.raises(ValueError, match="method must be"):
        m.frame_log_prob(torch.zeros(1, 3, 4), method="exactly")
    with pytest.raises(ValueError, match="more than order=2 frames"):
        ConditionalRBM(4, 3, order=2).frame_log_prob(torch.zeros(1, 2, 4))
    big = RNNRBM(30, 25, 2)
    with pytest.raises(ValueError, match="use frame_log_partition_ais"):
        big.frame_log_prob(torch.zeros(1, 2, 30), method="exact")
    assert math.isfinite(1.0)
