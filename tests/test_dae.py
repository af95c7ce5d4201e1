"""The denoising autoencoder's Markov chain (dgmlib.chains.dae; book §20.11).

References: the exact transition matrix on {0, 1}^d built by enumeration, Bayes' rule
for the exact reconstruction distribution, chi-square tests of the sampled chain against
that matrix, autograd Jacobians for the contractive penalty, closed-form Gaussians for
Langevin dynamics.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from dgmlib.chains import (
    BitFlipCorruption,
    DenoisingAutoencoder,
    ExactReconstruction,
    GaussianCorruption,
    SaltAndPepperCorruption,
    cae_walk,
    contractive_penalty,
    dae_chain,
    dae_transition_matrix,
    fit_dae,
    langevin,
    reconstruction_matrix,
    stationary_distribution,
)
from dgmlib.exact import all_states

pytestmark = pytest.mark.usefixtures("one_thread")

D = 5  # 32 states


def random_p(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(2**d, generator=g, dtype=torch.float64), 0)


def codes(x: torch.Tensor) -> torch.Tensor:
    return (x.long() * 2 ** torch.arange(x.shape[-1])).sum(-1)


def random_dae(d: int = D, seed: int = 0) -> DenoisingAutoencoder:
    g = torch.Generator().manual_seed(seed)
    return DenoisingAutoencoder(d, (8,), generator=g).double()


# --------------------------------------------------------------------- exact matrices
def test_transition_matrix_is_stochastic():
    c = BitFlipCorruption(0.1)
    for recon in (random_dae(), ExactReconstruction(random_p(D, 1), c)):
        T = dae_transition_matrix(recon, c, D)
        assert T.shape == (2**D, 2**D)
        assert bool((T >= 0).all())
        assert float((T.sum(1) - 1).abs().max()) < 1e-12
    clamp = torch.tensor([True, False, True, False, False])
    T = dae_transition_matrix(random_dae(), c, D, clamp=clamp)
    assert float((T.sum(1) - 1).abs().max()) < 1e-12


def _factorial(R: torch.Tensor, d: int) -> torch.Tensor:
    """The product of the marginals of each row of R: what a Bernoulli DAE can be."""
    s = all_states(d, dtype=torch.float64)
    m = (R @ s).clamp(1e-15, 1 - 1e-15)  # (2**d, d) P(x_i = 1 | x~)
    return (s @ m.log().T + (1 - s) @ (1 - m).log().T).T.exp()


def _mean_not_sample(R: torch.Tensor, d: int) -> torch.Tensor:
    """x' = the rounded mean E[x | x~] instead of a sample: a deterministic map."""
    s = all_states(d, dtype=torch.float64)
    target = codes((R @ s > 0.5).to(torch.float64))
    return torch.nn.functional.one_hot(target, 2**d).to(torch.float64)


@pytest.mark.parametrize(
    "variant", ["correct", "factorial", "wrong_noise_level", "mean_not_sample"]
)
def test_exact_reconstruction_leaves_data_invariant(variant):
    # Deterministic (exact matrices, float64). Broken twins: the factorial conditional
    # a Bernoulli DAE is limited to; the exact conditional of another corruption level
    # (conditioned on the wrong x~); the mean E[x | x~] used instead of a sample.
    p, c = random_p(D, 2), BitFlipCorruption(0.1)
    R = ExactReconstruction(p, c).R
    R = {
        "correct": R,
        "factorial": _factorial(R, D),
        "wrong_noise_level": ExactReconstruction(p, BitFlipCorruption(0.3)).R,
        "mean_not_sample": _mean_not_sample(R, D),
    }[variant]
    T = dae_transition_matrix(R, c, D)
    err = float((p @ T - p).abs().max())
    pi = stationary_distribution(T)
    ok = err < 1e-12 and float((pi - p).abs().sum()) < 1e-9
    assert ok == (variant == "correct"), err


