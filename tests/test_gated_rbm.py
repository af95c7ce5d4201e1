"""The factored three-way (gated) RBM (§20.8, Memisevic & Hinton 2010): conditionals and
free energy against enumeration of (y, h) with the full third-order tensor, bad input
rejected."""

import pytest
import torch

from dgmlib.energy.gated import GatedRBM
from dgmlib.exact import all_states

pytestmark = pytest.mark.usefixtures("one_thread")

DX, DY, H, NF = 3, 3, 2, 4


def tiny(seed=0):
    g = torch.Generator().manual_seed(seed)
    m = GatedRBM(DX, DY, H, NF, init_std=1.0, generator=g).double()
    with torch.no_grad():
        m.b.normal_(generator=g)
        m.c.normal_(generator=g)
    return m


def joint_by_enumeration(m, x):
    """p(y, h | x) over all 2^DY * 2^H states from E = -sum_ijk W_ijk x_i y_j h_k
    - b.y - c.h, with W_ijk built by loops from the factors."""
    W = torch.zeros(DX, DY, H, dtype=torch.float64)
    for i in range(DX):
        for j in range(DY):
            for k in range(H):
                W[i, j, k] = sum(
                    m.Wx[i, f] * m.Wy[j, f] * m.Wh[k, f] for f in range(NF)
                )
    ys, hs = all_states(DY, dtype=torch.float64), all_states(H, dtype=torch.float64)
    Y = ys.repeat_interleave(len(hs), 0)
    Hh = hs.repeat(len(ys), 1)
    neg_e = torch.einsum("i,ijk,nj,nk->n", x, W, Y, Hh) + Y @ m.b + Hh @ m.c
    return Y, Hh, torch.softmax(neg_e, 0)


class Ungated(GatedRBM):
    """Broken: the hidden units see y alone; x no longer gates the factors."""

    def hidden_logits(self, x, y):
        return self.c + (y.to(self.Wy.dtype) @ self.Wy) @ self.Wh.T


@pytest.mark.parametrize("variant", ["correct", "ungated"])
def test_conditionals_match_enumeration(variant):
    m = tiny()
    if variant == "ungated":
        m.__class__ = Ungated
    errs = []
    with torch.no_grad():
        for x in all_states(DX, dtype=torch.float64):
            Y, Hh, p = joint_by_enumeration(m, x)
            for y in all_states(DY, dtype=torch.float64):  # P(h_k = 1 | x, y)
                sel = (Y == y).all(1)
                want = (p[sel] @ Hh[sel]) / p[sel].sum()
                errs.append((m.p_h_given_xy(x[None], y[None])[0] - want).abs().max())
            for h in all_states(H, dtype=torch.float64):  # P(y_j = 1 | x, h)
                sel = (Hh == h).all(1)
                want = (p[sel] @ Y[sel]) / p[sel].sum()
                errs.append((m.p_y_given_xh(x[None], h[None])[0] - want).abs().max())
    ok = max(errs) < 1e-12
    assert ok == (variant == "correct"), max(errs)


def test_free_energy_and_energy_match_enumeration():
    m = tiny(1)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        Y, Hh, p = joint_by_enumeration(m, x[0])
        e = m.energy(x.expand(len(Y), -1), Y, Hh)
        assert torch.allclose(torch.softmax(-e, 0), p, atol=1e-12)
        ys = all_states(DY, dtype=torch.float64)
        f = m.free_energy(x.expand(len(ys), -1), ys)
        p_y = torch.stack([p[(Y == y).all(1)].sum() for y in ys])
        assert torch.allclose(torch.softmax(-f, 0), p_y, atol=1e-12)
        full = torch.einsum("if,jf,kf->ijk", m.Wx, m.Wy, m.Wh)
        assert torch.allclose(m.weights(), full)


def test_bad_input_rejected():
    m = tiny()
    with pytest.raises(ValueError, match=r"expects x of shape \(B, 3\)"):
        m.p_h_given_xy(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expects binary y"):
        m.free_energy(torch.zeros(2, 3), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="n_factors >= 1"):
        GatedRBM(3, 3, 2, 0)
