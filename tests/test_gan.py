"""Tests for dgmlib.adversarial.gan (gan_losses, gradient_penalty, pack, fit_gan).

References are independent of the code under test: the optimal discriminator and the
Jensen-Shannon divergence by numerical quadrature (scipy), the losses worked out by hand
from log sigmoid, the gradient penalty of a quadratic critic in closed form, and an
unrolled discriminator step written out by hand. Float64, fixed seeds.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from dgmlib.adversarial import gan
from dgmlib.adversarial.gan import (
    fit_gan,
    gan_losses,
    gradient_penalty,
    pack,
)

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")

P_DATA = stats.norm(0.0, 1.0)  # two known 1-D densities
P_MODEL = stats.norm(1.0, 1.5)


def d_star(x):  # D*(x) = p_data / (p_data + p_model)
    p, q = P_DATA.pdf(x), P_MODEL.pdf(x)
    return p / (p + q)


def value_by_quadrature(d) -> float:
    """v(D) = int p_data log D + p_model log(1 - D) dx (eq. 20.81)."""

    def f(x):
        return P_DATA.pdf(x) * np.log(d(x)) + P_MODEL.pdf(x) * np.log1p(-d(x))

    return integrate.quad(f, -15, 15, limit=200)[0]


def jsd_by_quadrature() -> float:
    def kl_to_m(a, b):
        def f(x):
            m = 0.5 * (a.pdf(x) + b.pdf(x))
            return a.pdf(x) * (a.logpdf(x) - np.log(m))

        return integrate.quad(f, -15, 15, limit=200)[0]

    return 0.5 * kl_to_m(P_DATA, P_MODEL) + 0.5 * kl_to_m(P_MODEL, P_DATA)


def test_optimal_discriminator_maximises_v_and_gives_2jsd_minus_log4():
    v_star = value_by_quadrature(d_star)
    assert v_star == pytest.approx(2 * jsd_by_quadrature() - math.log(4), abs=1e-8)
    # any other discriminator is worse: shift or scale the optimal logit
    for c in (-0.2, 0.2):

        def shifted(x, c=c):
            return 1 / (1 + (1 / d_star(x) - 1) * math.exp(-c))

        assert value_by_quadrature(shifted) < v_star - 1e-4


@pytest.mark.parametrize("variant", ["correct", "d_wrong_sign"])
def test_d_loss_at_optimal_logits_estimates_minus_the_value(variant):
    """-d_loss with the optimal logits log p_data - log p_model on samples is a Monte
    Carlo estimate of v(D*) = 2 JSD - log 4.
    """
    # Seeds 0-99 (rng seed): correct, |error| 2e-5 to 0.003 (false alarms 0/100); sign
    # flipped (d_loss = +v), error 2.37-2.38 (misses 0/100). Tolerance 0.02, n = 200k.
    rng = np.random.default_rng(3)
    x_real, x_fake = P_DATA.rvs(200_000, rng), P_MODEL.rvs(200_000, rng)

    def logit(x):
        return torch.as_tensor(P_DATA.logpdf(x) - P_MODEL.logpdf(x), dtype=DT)

    d_loss, _ = LOSSES[variant](logit(x_real), logit(x_fake), "minimax")
    ok = abs(-float(d_loss) - (2 * jsd_by_quadrature() - math.log(4))) < 0.02
    assert ok == (variant == "correct")


def d_wrong_sign(d_real_logits, d_fake_logits, kind="minimax"):
    """Broken twin: the discriminator's cost is +v instead of -v."""
    d_loss, g_loss = gan_losses(d_real_logits, d_fake_logits, kind)
    return -d_loss, g_loss


def g_wrong_sign(d_real_logits, d_fake_logits, kind="minimax"):
    """Broken twin: the generator's cost with its sign flipped (G climbs v)."""
    d_loss, g_loss = gan_losses(d_real_logits, d_fake_logits, kind)
    return d_loss, -g_loss


LOSSES = {
    "correct": gan_losses,
    "d_wrong_sign": d_wrong_sign,
    "g_wrong_sign": g_wrong_sign,
}