def test_reconstruction_matrix_is_bayes_rule():
    p, c = random_p(D, 3), BitFlipCorruption(0.2)
    exact = ExactReconstruction(p, c)
    R = reconstruction_matrix(exact, D)
    s = all_states(D, dtype=torch.float64)
    for i in (0, 7, 31):  # Bayes' rule by hand for a few x~
        lik = torch.tensor(
            [math.prod(0.2 if a != b else 0.8 for a, b in zip(x, s[i])) for x in s],
            dtype=torch.float64,
        )
        assert torch.allclose(R[i], p * lik / (p * lik).sum(), atol=1e-14)


def test_exact_chain_satisfies_detailed_balance():
    p, c = random_p(D, 4), BitFlipCorruption(0.15)
    T = dae_transition_matrix(ExactReconstruction(p, c), c, D)
    flow = p[:, None] * T
    assert float((flow - flow.T).abs().max()) < 1e-14


@pytest.mark.parametrize("variant", ["correct", "corrupt_clamped_units"])
def test_clamped_chain_leaves_conditional_invariant(variant):
    # Deterministic. The clamped chain keeps the clamped units clean; its exact
    # conditional is the one for that corruption. Broken twin: the conditional of a
    # corruption of every unit (what a DAE trained without the mask estimates).
    p, c = random_p(D, 5), BitFlipCorruption(0.1)
    clamp = torch.tensor([True, True, False, False, False])
    recon = ExactReconstruction(p, c, clamp=clamp if variant == "correct" else None)
    T = dae_transition_matrix(recon, c, D, clamp=clamp)
    s = all_states(D, dtype=torch.float64)
    errs = []
    for x_o in all_states(2, dtype=torch.float64):
        p_cond = p * (s[:, :2] == x_o).all(-1)
        p_cond = p_cond / p_cond.sum()
        errs.append(float((p_cond @ T - p_cond).abs().max()))
    ok = max(errs) < 1e-12
    assert ok == (variant == "correct"), errs


# ------------------------------------------------------------------- the sampled chain
class MeanNotSample(DenoisingAutoencoder):
    """Broken twin: the chain moves to the rounded reconstruction r(x~)."""

    def sample(self, x_tilde, *, generator=None):
        return (self.reconstruct(x_tilde) > 0.5).to(x_tilde.dtype)


def chain_chi2(cls, seed: int) -> float:
    """p-value of a chi-square test: 4000 one-step moves from x = 0...0 of
    dae_chain against row 0 of the exact matrix T of the same DAE."""
    dae = random_dae(seed=100 + seed)
    dae.__class__ = cls
    c = BitFlipCorruption(0.2)
    T = dae_transition_matrix(dae, c, D)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.zeros(4000, D, dtype=torch.float64)
    x1 = dae_chain(dae, x0, 1, corruption=c, generator=g)[1]
    counts = torch.bincount(codes(x1), minlength=2**D).double()
    expected = 4000 * T[0]
    keep = expected > 5  # pool the rare states into one cell
    obs, exp = counts[keep], expected[keep]
    if bool((~keep).any()):
        obs = torch.cat([obs, counts[~keep].sum()[None]])
        exp = torch.cat([exp, expected[~keep].sum()[None]])
    if bool((exp == 0).any() & (obs > 0).any()):
        return 0.0
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


@pytest.mark.parametrize("variant", ["correct", "mean_not_sample"])
def test_chain_step_matches_transition_matrix(variant):
    # Seeds 0-99 (chain_chi2): correct, p < 1e-4 on 0/100 seeds (1e-4 by construction);
    # mean not sample, p < 1e-4 on 100/100 (misses 0/100).
    cls = {"correct": DenoisingAutoencoder, "mean_not_sample": MeanNotSample}[variant]
    ok = chain_chi2(cls, seed=0) > 1e-4
    assert ok == (variant == "correct")


class ExactMeanNotSample(ExactReconstruction):
    """Broken twin: the exact chain moves to the rounded mean E[x | x~]."""

    def sample(self, x_tilde, *, generator=None):
        return (self.reconstruct(x_tilde) > 0.5).to(x_tilde.dtype)


