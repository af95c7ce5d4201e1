"""Tests for dgmlib.evaluate.metrics: Fréchet distance, precision/recall, the digit
classifier's features.

References: scipy.linalg.sqrtm for the Fréchet distance between known Gaussians; point
sets built so that the k-NN balls are known by hand; a brute-force double loop over
points and balls. Float64, fixed seeds.
"""

import numpy as np
import pytest
import scipy.linalg
import torch

from dgmlib.evaluate import (
    classifier_accuracy,
    digit_classifier,
    digit_features,
    frechet_distance,
    frechet_gaussians,
    metrics,
    precision_recall,
)

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_cov(dim, g):
    A = torch.randn(dim, dim, generator=g, dtype=DT)
    return A @ A.T + 0.1 * torch.eye(dim, dtype=DT)


def frechet_scipy(mu1, S1, mu2, S2):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) with scipy's general sqrtm."""
    root = scipy.linalg.sqrtm(S1.numpy() @ S2.numpy()).real
    return float(((mu1 - mu2) ** 2).sum()) + float(
        np.trace(S1.numpy() + S2.numpy() - 2 * root)
    )


def frechet_commuting_roots(mu1, S1, mu2, S2):
    """Broken: tr(S1 + S2 - 2 S1^{1/2} S2^{1/2}), right only when S1 S2 = S2 S1."""
    r1, r2 = metrics._sqrtm_psd(S1), metrics._sqrtm_psd(S2)
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(S1 + S2 - 2 * r1 @ r2))


FRECHET_VARIANTS = {
    "correct": frechet_gaussians,
    "commuting_roots": frechet_commuting_roots,
}


@pytest.mark.parametrize("variant", ["correct", "commuting_roots"])
def test_frechet_gaussians_closed_form(variant):
    g = gen(0)
    mu1, mu2 = (
        torch.randn(4, generator=g, dtype=DT),
        torch.randn(4, generator=g, dtype=DT),
    )
    S1, S2 = random_cov(4, g), random_cov(4, g)
    got = FRECHET_VARIANTS[variant](mu1, S1, mu2, S2)
    ok = abs(got - frechet_scipy(mu1, S1, mu2, S2)) < 1e-8
    assert ok == (variant == "correct"), got
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    one = frechet_gaussians(
        torch.tensor([1.0]),
        torch.tensor([[4.0]]),
        torch.tensor([-2.0]),
        torch.tensor([[9.0]]),
    )
    assert one == pytest.approx(9 + 1, abs=1e-12)


def test_frechet_distance_of_samples_approaches_closed_form():
    # Seeds 0-19 (the covariances drawn from each seed, closed forms 2.6-13.8): errors
    # -0.22 to +0.19 with 20,000 points per set (tolerance 0.5: false alarms 0/20).
    g = gen(1)
    mu1, mu2 = torch.zeros(3, dtype=DT), torch.tensor([1.0, -1.0, 0.5], dtype=DT)
    S1, S2 = random_cov(3, g), random_cov(3, g)
    L1, L2 = torch.linalg.cholesky(S1), torch.linalg.cholesky(S2)
    x = mu1 + torch.randn(20_000, 3, generator=g, dtype=DT) @ L1.T
    y = mu2 + torch.randn(20_000, 3, generator=g, dtype=DT) @ L2.T
    truth = frechet_scipy(mu1, S1, mu2, S2)
    assert abs(frechet_distance(x, y) - truth) < 0.5, (frechet_distance(x, y), truth)
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)


# --------------------------------------------------------- precision/recall
def knn_radii_self_included(x, k):
    """Broken: the k-th nearest neighbour counted with the point itself (radius of
    the (k-1)-th other point; 0 for k = 1).
    """
    return torch.cdist(x, x).kthvalue(k, dim=1).values