def log_sigmoid(t):
    return -math.log1p(math.exp(-t))


@pytest.mark.parametrize("variant", ["correct", "d_wrong_sign", "g_wrong_sign"])
def test_gan_losses_match_hand_computed_values(variant):
    real, fake = [2.0, -1.0], [0.5, -3.0]
    # by hand: log d = log sigmoid(l), log(1 - d) = log sigmoid(-l)
    v = np.mean([log_sigmoid(t) for t in real]) + np.mean(
        [log_sigmoid(-t) for t in fake]
    )
    expected = {
        "minimax": (-v, np.mean([log_sigmoid(-t) for t in fake])),
        "nonsaturating": (-v, -np.mean([log_sigmoid(t) for t in fake])),
        "ml": (-v, -0.5 * np.mean([math.exp(t) for t in fake])),
        "lsgan": (
            0.5 * np.mean([(t - 1) ** 2 for t in real])
            + 0.5 * np.mean([t**2 for t in fake]),
            0.5 * np.mean([(t - 1) ** 2 for t in fake]),
        ),
        "wgan": (np.mean(fake) - np.mean(real), -np.mean(fake)),
    }
    losses = LOSSES[variant]
    ok = True
    for kind, (d_ref, g_ref) in expected.items():
        d, g = losses(torch.tensor(real, dtype=DT), torch.tensor(fake, dtype=DT), kind)
        ok &= abs(float(d) - d_ref) < 1e-12 and abs(float(g) - g_ref) < 1e-12
    assert ok == (variant == "correct")


def test_generator_gradients_saturate_as_the_textbook_says():
    """d g_loss / d l at the fake logit l: minimax -> 0 and non-saturating -> -1 as
    d(G(z)) -> 0 (§20.10.4); the ML cost's gradient -exp(l)/2 also vanishes there.
    """
    l_fake = torch.tensor([-12.0], dtype=DT, requires_grad=True)
    grads = {}
    for kind in ("minimax", "nonsaturating", "ml"):
        _, g = gan_losses(torch.zeros(1, dtype=DT), l_fake, kind)
        grads[kind] = torch.autograd.grad(g, l_fake)[0].item()
    d = 1 / (1 + math.exp(12.0))
    assert grads["minimax"] == pytest.approx(-d, rel=1e-9)  # -sigmoid(l)
    assert grads["nonsaturating"] == pytest.approx(-(1 - d), rel=1e-9)
    assert grads["ml"] == pytest.approx(-0.5 * math.exp(-12.0), rel=1e-9)


class Quadratic(nn.Module):
    """f(x) = c/2 ||x||^2: grad f = c x, so ||grad f(x)|| = |c| ||x|| in closed form."""

    def __init__(self, c: float):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c, dtype=DT))

    def forward(self, x):
        return 0.5 * self.c * (x**2).sum(1)