def exact_chain_chi2(cls, seed: int) -> float:
    """p-value of a chi-square test: 20,000 chains started from p, after 3 steps of
    dae_chain with the exact p(x | x~), against p (16 states)."""
    p, c = random_p(4, 6), BitFlipCorruption(0.2)
    g = torch.Generator().manual_seed(seed)
    s = all_states(4, dtype=torch.float64)
    x0 = s[torch.multinomial(p, 20000, replacement=True, generator=g)]
    xs = dae_chain(cls(p, c), x0, 3, corruption=c, generator=g)
    counts = torch.bincount(codes(xs[-1]), minlength=16).double()
    return float(stats.chisquare(counts, 20000 * p).pvalue)


@pytest.mark.parametrize("variant", ["correct", "mean_not_sample"])
def test_exact_chain_samples_the_data(variant):
    # Seeds 0-99 (exact_chain_chi2): correct, p < 1e-4 on 0/100 (1e-4 by
    # construction); mean not sample, p < 1e-4 on 100/100 (misses 0/100).
    cls = {"correct": ExactReconstruction, "mean_not_sample": ExactMeanNotSample}
    ok = exact_chain_chi2(cls[variant], seed=0) > 1e-4
    assert ok == (variant == "correct")


def test_chain_shape_and_clamped_units_never_change():
    dae = random_dae()
    g = torch.Generator().manual_seed(0)
    x0 = torch.bernoulli(torch.full((7, D), 0.5, dtype=torch.float64), generator=g)
    clamp = torch.tensor([False, True, False, True, True])
    for c in (BitFlipCorruption(0.5), SaltAndPepperCorruption(1.0)):
        xs = dae_chain(dae, x0, 20, corruption=c, clamp=clamp, generator=g)
        assert xs.shape == (21, 7, D)
        assert torch.equal(xs[0], x0)
        assert bool((xs[:, :, clamp] == x0[:, clamp]).all())
        assert bool((xs[1:, :, ~clamp] != x0[:, ~clamp]).any())  # the rest moves
    T = dae_transition_matrix(dae, BitFlipCorruption(0.3), D, clamp=clamp)
    s = all_states(D, dtype=torch.float64)
    moved = ~(s[:, None, clamp] == s[None, :, clamp]).all(-1)
    assert float(T[moved].abs().max()) == 0.0


# --------------------------------------------------------------------- corruptions
def test_corruption_statistics():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x = torch.bernoulli(torch.full((n, 4), 0.3, dtype=torch.float64), generator=g)
    for c, rate in ((BitFlipCorruption(0.1), 0.1), (SaltAndPepperCorruption(0.4), 0.2)):
        flipped = (c.sample(x, generator=g) != x).double().mean()
        se = math.sqrt(rate * (1 - rate) / (4 * n))
        assert abs(float(flipped) - rate) < 5 * se  # false alarm < 1e-6
        assert float((c.matrix(4).sum(1) - 1).abs().max()) < 1e-14
    z = torch.randn(n, 3, generator=g, dtype=torch.float64)
    noise = GaussianCorruption(0.7).sample(z, generator=g) - z
    assert float(noise.mean(0).abs().max()) < 5 * 0.7 / math.sqrt(n)
    assert float((noise.std(0) - 0.7).abs().max()) < 0.01
    xt = torch.randn(5, 3, dtype=torch.float64, generator=g)
    ref = torch.distributions.Normal(z[:5], 0.7).log_prob(xt).sum(-1)
    assert torch.allclose(GaussianCorruption(0.7).log_prob(xt, z[:5]), ref)
    s = all_states(3, dtype=torch.float64)
    C = BitFlipCorruption(0.2).matrix(3)
    assert torch.allclose(
        BitFlipCorruption(0.2).log_prob(s[5:6].expand_as(s), s), C[:, 5].log()
    )


# --------------------------------------------------------------------- CAE, score
def test_contractive_penalty_is_the_jacobian_norm():
    g = torch.Generator().manual_seed(0)
    for act in ("tanh", "sigmoid"):
        dae = DenoisingAutoencoder(4, (6,), "gaussian", activation=act, generator=g)
        dae = dae.double()
        x = torch.randn(3, 4, dtype=torch.float64, generator=g)
        jac = torch.autograd.functional.jacobian
        ref = torch.stack([jac(dae.encode, xi[None])[0, :, 0].pow(2).sum() for xi in x])
        assert torch.allclose(contractive_penalty(dae, x), ref, atol=1e-12)