def pr_brute_force(real, fake, k):
    def radii(a):
        out = []
        for i in range(len(a)):
            d = sorted(float((a[i] - a[j]).norm()) for j in range(len(a)) if j != i)
            out.append(d[k - 1])
        return out

    def covered(points, centres, r):
        hits = [
            any(float((p - c).norm()) <= rc for c, rc in zip(centres, r))
            for p in points
        ]
        return sum(hits) / len(hits)

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


@pytest.mark.parametrize("variant", ["correct", "self_included"])
def test_precision_recall_on_constructed_sets(variant, monkeypatch):
    if variant == "self_included":
        monkeypatch.setattr(metrics, "_knn_radii", knn_radii_self_included)
    # real: ten points on a line, spacing 1, so every k = 1 ball has radius 1. fake:
    # three points near the real ones, one far away, and a tight cluster of two.
    real = torch.arange(10, dtype=DT)[:, None] * torch.tensor([[1.0, 0.0]], dtype=DT)
    fake = torch.tensor(
        [[0.5, 0.0], [4.2, 0.3], [8.9, -0.4], [30.0, 30.0], [2.0, 5.0], [2.1, 5.0]],
        dtype=DT,
    )
    precision, recall = precision_recall(real, fake, k=1)
    # precision: 3 of 6 fake points lie within 1 of a real point. recall: the fake
    # balls (radius = distance to the nearest other fake point) around (0.5, 0),
    # (4.2, 0.3), (8.9, -0.4) have radii 3.71, 3.71, 4.72 and cover every real point;
    # (2, 5)'s ball (radius 0.1) covers none.
    ok = precision == pytest.approx(0.5) and recall == pytest.approx(1.0)
    assert ok == (variant == "correct"), (precision, recall)
    # and on random sets, the brute-force double loop for k = 3
    g = gen(2)
    a = torch.randn(40, 3, generator=g, dtype=DT)
    b = 0.5 + 1.5 * torch.randn(30, 3, generator=g, dtype=DT)
    got = precision_recall(a, b, k=3)
    ok = got == pytest.approx(pr_brute_force(a, b, 3), abs=1e-12)
    assert ok == (variant == "correct"), got


def test_precision_recall_separate_quality_from_coverage():
    g = gen(3)
    real = torch.randn(500, 2, generator=g, dtype=DT)
    half = real[real[:, 0] > 0][:200] + 0.01 * torch.randn(
        200, 2, generator=g, dtype=DT
    )
    p, r = precision_recall(real, half, k=5)  # one half-plane: precise, low recall
    assert p > 0.95 and r < 0.7, (p, r)
    wide = 3 * torch.randn(500, 2, generator=g, dtype=DT)  # too wide: imprecise
    p, r = precision_recall(real, wide, k=5)
    assert p < 0.5 and r > 0.9, (p, r)


# ------------------------------------------------------------- classifier
def test_digit_classifier_trains_in_seconds_and_gives_features(monkeypatch, tmp_path):
    monkeypatch.setenv("DGMLIB_CACHE", "off")
    clf = digit_classifier(epochs=20)
    # 20 epochs (seed 0, a deterministic run): about 0.98 on the 297 held-out digits
    assert classifier_accuracy(clf) > 0.94
    x = torch.rand(7, 64)
    assert digit_features(x, clf).shape == (7, 64)


def test_bad_input_is_rejected():
    x = torch.randn(20, 3, dtype=DT)
    with pytest.raises(ValueError, match="same number of features"):
        frechet_distance(x, torch.randn(20, 4, dtype=DT))
    with pytest.raises(ValueError, match="same number of features"):
        precision_recall(x, torch.randn(20, 2, dtype=DT))
    with pytest.raises(ValueError, match="needs more than 3 points"):
        precision_recall(x, x[:3], k=3)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        precision_recall(x, x, k=0)
    with pytest.raises(ValueError, match=r"shape \(B, 64\)"):
        digit_features(torch.rand(5, 63), metrics.DigitClassifier())
