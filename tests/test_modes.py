"""Tests for dgmlib.evaluate.modes (mode_coverage and the ring / grid toys).

The reference is counting by hand on constructed samples whose distances to the modes
are known exactly. Float64.
"""

import math

import pytest
import torch

from dgmlib.evaluate import modes
from dgmlib.evaluate.modes import (
    grid_means,
    mode_coverage,
    ring_means,
    toy_mixture,
)

DT = torch.float64
STD = 0.01


def constructed_samples() -> torch.Tensor:
    """Ring-8 modes, std 0.01: 10 samples on mode 0, 5 at 2 std from mode 1 (high
    quality), 5 at 4 std from mode 2 (not), 5 at the origin (far from every mode).
    """
    mu = ring_means(8, 1.0)
    out = [mu[0].repeat(10, 1)]
    out.append(mu[1] + torch.tensor([2 * STD, 0.0], dtype=DT).repeat(5, 1))
    out.append(mu[2] * (1 + 4 * STD))  # radially outwards, distance 4 std
    out[-1] = out[-1].repeat(5, 1)
    out.append(torch.zeros(5, 2, dtype=DT))
    return torch.cat(out)


@pytest.mark.parametrize("variant", ["correct", "squared_distance"])
def test_mode_coverage_counts_constructed_samples(variant, monkeypatch):
    if variant == "squared_distance":  # broken twin: threshold applied to ||x - mu||^2
        cdist = torch.cdist
        monkeypatch.setattr(modes.torch, "cdist", lambda a, b: cdist(a, b) ** 2)
    res = mode_coverage(constructed_samples(), ring_means(8, 1.0), STD)
    p = torch.tensor([10 / 15, 5 / 15], dtype=DT)
    kl = float((p * (8 * p).log()).sum())  # by hand: KL(p_hat || uniform over 8)
    ok = (
        res.modes == 2
        and res.counts == (10, 5, 0, 0, 0, 0, 0, 0)
        and res.high_quality == pytest.approx(15 / 25, abs=1e-12)
        and res.reverse_kl == pytest.approx(kl, abs=1e-12)
    )
    assert ok == (variant == "correct"), res
    modes_, hq, rkl = res  # unpacks as a triple
    assert (modes_, hq, rkl) == (res.modes, res.high_quality, res.reverse_kl)


def test_mode_coverage_of_the_true_mixture_and_of_a_collapsed_one():
    g = torch.Generator().manual_seed(0)
    for name, k in (("ring", 8), ("grid", 25)):
        x, mu, std = toy_mixture(name, 2500, generator=g)
        res = mode_coverage(x, mu, std)
        # within 3 std in 2-D: P(chi2_2 <= 9) = 1 - exp(-4.5) = 0.9889
        assert res.modes == k and abs(res.high_quality - (1 - math.exp(-4.5))) < 0.01
        assert res.reverse_kl < 0.02
        one = mode_coverage(mu[:1].repeat(100, 1), mu, std)  # all on one mode
        assert one.modes == 1 and one.reverse_kl == pytest.approx(math.log(k))
    none = mode_coverage(torch.full((4, 2), 10.0), ring_means(), STD)
    assert none.modes == 0 and none.high_quality == 0 and none.reverse_kl == math.inf


def test_protocol_mixtures():
    mu = ring_means(8, 1.0)
    assert torch.allclose(mu.norm(dim=1), torch.ones(8, dtype=DT))
    assert grid_means().shape == (25, 2) and set(grid_means()[:, 0].tolist()) == {
        -4.0,
        -2.0,
        0.0,
        2.0,
        4.0,
    }
    x, means, std = toy_mixture("grid", 10, generator=torch.Generator().manual_seed(1))
    assert x.shape == (10, 2) and std == 0.05 and means.shape == (25, 2)


def test_mode_coverage_rejects_bad_input():
    with pytest.raises(ValueError, match="same D"):
        mode_coverage(torch.zeros(5, 3), ring_means(), STD)
    with pytest.raises(ValueError, match="std > 0"):
        mode_coverage(torch.zeros(5, 2), ring_means(), 0.0)
    with pytest.raises(ValueError, match="name must be one of"):
        toy_mixture("spiral", 10)