def langevin_variance(variant: str, seed: int) -> float:
    """Variance after 400 Langevin steps (eps 0.01) on N(0, 1) from 4000 chains, with
    the score a DAE of corruption sd 0.5 would give: (r(x) - x) / sigma^2 with r(x) = x
    - sigma^2 x; the broken twin forgets to divide by sigma^2."""
    sigma2 = 0.25
    scale = 1.0 if variant == "correct" else sigma2
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(4000, 1, dtype=torch.float64, generator=g)
    xs = langevin(lambda x: -scale * x, x0, 400, step_size=0.01, generator=g)
    return float(xs[-1].var())


@pytest.mark.parametrize("variant", ["correct", "unscaled_score"])
def test_langevin_samples_the_target(variant):
    # Seeds 0-99 (langevin_variance): correct, variance 0.94-1.07, |var - 1| > 0.1 on
    # 0/100 (the step's bias is +0.25 %); unscaled score, variance 2.7-3.1 (misses
    # 0/100).
    ok = abs(langevin_variance(variant, seed=0) - 1) < 0.1
    assert ok == (variant == "correct")


def test_score_and_walk_shapes():
    g = torch.Generator().manual_seed(0)
    dae = DenoisingAutoencoder(2, (16,), "gaussian", generator=g).double()
    x = torch.randn(9, 2, dtype=torch.float64, generator=g)
    assert torch.allclose(dae.score(x, 0.5), (dae.reconstruct(x) - x) / 0.25)
    assert cae_walk(dae, x, 4, sigma=0.1, generator=g).shape == (5, 9, 2)


def test_fit_dae_learns_and_walks_back():
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((200, 6), 0.2), generator=g)
    x[:, 3:] = x[:, :3]  # copies: a denoiser can learn them
    c = BitFlipCorruption(0.1)
    for k in (1, 3):
        dae = DenoisingAutoencoder(6, (16,), generator=g)
        hist = fit_dae(
            dae,
            x,
            corruption=c,
            walkback=k,
            epochs=20,
            lr=2e-2,
            generator=g,
            quiet=True,
        )
        assert hist["nll_1"][-1] < 0.7 * hist["nll_1"][0]
        assert len(hist["loss"]) == 20 * 2


# --------------------------------------------------------------------- bad input
def test_bad_input_is_rejected():
    dae = random_dae()
    x = torch.zeros(4, D, dtype=torch.float64)
    c = BitFlipCorruption(0.1)
    with pytest.raises(ValueError, match="same shape"):
        dae.log_prob(x, x[:2])
    with pytest.raises(ValueError, match=r"x0 .*\(B, 5\)"):
        dae_chain(dae, torch.zeros(4, 3), 2, corruption=c)
    with pytest.raises(ValueError, match=r"clamp must be a bool mask of shape \(5,\)"):
        dae_chain(dae, x, 2, corruption=c, clamp=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="clamp must be a bool mask"):
        dae_chain(dae, x, 2, corruption=c, clamp=torch.ones(D))
    with pytest.raises(ValueError, match="n_steps must be an int >= 0"):
        dae_chain(dae, x, -1, corruption=c)
    with pytest.raises(ValueError, match=r"p must be a number in \(0.0, 0.5\]"):
        BitFlipCorruption(0.7)
    with pytest.raises(ValueError, match=r"p must be a number in \(0.0, 1.0\]"):
        SaltAndPepperCorruption(1.5)
    with pytest.raises(ValueError, match="sigma must be a number in"):
        GaussianCorruption(-0.1)
    with pytest.raises(ValueError, match="expects binary x"):
        c.sample(torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="need 1 <= d <= 10"):
        dae_transition_matrix(random_dae(11), c, 11)
    with pytest.raises(ValueError, match="walkback must be an int >= 1"):
        fit_dae(dae, x, corruption=c, walkback=0)
    with pytest.raises(ValueError, match="one-layer encoder"):
        contractive_penalty(DenoisingAutoencoder(3, (4, 4)), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="probability vector"):
        ExactReconstruction(torch.ones(8, dtype=torch.float64), c)
