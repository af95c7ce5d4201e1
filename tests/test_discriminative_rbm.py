"""The discriminative RBM (§20.8): exact p(y | x) against enumeration over h, the
generative gradient against the CD update by hand, bad input rejected."""

import pytest
import torch
import torch.nn.functional as F

from dgmlib.energy.discriminative import DiscriminativeRBM, drbm_loss, gibbs_xy
from dgmlib.exact import all_states

pytestmark = pytest.mark.usefixtures("one_thread")

D, H, K = 5, 4, 3


def tiny(seed=0):
    g = torch.Generator().manual_seed(seed)
    m = DiscriminativeRBM(D, H, K, init_std=1.0, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for p in (m.b, m.c, m.d):
            p.normal_(generator=g)
    return m


def log_p_y_given_x_by_enumeration(m, x):
    """log sum_h exp(-E(x, y, h)) over all 2^H h, normalised over y; (B, K)."""
    hs = all_states(H, dtype=torch.float64)  # (S, H)
    out = torch.empty(len(x), K, dtype=torch.float64)
    for y in range(K):
        for i, xi in enumerate(x):
            ys = torch.full((len(hs),), y)
            e = m.energy(xi.expand(len(hs), -1), ys, hs)
            out[i, y] = torch.logsumexp(-e, 0)
    return out - torch.logsumexp(out, 1, keepdim=True)


class NoClassWeights(DiscriminativeRBM):
    """Broken: p(y | x) from the class biases and x, forgetting U[y] inside softplus."""

    def log_p_y_given_x(self, x):
        pre = x @ self.W + self.c  # (B, H): U missing
        neg_f = self.d + F.softplus(pre).sum(-1, keepdim=True)
        return torch.log_softmax(neg_f, -1)


@pytest.mark.parametrize("variant", ["correct", "no_class_weights"])
def test_p_y_given_x_matches_enumeration(variant):
    m = tiny()
    if variant == "no_class_weights":
        m.__class__ = NoClassWeights
    x = all_states(D, dtype=torch.float64)  # every input
    with torch.no_grad():
        got = m.log_p_y_given_x(x)
        want = log_p_y_given_x_by_enumeration(m, x)
    ok = torch.allclose(got, want, atol=1e-10)
    assert ok == (variant == "correct"), (got - want).abs().max()


def test_free_energy_matches_enumeration():
    m = tiny(1)
    x = all_states(D, dtype=torch.float64)[::3]
    y = torch.arange(len(x)) % K
    hs = all_states(H, dtype=torch.float64)
    want = torch.stack(
        [
            -torch.logsumexp(-m.energy(xi.expand(16, -1), yi.expand(16), hs), 0)
            for xi, yi in zip(x, y)
        ]
    )
    assert torch.allclose(m.free_energy(x, y), want, atol=1e-10)


def test_generative_gradient_is_the_cd_update(monkeypatch):
    """d/dW of F(x, y) - F(x~, y~) = -(E_pos[x h^T] - E_neg[x~ h~^T]) with h at
    its conditional mean: the textbook CD-1 update, by hand."""
    m = tiny(2)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(6, D, generator=g) < 0.5).double()
    y = torch.randint(K, (6,), generator=g)
    x_neg, y_neg = gibbs_xy(m, x, y, 1, generator=torch.Generator().manual_seed(4))
    import dgmlib.energy.discriminative as mod

    monkeypatch.setattr(mod, "gibbs_xy", lambda *a, **k: (x_neg, y_neg))
    loss, _ = drbm_loss(m, x, y, objective="generative")
    loss.backward()

    def stats(x, y):
        p = torch.sigmoid(x @ m.W + m.c + m.U[y]).detach()
        return x.T @ p / len(x)

    want = -(stats(x, y) - stats(x_neg, y_neg))
    assert torch.allclose(m.W.grad, want, atol=1e-12)


def test_bad_input_rejected():
    m = tiny()
    with pytest.raises(ValueError, match="expects binary x"):
        m.log_p_y_given_x(torch.full((2, D), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        m.free_energy(torch.zeros(2, D), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="dtype int64"):
        m.free_energy(torch.zeros(2, D), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="objective must be one of"):
        drbm_loss(m, torch.zeros(2, D), torch.tensor([0, 1]), objective="joint")