@pytest.mark.parametrize("variant", ["correct", "at_real_points"])
def test_gradient_penalty_and_its_gradient_in_closed_form(variant, monkeypatch):
    if variant == "at_real_points":  # broken twin: eps = 1, x_hat = x (real only)
        monkeypatch.setattr(gan, "_interpolation_weights", lambda real, g: 1.0)
    real = torch.randn(64, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    fake = torch.randn(64, 3, dtype=DT, generator=torch.Generator().manual_seed(1)) + 2
    f = Quadratic(0.7)
    gp = gradient_penalty(f, real, fake, generator=torch.Generator().manual_seed(5))
    (dc,) = torch.autograd.grad(gp, f.c)
    # the same eps as gradient_penalty draws: U[0, 1] per example from the generator
    eps = torch.rand(64, 1, dtype=DT, generator=torch.Generator().manual_seed(5))
    r = (eps * real + (1 - eps) * fake).norm(dim=1)  # ||x_hat||
    gp_ref = ((0.7 * r - 1) ** 2).mean()
    dc_ref = (2 * (0.7 * r - 1) * r).mean()
    ok = (
        abs(gp.item() - gp_ref.item()) < 1e-10
        and abs(dc.item() - dc_ref.item()) < 1e-10
    )
    assert ok == (variant == "correct")


def test_pack_concatenates_consecutive_examples():
    x = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(
        pack(x, 2), torch.tensor([[0, 1, 2, 3.0], [4, 5, 6, 7], [8, 9, 10, 11]])
    )
    im = torch.arange(4 * 1 * 2 * 2.0).reshape(4, 1, 2, 2)
    assert torch.equal(pack(im, 2)[1, 1], im[3, 0])
    with pytest.raises(ValueError, match="dividing the batch size"):
        pack(x, 4)


def test_unrolled_logits_equal_a_hand_written_sgd_step():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(8, 2, dtype=DT)
    fake = torch.randn(8, 2, dtype=DT, requires_grad=True)
    out = gan._unrolled_logits(
        D, lambda net, t, b: net(t)[:, 0], x, fake, x, 1, 0.1, "nonsaturating"
    )
    copy = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    copy.load_state_dict(D.state_dict())
    d_loss, _ = gan_losses(copy(x)[:, 0], copy(fake.detach())[:, 0], "nonsaturating")
    d_loss.backward()
    with torch.no_grad():
        for w in copy.parameters():
            w -= 0.1 * w.grad
    assert torch.allclose(out, copy(fake)[:, 0], atol=1e-12)
    (g,) = torch.autograd.grad(out.sum(), fake)  # the unrolled step is differentiable
    assert g.abs().sum() > 0


class Shift(nn.Module):  # x = mu + 0.5 z
    def __init__(self):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1, dtype=DT))

    def forward(self, z):
        return self.mu + 0.5 * z


