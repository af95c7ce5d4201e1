"""The convolutional RBM with probabilistic max pooling (§20.6, Lee et al. 2009): the
block conditional against enumeration of every detector state of a block, the free
energy against enumeration of the allowed states, P(v | h) against energy differences,
the block sampler by a chi-square test, bad input rejected."""

import itertools

import pytest
import torch
from scipy import stats

from dgmlib.energy.conv import ConvRBM, pool_block_states
from dgmlib.exact import all_states

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(image=(4, 4), f=3, K=2, padding="valid", seed=0):
    g = torch.Generator().manual_seed(seed)
    m = ConvRBM(
        image,
        K,
        f,
        pool=2,
        padding=padding,
        init_std=1.0,
        generator=g,
        dtype=torch.float64,
    )
    with torch.no_grad():
        m.c.normal_(generator=g)
        m.b.fill_(-0.3)
    return m


def detector_input_by_loops(m, v):
    """I_kij = c_k + sum_ab W_k[a, b] v_pad[i + a, j + b]; (B, 1, N, N) -> (B, K, .)."""
    p = m.pad
    vp = torch.nn.functional.pad(v, (p, p, p, p))
    K, _, f, _ = m.W.shape
    Nh, Nw = m.detector_shape
    out = torch.empty(v.shape[0], K, Nh, Nw, dtype=torch.float64)
    for k, i, j in itertools.product(range(K), range(Nh), range(Nw)):
        patch = vp[:, 0, i : i + f, j : j + f]
        out[:, k, i, j] = m.c[k] + (patch * m.W[k, 0]).sum((1, 2))
    return out


def block_marginals_by_enumeration(I_block):
    """Every 2^n detector state of one block, energy infinite unless at most one is
    on: P(h_r = 1) for each r and P(p = 0); (n,) -> (n,), ()."""
    n = len(I_block)
    h = all_states(n, dtype=torch.float64)  # (2^n, n)
    allowed = h.sum(1) <= 1
    log_w = torch.where(allowed, h @ I_block, torch.tensor(-torch.inf))
    p = torch.softmax(log_w, 0)
    return p @ h, p[h.sum(1) == 0].sum()


class ForgetsAllOff(ConvRBM):
    """Broken: a softmax over the n detector states only, no all-off state."""

    def block_log_probs(self, v):
        I = self._blocks(self.detector_input(v))
        off = torch.full_like(I[..., :1], -torch.inf)
        return torch.log_softmax(torch.cat([off, I], -1), -1)


@pytest.mark.parametrize("variant", ["correct", "forgets_all_off"])
def test_block_conditional_matches_enumeration(variant):
    m = tiny()
    if variant == "forgets_all_off":
        m.__class__ = ForgetsAllOff
    v = all_states(16, dtype=torch.float64)[::997].reshape(-1, 1, 4, 4)  # 66 images
    with torch.no_grad():
        p_h, p_pool = m.p_h_given_v(v)
        I = detector_input_by_loops(m, v)  # (B, K, 2, 2): one block per filter
    errs = []
    for b, k in itertools.product(range(len(v)), range(2)):
        want_h, want_off = block_marginals_by_enumeration(I[b, k].flatten())
        errs.append((p_h[b, k].flatten() - want_h).abs().max())
        errs.append((1 - p_pool[b, k, 0, 0] - want_off).abs())
    ok = max(errs) < 1e-12
    assert ok == (variant == "correct"), max(errs)


@pytest.mark.parametrize("padding", ["valid", "zero"])
def test_free_energy_matches_enumeration(padding):
    # one filter, 4 blocks of 4 detectors: 5^4 allowed hidden states
    m = tiny(
        (4, 4) if padding == "zero" else (5, 5),
        f=3 if padding == "zero" else 2,
        K=1,
        padding=padding,
    )
    g = torch.Generator().manual_seed(1)
    v = (torch.rand(5, 1, *m.image_shape, generator=g) < 0.5).double()
    block = pool_block_states(4)  # (5, 4)
    states = []
    for choice in itertools.product(range(5), repeat=4):
        blocks = block[list(choice)].reshape(1, 1, 2, 2, 4)
        states.append(m._unblocks(blocks))
    h = torch.cat(states)  # (625, 1, 4, 4)
    with torch.no_grad():
        want = torch.stack(
            [
                -torch.logsumexp(-m.energy(vi.expand(len(h), -1, -1, -1), h), 0)
                for vi in v
            ]
        )
        assert torch.allclose(m.free_energy(v), want, atol=1e-10)
        assert torch.allclose(m.detector_input(v), detector_input_by_loops(m, v))


