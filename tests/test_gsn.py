"""Tests for dgmlib.chains.gsn (generative stochastic networks, §20.12).

References are independent of the sampler and of autograd: the one-step transition
matrix of a tiny GSN (D = 3 visible units, H = 1 latent unit, no recurrence, so the
visible states alone form a Markov chain) by summing over the 2^3 corruptions and
integrating the two Gaussian noises with Gauss-Hermite quadrature; and central finite
differences of that quadrature for the gradient of the expected reconstruction cost.
Float64, fixed seeds.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dgmlib.chains import (
    GSN,
    HybridGSN,
    fit_gsn,
    gsn_chain,
    hybrid_loss,
    predict_labels,
    walkback_loss,
)
from dgmlib.chains import gsn as gsn_mod

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")
STATES = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=DT)  # (8, 3)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_gsn(cls=GSN) -> GSN:
    """D = 3, H = 1, U = 0: x^(k) depends on x^(k-1) only (h^(0) = 0 each step here)."""
    gsn = cls(3, 1, corruption=0.25, sigma_pre=1.2, sigma_post=0.4, dtype=DT)
    with torch.no_grad():
        gsn.W.copy_(torch.tensor([[2.0], [-1.5], [1.0]]))
        gsn.U.zero_()
        gsn.c.fill_(0.3)
        gsn.V.copy_(torch.tensor([[3.0, -2.5, 2.0]]))
        gsn.b.copy_(torch.tensor([-0.5, 0.4, 0.2]))
    return gsn


def corruption_probs(x: torch.Tensor, p: float) -> torch.Tensor:
    """C(x~ | x) for every x~ in STATES: (8,)."""
    same = (STATES == x).to(DT)
    return (same * (1 - p) + p / 2).prod(-1)


def quadrature_cost(gsn: GSN, x: torch.Tensor, n: int = 40):
    """For each corruption x~ and Gauss-Hermite node pair (e1, e2): the weight and
    log p(x' | h) for every x' (a function of the parameters, differentiated by finite
    differences). Returns (weights (M,), log_p (M, 8)).
    """
    nodes, w = np.polynomial.hermite_e.hermegauss(n)
    w = torch.tensor(w / math.sqrt(2 * math.pi), dtype=DT)
    e = torch.tensor(nodes, dtype=DT)
    e1, e2 = torch.meshgrid(e, e, indexing="ij")
    w12 = (w[:, None] * w[None, :]).flatten()  # (n^2,)
    c_probs = corruption_probs(x, gsn.corruption)  # (8,)
    a = STATES @ gsn.W + gsn.c  # (8, 1) one pre-activation per x~
    h = torch.tanh(a + gsn.sigma_pre * e1.flatten()) + gsn.sigma_post * e2.flatten()
    logits = h[..., None] * gsn.V[0] + gsn.b  # (8, n^2, 3)
    log_p = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, :, None, :].expand(-1, -1, 8, -1),
        STATES.expand(8, n * n, 8, 3),
        reduction="none",
    ).sum(-1)  # (8 x~, n^2, 8 x')
    weights = (c_probs[:, None] * w12[None, :]).flatten()
    return weights, log_p.reshape(-1, 8)


def transition_matrix(gsn: GSN) -> torch.Tensor:
    """T[x, x'] = sum_x~ C(x~|x) E_eps p(x' | h(x~, eps)), by quadrature: (8, 8)."""
    with torch.no_grad():
        rows = []
        for x in STATES:
            weights, log_p = quadrature_cost(gsn, x)
            rows.append(weights @ log_p.exp())
    return torch.stack(rows)


class NoPreNoise(GSN):
    """Broken: forgets the pre-activation noise."""

    def hidden(self, h_prev, x_tilde, eps_pre, eps_post):
        return super().hidden(h_prev, x_tilde, torch.zeros_like(eps_pre), eps_post)


class NoiselessGradient(GSN):
    """Broken reparametrization: forward pass with the noise, gradient of the noiseless
    unit (a straight-through estimate), so the gradient is biased.
    """

    def hidden(self, h_prev, x_tilde, eps_pre, eps_post):
        noisy = super().hidden(h_prev, x_tilde, eps_pre, eps_post)
        plain = torch.tanh(self.pre_activation(h_prev, x_tilde))
        return noisy.detach() + plain - plain.detach()


def test_transition_matrix_is_stochastic_and_depends_on_the_start():
    T = transition_matrix(tiny_gsn())
    assert torch.allclose(T.sum(1), torch.ones(8, dtype=DT), atol=1e-10)
    assert (T > 0).all()
    assert (T[0] - T[-1]).abs().max() > 0.05  # the chain remembers where it was


def transition_chi2(cls, seed: int, n: int = 20_000) -> float:
    """Chi-square of one chain step from each of the 8 states (n chains each) against
    the quadrature transition matrix; 56 degrees of freedom.
    """
    gsn, g = tiny_gsn(cls), gen(seed)
    T = transition_matrix(tiny_gsn())
    chi2 = 0.0
    for i, x in enumerate(STATES):
        x1 = gsn_chain(gsn, x.expand(n, 3).clone(), 1, generator=g).x[1]  # (n, 3)
        idx = (x1 * torch.tensor([4.0, 2.0, 1.0], dtype=DT)).sum(-1).long()
        counts = torch.bincount(idx, minlength=8).to(DT)
        chi2 += float(((counts - n * T[i]) ** 2 / (n * T[i])).sum())
    return chi2


@pytest.mark.parametrize("variant", ["correct", "no_pre_noise"])
def test_chain_step_matches_quadrature(variant):
    cls = GSN if variant == "correct" else NoPreNoise
    chi2 = transition_chi2(cls, seed=0)
    ok = chi2 < stats.chi2.ppf(1 - 1e-4, 56)  # 1e-4 false-alarm rate by construction
    # Seeds 0-19: correct, chi2 in 36-80 against the threshold 104 (false alarms
    # 0/20); no pre-activation noise, chi2 in 5,984-6,633 (misses 0/20).
    assert ok == (variant == "correct"), chi2


def reparam_gradient_error(cls, seed: int, n: int = 100_000) -> float:
    """Largest absolute difference between the Monte-Carlo average of the autograd
    gradient of one walk-back step's cost and finite differences of its expectation
    by quadrature, over the parameters W, c, V, b.
    """
    x = torch.tensor([1.0, 0.0, 1.0], dtype=DT)
    gsn = tiny_gsn(cls)
    loss = walkback_loss(gsn, x.expand(n, 3), walkback=1, generator=gen(seed)).mean()
    loss.backward()
    idx = int(x @ torch.tensor([4.0, 2.0, 1.0], dtype=DT))
    ref = tiny_gsn()

    def expected_cost():
        weights, log_p = quadrature_cost(ref, x)
        return float(-(weights @ log_p[:, idx]))

    err, h = 0.0, 1e-5
    with torch.no_grad():
        for name in ("W", "c", "V", "b"):
            p_ref, p = getattr(ref, name), getattr(gsn, name)
            for j in range(p_ref.numel()):
                p_ref.view(-1)[j] += h
                up = expected_cost()
                p_ref.view(-1)[j] -= 2 * h
                down = expected_cost()
                p_ref.view(-1)[j] += h
                fd = (up - down) / (2 * h)
                err = max(err, abs(float(p.grad.view(-1)[j]) - fd))
    return err


@pytest.mark.parametrize("variant", ["correct", "noiseless_gradient"])
def test_reparametrized_gradient_matches_finite_differences(variant):
    cls = GSN if variant == "correct" else NoiselessGradient
    err = reparam_gradient_error(cls, seed=0)
    ok = err < 0.03
    # Seeds 0-19: correct, max error 0.0008-0.0065 (false alarms 0/20); straight-
    # through noiseless gradient, 0.143-0.150 (misses 0/20).
    assert ok == (variant == "correct"), err


def test_chain_shapes_and_binary_states():
    gsn = GSN(6, 4, generator=gen(0), dtype=DT)
    x0 = torch.bernoulli(torch.full((5, 6), 0.5, dtype=DT), generator=gen(1))
    ch = gsn_chain(gsn, x0, 7, generator=gen(2))
    assert ch.x.shape == (8, 5, 6) and ch.p.shape == (8, 5, 6) and ch.h.shape == (5, 4)
    assert torch.equal(ch.x[0], x0) and torch.equal(ch.p[0], x0)
    assert ((ch.x == 0) | (ch.x == 1)).all() and ((ch.p >= 0) & (ch.p <= 1)).all()
    assert gsn_chain(gsn, x0, 0).x.shape == (1, 5, 6)
    assert walkback_loss(gsn, x0, walkback=3, generator=gen(3)).shape == (5,)


@pytest.mark.parametrize("variant", ["correct", "clamp_ignored"])
def test_clamped_units_never_change(variant, monkeypatch):
    if variant == "clamp_ignored":
        monkeypatch.setattr(gsn_mod, "_check_clamp", lambda clamp, D, device: None)
    gsn = GSN(8, 5, corruption=0.5, generator=gen(0), dtype=DT)
    x0 = torch.bernoulli(torch.full((20, 8), 0.5, dtype=DT), generator=gen(1))
    clamp = torch.tensor([True, False] * 4)
    ch = gsn_chain(gsn, x0, 30, clamp=clamp, generator=gen(2))
    fixed = bool((ch.x[:, :, clamp] == x0[:, clamp]).all())
    fixed &= bool((ch.p[:, :, clamp] == x0[:, clamp]).all())
    moved = bool((ch.x[:, :, ~clamp] != x0[:, ~clamp]).any())
    assert moved
    assert fixed == (variant == "correct")


def test_fit_gsn_records_and_reduces_the_cost():
    g = gen(0)
    protos = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4], dtype=DT)
    x = protos[torch.randint(0, 2, (200,), generator=g)]
    gsn = GSN(8, 16, corruption=0.2, generator=g, dtype=DT)
    hist = fit_gsn(gsn, x, walkback=3, epochs=30, batch_size=50, lr=1e-2, generator=g)
    assert len(hist["loss"]) == 30 * 4
    first, last = hist.epoch_mean("loss")[0], hist.epoch_mean("loss")[-1]
    assert last < 0.5 * first, (first, last)


def test_hybrid_gsn_discriminant_and_predictions():
    g = gen(0)
    gsn = HybridGSN(6, 5, 3, generator=g, dtype=DT)
    x = torch.bernoulli(torch.full((10, 6), 0.5, dtype=DT), generator=g)
    y = torch.randint(0, 3, (10,), generator=g)
    # alpha = 0: only the label's reconstruction is back-propagated (discriminant GSN)
    hybrid_loss(gsn, x, y, walkback=2, alpha=0.0, generator=g).mean().backward()
    assert gsn.V.grad.abs().max() == 0 and gsn.b.grad.abs().max() == 0
    assert gsn.Vy.grad.abs().max() > 0 and gsn.W.grad.abs().max() > 0
    p = predict_labels(gsn, x, n_steps=4, generator=g)
    assert p.shape == (10, 3)
    assert torch.allclose(p.sum(1), torch.ones(10, dtype=DT))
    hist = fit_gsn(gsn, x, labels=y, walkback=2, epochs=2, batch_size=5, generator=g)
    assert len(hist["loss"]) == 4


def test_bad_input_rejected():
    gsn = GSN(4, 3, dtype=DT)
    x = torch.zeros(2, 4, dtype=DT)
    with pytest.raises(ValueError, match=r"boolean mask of shape \(4,\)"):
        gsn_chain(gsn, x, 2, clamp=torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"boolean mask of shape \(4,\)"):
        gsn_chain(gsn, x, 2, clamp=torch.ones(4))
    with pytest.raises(ValueError, match="walkback"):
        walkback_loss(gsn, x, walkback=0)
    with pytest.raises(ValueError, match="binary"):
        walkback_loss(gsn, x + 0.5)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        gsn_chain(gsn, torch.zeros(2, 5, dtype=DT), 1)
    with pytest.raises(ValueError, match="n_steps"):
        gsn_chain(gsn, x, -1)
    with pytest.raises(ValueError, match="corruption"):
        GSN(4, 3, corruption=1.0)
    with pytest.raises(ValueError, match="HybridGSN"):
        predict_labels(gsn, x)
    hyb = HybridGSN(4, 3, 2, dtype=DT)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        hybrid_loss(hyb, x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="same number of rows"):
        fit_gsn(hyb, x, labels=torch.tensor([0]))