def hand_written_steps(data, zs, lr, n_steps):
    """The non-saturating game by hand: one Adam step of D on -v, then one of G."""
    G, D = Shift(), nn.Linear(1, 1).double()
    D.load_state_dict(D0.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    zs = iter(zs)
    for _ in range(n_steps):
        fake = G(next(zs)).detach()
        d_loss = -(
            torch.sigmoid(D(data)).log().mean()
            + (1 - torch.sigmoid(D(fake))).log().mean()
        )
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = -torch.sigmoid(D(G(next(zs)))).log().mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return G, D


torch.manual_seed(0)
D0 = nn.Linear(1, 1).double()


@pytest.mark.parametrize("variant", ["correct", "g_wrong_sign"])
def test_fit_gan_steps_equal_the_hand_written_game(variant, monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = 2 + 0.5 * torch.randn(64, 1, dtype=DT, generator=g)
    zs = [torch.randn(64, 1, dtype=DT, generator=g) for _ in range(6)]
    G_ref, D_ref = hand_written_steps(data, zs, 0.05, 3)
    z_iter = iter(zs)
    monkeypatch.setattr(gan, "_randn", lambda shape, generator, like: next(z_iter))
    monkeypatch.setattr(gan, "gan_losses", LOSSES[variant])
    G, D = Shift(), nn.Linear(1, 1).double()
    D.load_state_dict(D0.state_dict())
    h = fit_gan(G, D, data, latent_dim=1, steps=3, batch_size=64, lr=0.05, quiet=True)
    ok = torch.allclose(G.mu, G_ref.mu, atol=1e-12) and all(
        torch.allclose(a, b, atol=1e-12)
        for a, b in zip(D.parameters(), D_ref.parameters())
    )
    assert ok == (variant == "correct")
    assert len(h["d_loss"]) == 3 and len(h["g_loss"]) == 3


def ema_new_weight_kept(average, params, beta):
    """Broken twin: the weights of the average swapped (beta on the new parameters)."""
    with torch.no_grad():
        for a, w in zip(average, params):
            a.mul_(1 - beta).add_(w.detach(), alpha=beta)


EMA_UPDATES = {"correct": gan._ema_update, "new_weight_kept": ema_new_weight_kept}


@pytest.mark.parametrize("variant", ["correct", "new_weight_kept"])
def test_fit_gan_ema_leaves_the_hand_computed_average_in_g(variant, monkeypatch):
    """ema=beta: after the run G holds theta_bar, updated after each generator step t
    with beta_t = min(beta, (1 + t) / (10 + t)) from theta_bar = the initial weights.
    The raw weights after each step are read by the callback (deterministic: fixed z).
    """
    g = torch.Generator().manual_seed(0)
    data = 2 + 0.5 * torch.randn(64, 1, dtype=DT, generator=g)
    zs = [torch.randn(64, 1, dtype=DT, generator=g) for _ in range(16)]
    z_iter = iter(zs)
    monkeypatch.setattr(gan, "_randn", lambda shape, generator, like: next(z_iter))
    monkeypatch.setattr(gan, "_ema_update", EMA_UPDATES[variant])
    G, D = Shift(), nn.Linear(1, 1).double()
    D.load_state_dict(D0.state_dict())
    raw = []
    fit_gan(
        G,
        D,
        data,
        latent_dim=1,
        steps=8,
        batch_size=64,
        lr=0.05,
        ema=0.8,
        quiet=True,
        callback=lambda i, row: raw.append(G.mu.item()),
    )
    avg = 0.0  # Shift starts at mu = 0
    for t, mu in enumerate(raw):
        beta = min(0.8, (1 + t) / (10 + t))
        avg = beta * avg + (1 - beta) * mu
    # deterministic (fixed z): the raw mu moves 0 -> 0.48 in 8 steps, the average
    # lags it at 0.430; the swapped-weights twin ends at 0.396 (0.034 off: fails)
    ok = abs(G.mu.item() - avg) < 1e-12
    assert abs(raw[-1] - avg) > 0.01 and len(raw) == 8
    assert ok == (variant == "correct")


def test_fit_gan_rejects_bad_input():
    data = torch.randn(100, 2)
    D = nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"G returned shape \(50, 3\)"):
        fit_gan(
            nn.Linear(2, 3), D, data, latent_dim=2, steps=1, batch_size=50, quiet=True
        )
    with pytest.raises(ValueError, match="one logit per example"):
        fit_gan(
            nn.Linear(2, 2),
            nn.Linear(2, 3),
            data,
            latent_dim=2,
            steps=1,
            batch_size=50,
            quiet=True,
        )
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_gan(
            nn.Linear(2, 2), D, data, latent_dim=2, loss="hinge", steps=1, batch_size=50
        )
    with pytest.raises(ValueError, match=r"ema must be a decay in \(0, 1\)"):
        fit_gan(nn.Linear(2, 2), D, data, latent_dim=2, steps=1, batch_size=50, ema=1)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        fit_gan(nn.Linear(2, 2), D, data, latent_dim=2, steps=1, batch_size=500)
    with pytest.raises(ValueError, match="kind must be one of"):
        gan_losses(torch.zeros(2), torch.zeros(2), "hinge")
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(D, torch.zeros(4, 2), torch.zeros(3, 2))


def test_fit_gan_conditional_and_packed_runs_record_history():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 2, generator=g), torch.randint(3, (64,), generator=g)

    class CondG(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lin = nn.Embedding(3, 2), nn.Linear(4, 2)

        def forward(self, z, y):
            return self.lin(torch.cat([z, self.emb(y)], 1))

    class CondD(CondG):
        def forward(self, x, y):
            return super().forward(x, y)[:, :1]

    h = fit_gan(
        CondG(),
        CondD(),
        (x, y),
        latent_dim=2,
        loss="wgan-gp",
        steps=3,
        batch_size=32,
        generator=g,
        quiet=True,
    )
    assert len(h["d_loss"]) == 3 and len(h["gp"]) == 3
    h = fit_gan(
        nn.Linear(2, 2),
        nn.Linear(4, 1),
        x,
        latent_dim=2,
        pack_size=2,
        unroll=2,
        steps=2,
        batch_size=32,
        generator=g,
        quiet=True,
    )
    assert len(h["g_loss"]) == 2
