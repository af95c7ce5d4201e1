"""Diffusion benchmarks (chapter "Diffusion inversion and denoising diffusion").

* ``diffusion_sohl``: Sohl-Dickstein et al. (2015), table 1, on 2 CPU cores.
  - Swiss roll: the 2-D roll of ``dgmlib.data.toy_2d("swiss_roll", noise=0)`` (the
    (x, z) coordinates of scikit-learn's roll, noise-free, as in the paper), each
    coordinate standardised to zero mean and unit variance with the training set's
    statistics; 10,000 train, 2,000 test. Gaussian diffusion, T = 40 steps (as in the
    paper), geometric schedule beta_t from 1e-6 to 0.9, the reverse mean and variance
    learned by an MLP (mean: simplified loss; variance: 0.05 x the bound).
  - Binary heartbeat: 20 bits with a 1 in every 5th bin at a uniformly random phase
    (5 equiprobable sequences: the best possible log-likelihood is log2(1/5) = -2.322
    bits per sequence). Binomial diffusion, T = 200, beta_t = 1/(T - t + 1), stationary
    firing rate 1/5, trained on the bound.
  K is the variational lower bound on the test log-likelihood in bits per example
  (eq. 12 of the paper; here minus the mean of ``diffusion.bound(...).sum(1)``,
  averaged over draws of the trajectories), and L_null the test log-likelihood under
  the reverse chain's starting distribution pi(x_T): the isotropic unit Gaussian for
  the standardised roll (-log2(2 pi e) = -4.09 bits) and independent Bernoulli(1/5)
  bits for the heartbeat. Published: Swiss roll K = 2.35 bits, K - L_null = 6.45 bits;
  heartbeat K = -2.414 bits/sequence. Targets: match or beat them.
* ``diffusion_digits``: a DDPM (Ho et al.'s linear schedule compressed to T = 200,
  learned variance, trained on the bound) on scikit-learn's 8x8 digits dequantized
  exactly as chapter 16 does (x = k + u, u ~ U[0, 1), benchmarks.flows._digits: same
  split, same noise draw), seen through the flows' Logit map (alpha = 0.01) halved;
  its log |dy/dx| is added back, so the NLL is of x in [0, 17)^64. Reported: the test
  bound in nats and bits/dim (3 draws of the trajectories), next to chapter 16's flows
  and its two baselines, run in the same process by ``flows_digits``.
"""

from __future__ import annotations

import math

import torch

from dgmlib.config import device as best_device
from dgmlib.diffusion import (
    BinomialDiffusion,
    DenoisingMLP,
    GaussianDiffusion,
    fit_diffusion,
    heartbeat,
    linear_betas,
    swiss_roll,
)
from dgmlib.flows import Logit, bits_per_dim, dequantize

from .common import Row, timed
from .flows import D_DIGITS, LEVELS, _digits, _threads, flows_digits

LOG2 = math.log(2)


def swiss_roll_betas(T: int = 40) -> torch.Tensor:
    """A geometric schedule from 1e-6 to 0.9 (Sohl-Dickstein et al. fix beta_1 small
    and learn the rest; here all are fixed).
    """
    return torch.logspace(-6, math.log10(0.9), T, dtype=torch.float64)


def bound_bits(diffusion, model, x, generator, repeats: int) -> float:
    """K: minus the mean negative bound over ``repeats`` trajectory draws, bits."""
    with torch.no_grad():
        nats = [
            diffusion.bound(model, x, generator=generator).sum(1).mean()
            for _ in range(repeats)
        ]
    return -float(torch.stack(nats).mean()) / LOG2


def fit_swiss_roll(quick: bool, g: torch.Generator):
    train, test = swiss_roll(10_000, 2000, generator=g)
    diff = GaussianDiffusion(swiss_roll_betas(), variance="learned")
    torch.manual_seed(0)
    model = DenoisingMLP(2, 128, 3, out_dim=4)
    seconds, _ = timed(
        fit_diffusion,
        diff,
        model,
        train[:1000] if quick else train,
        objective="hybrid",
        hybrid_weight=0.05,
        epochs=2 if quick else 100,
        batch_size=256,
        lr=2e-3,
        generator=g,
        quiet=True,
    )
    return diff, model, test, seconds


def fit_heartbeat(quick: bool, g: torch.Generator, T: int = 200):
    diff = BinomialDiffusion(T, p_inf=0.2)
    torch.manual_seed(0)
    model = DenoisingMLP(20, 128, 2)
    steps = 50 if quick else 3000
    seconds, _ = timed(
        fit_diffusion,
        diff,
        model,
        heartbeat(steps * 128, generator=g),
        objective="bound",
        epochs=1,
        batch_size=128,
        lr=2e-3,
        generator=g,
        quiet=True,
    )
    return diff, model, heartbeat(200 if quick else 5000, generator=g), seconds