@pytest.mark.parametrize("padding", ["valid", "zero"])
def test_visible_conditional_is_the_energy_difference(padding):
    """logit P(v_i = 1 | h) = E(v with v_i = 0, h) - E(v with v_i = 1, h)."""
    m = tiny((6, 6), f=3, K=2, padding=padding)
    g = torch.Generator().manual_seed(2)
    v = (torch.rand(1, 1, 6, 6, generator=g) < 0.5).double()
    with torch.no_grad():
        h, _ = m.sample_h(v, generator=g)
        logits = m.visible_logits(h)[0, 0].flatten()  # (36,)
        eye = torch.eye(36, dtype=torch.float64).reshape(36, 1, 6, 6)
        v0 = v * (1 - eye)  # pixel i set to 0 in copy i
        v1 = v0 + eye  # and to 1
        hs = h.expand(36, -1, -1, -1)
        diff = m.energy(v0, hs) - m.energy(v1, hs)
    assert torch.allclose(logits, diff, atol=1e-10)


def block_chi2(sample_h, seed, n=4000):
    """p-value of a chi-square test of one block's n + 1 state counts (detector r on
    alone, or all off) against the exact block probabilities; a sample with two
    detectors on counts as a state of probability zero and fails outright."""
    m = tiny(seed=100)
    v = torch.ones(n, 1, 4, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        probs = m.block_log_probs(v[:1]).exp()[0, 0, 0, 0]  # (5,)
        h, p = sample_h(m, v, generator=g)
    blk = m._blocks(h)[:, 0, 0, 0]  # (n, 4)
    if (blk.sum(1) > 1).any() or not torch.equal(p[:, 0, 0, 0], blk.sum(1)):
        return 0.0
    state = torch.where(blk.sum(1) == 0, 0, blk.argmax(1) + 1)
    counts = torch.bincount(state, minlength=5).double()
    return stats.chisquare(counts.numpy(), (n * probs).numpy()).pvalue


def independent_detectors(m, v, generator=None):
    """Broken sampler: each detector Bernoulli(sigmoid(I)) on its own, p = max."""
    q = torch.sigmoid(m.detector_input(v))
    h = torch.bernoulli(q, generator=generator)
    return h, m._blocks(h).amax(-1)


@pytest.mark.parametrize("variant", ["correct", "independent_detectors"])
def test_block_sampler_chi2(variant):
    sampler = ConvRBM.sample_h if variant == "correct" else independent_detectors

    def sample_h(m, v, generator):
        return sampler(m, v, generator=generator)

    # Seeds 0-99 (block_chi2): correct, p < 1e-4 on 0/100 (1 in 10,000 by the
    # chi-square tail); independent detectors, p >= 1e-4 on 0/100 (two detectors on).
    ok = block_chi2(sample_h, seed=0) > 1e-4
    assert ok == (variant == "correct")


def test_bad_input_rejected():
    m = tiny()
    with pytest.raises(
        ValueError, match=r"images of shape \(B, 1, 4, 4\); got \(2, 1, 5, 5\)"
    ):
        m.p_h_given_v(torch.zeros(2, 1, 5, 5))
    with pytest.raises(ValueError, match="images of shape"):
        m.free_energy(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="expects binary v"):
        m.p_h_given_v(torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="multiples of pool=2"):
        ConvRBM((5, 5), 2, 3, pool=2)
    with pytest.raises(ValueError, match="odd filter_size"):
        ConvRBM((8, 8), 2, 4, padding="zero")
    with pytest.raises(ValueError, match="padding must be one of"):
        ConvRBM((8, 8), 2, 3, padding="same")