def diffusion_sohl(quick: bool = False) -> list[Row]:
    g = torch.Generator().manual_seed(0)
    rows = []
    with _threads(1):
        diff, model, test, seconds = fit_swiss_roll(quick, g)
        K = bound_bits(diff, model, test, g, repeats=1 if quick else 5)
        l_null = (
            -float((0.5 * (test**2).sum(1) + math.log(2 * math.pi)).mean()) / LOG2
        )  # log2 N(x; 0, I), x standardised
        rows += [
            Row(
                "diffusion_sohl",
                "Swiss roll: test bound K",
                K,
                "bits",
                ">= 2.35",
                K >= 2.35,
                "Sohl-Dickstein et al. 2015, table 1: 2.35 bits",
                {"T": diff.T, "train_s": seconds, "L_null": l_null},
            ),
            Row(
                "diffusion_sohl",
                "Swiss roll: K - L_null (isotropic Gaussian)",
                K - l_null,
                "bits",
                ">= 6.45",
                K - l_null >= 6.45,
                "Sohl-Dickstein et al. 2015, table 1: 6.45 bits",
            ),
        ]
        diff, model, test, seconds = fit_heartbeat(quick, g)
        K = bound_bits(diff, model, test, g, repeats=1 if quick else 4)
        ones = test.sum(1)
        l_null = (
            float((ones * math.log(0.2) + (20 - ones) * math.log(0.8)).mean()) / LOG2
        )
        rows += [
            Row(
                "diffusion_sohl",
                "heartbeat: test bound K per sequence",
                K,
                "bits",
                ">= -2.414",
                K >= -2.414,
                "Sohl-Dickstein et al. 2015, table 1: -2.414 bits; optimum "
                f"log2(1/5) = {math.log2(0.2):.3f}",
                {"T": diff.T, "train_s": seconds, "L_null": l_null},
            ),
            Row(
                "diffusion_sohl",
                "heartbeat: K - L_null (independent Bernoulli 1/5)",
                K - l_null,
                "bits",
                "",
                None,
                "optimum log2(1/5) + 20 H(1/5) = 12.117 bits",
            ),
        ]
    return rows


def digits_diffusion(quick: bool, dev, g):
    """A DDPM on dequantized digits, seen through chapter 16's Logit (alpha = 0.01)
    halved; returns (diffusion, model, to_model, train seconds, steps).
    """
    T = 200  # Ho et al.'s linear schedule compressed from 1000 steps
    diff = GaussianDiffusion(linear_betas(T, 5e-4, 0.1), variance="learned").to(dev)
    torch.manual_seed(0)
    model = DenoisingMLP(D_DIGITS, 256, 3, out_dim=2 * D_DIGITS).to(dev)
    k_tr, _, _ = _digits(dev, torch.Generator(device=dev).manual_seed(0))
    logit = Logit(D_DIGITS, bound=float(LEVELS), alpha=0.01)

    def to_model(x):  # -> y = logit(...) / 2 and log |dy/dx| (B,)
        z, log_det = logit.forward(x)
        return z / 2, log_det - D_DIGITS * math.log(2)

    seconds, hist = timed(
        fit_diffusion,
        diff,
        model,
        k_tr.float(),
        objective="bound",
        epochs=2 if quick else 300,
        batch_size=100,
        lr=1e-3,
        transform=lambda k, gen: to_model(dequantize(k, generator=gen))[0],
        generator=g,
        quiet=True,
    )
    return diff, model, to_model, seconds, len(hist["loss"])


def diffusion_digits(quick: bool = False) -> list[Row]:
    dev = best_device()
    g = torch.Generator(device=dev).manual_seed(0)
    _, _, x_te = _digits(dev, torch.Generator(device=dev).manual_seed(0))
    flow_rows = [] if quick else flows_digits(quick=False)
    with _threads(1 if dev.type == "cpu" else None):
        diff, model, to_model, seconds, steps = digits_diffusion(quick, dev, g)
        y, log_det = to_model(x_te[:50] if quick else x_te)
        with torch.no_grad():
            nll_y = torch.stack(
                [
                    diff.bound(model, y, generator=g).sum(1)
                    for _ in range(1 if quick else 3)
                ]
            ).mean(0)
        nll = float((nll_y - log_det).mean())  # NLL of x in [0, 17)^64
    rows = [
        Row(
            "diffusion_digits",
            r.what if r.what.startswith("baseline") else f"chapter 16 {r.what}",
            r.value,
            r.unit,
            r.target,
            r.passed,
            r.reference,
            r.notes,
        )
        for r in flow_rows
    ]
    base = [r.value for r in flow_rows if r.what.startswith("baseline")]
    rows += [
        Row(
            "diffusion_digits",
            f"DDPM (T = {diff.T}, MLP 3x256, learned variance, logit pixels): "
            "test bound (NLL)",
            nll,
            "nats",
            "< both baselines" if base else "",
            (nll < min(base)) if base else None,
            "same split and dequantization as flows_digits, same run; Ho et al. "
            "2020 report a bound, not a likelihood, for DDPM too",
            {
                "bits_per_dim": bits_per_dim(nll, D_DIGITS),
                "train_s": seconds,
                "steps": steps,
            },
        ),
        Row(
            "diffusion_digits",
            "DDPM: test bound in bits/dim",
            bits_per_dim(nll, D_DIGITS),
            "bits/dim",
        ),
    ]
    return rows


BENCHMARKS = {"diffusion_sohl": diffusion_sohl, "diffusion_digits": diffusion_digits}
