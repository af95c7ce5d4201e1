"""Sample-based metrics for generators without a likelihood (book §20.14).

Each metric compares a set of model samples with a set of held-out data, directly or
through features phi(x) of a small digit classifier this module trains itself (no
pretrained network can be downloaded here). What each one misses:

* :func:`mmd_test` — a permutation two-sample test of H0: p = q on the MMD (Gretton et
  al., 2012). A small p-value says the samples differ; a large one does not say they
  are equal (the power depends on the sample size and the bandwidths), and a model that
  copies its training set passes it.
* :func:`frechet_distance` — the Fréchet (2-Wasserstein) distance between the Gaussians
  fitted to the two feature sets (the FID of Heusel et al., 2017, on our own features).
  It sees only means and covariances of phi: distributions with the same first two
  moments in feature space score 0, and it folds sample quality and diversity into one
  number. It is biased upwards at small n, so compare equal sample sizes.
* :func:`precision_recall` — Kynkäänniemi et al. (2019): precision is the fraction of
  samples within the k-NN balls of the data (quality), recall the fraction of data
  within the k-NN balls of the samples (coverage). They separate the two failure modes
  but ignore how densely each region is covered (a mode covered by one sample counts),
  depend on k and are sensitive to outliers, which inflate the balls.
* All feature-based metrics are blind to what the classifier ignores: it was trained to
  tell digits apart, so details that do not help with that barely move phi.

Notation: x (N, D) data, y (M, D) samples; phi(x) (N, F) features; mu, Sigma their mean
and covariance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dgmlib.adversarial.mmd import check_bandwidths, check_pair, gaussian_kernel, mmd2
from dgmlib.cache import train_or_load

__all__ = [
    "mmd_test",
    "frechet_distance",
    "frechet_gaussians",
    "precision_recall",
    "DigitClassifier",
    "digit_classifier",
    "digit_features",
    "classifier_accuracy",
]


def _check_features(x: Tensor, y: Tensor, fn: str) -> None:
    check_pair(
        x, y, fn, "Compute both with the same feature map (e.g. digit_features)."
    )


# ------------------------------------------------------------------- MMD test
def _permutation_null(K: Tensor, n: int, perms: Tensor, unbiased: bool) -> Tensor:
    """MMD^2 of each relabelling of the pooled sample: the first n indices of each row
    of ``perms`` (P, n + m) play x, the rest y. Quadratic forms in the pooled kernel
    matrix ``K`` (n+m, n+m) instead of P calls to :func:`mmd2` (tested equal). -> (P,)
    """
    total = K.shape[0]
    m = total - n
    a = torch.zeros(perms.shape, dtype=K.dtype, device=K.device)  # (P, n+m)
    a.scatter_(1, perms[:, :n], 1.0)  # a[p, i] = 1 if point i plays x in relabelling p
    b = 1.0 - a
    K0 = K - torch.diag(K.diagonal()) if unbiased else K
    xx = ((a @ K0) * a).sum(1)
    yy = ((b @ K0) * b).sum(1)
    xy = ((a @ K) * b).sum(1)
    if unbiased:
        return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)
    return xx / n**2 + yy / m**2 - 2 * xy / (n * m)


def mmd_test(
    x: Tensor,
    y: Tensor,
    *,
    bandwidths,
    n_permutations: int = 500,
    generator: torch.Generator | None = None,
    unbiased: bool = True,
) -> tuple[float, float]:
    """Permutation two-sample test of H0: p = q with the MMD^2 statistic (Gretton et
    al., 2012, section 5).

    Under H0 the pooled sample is exchangeable, so the statistic of a random relabelling
    of the pooled points is a draw from its null distribution. The p-value is
    (1 + #{null >= observed}) / (1 + n_permutations), which is valid (P(p <= alpha) <=
    alpha under H0) for any number of permutations.

    Parameters
    ----------
    x : Tensor, shape (N, D);  y : Tensor, shape (M, D)
    bandwidths : kernel widths of :func:`~dgmlib.adversarial.mmd.gaussian_kernel`
    n_permutations : int >= 1
    generator : torch.Generator for the permutations

    Returns
    -------
    (statistic, p_value) : the observed MMD^2 (floats)
    """
    _check_features(x, y, "mmd_test")
    bandwidths = check_bandwidths(bandwidths)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int):
        raise ValueError(f"n_permutations must be an int; got {n_permutations!r}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    y = y.to(x)
    n, m = x.shape[0], y.shape[0]
    # [maths:metrics.mmd_test]
    statistic = mmd2(x, y, bandwidths=bandwidths, unbiased=unbiased)
    pooled = torch.cat([x, y])  # (n+m, D)
    K = gaussian_kernel(pooled, pooled, bandwidths)  # (n+m, n+m)
    where = generator.device if generator is not None else torch.device("cpu")
    perms = torch.stack(
        [
            torch.randperm(n + m, generator=generator, device=where)
            for _ in range(n_permutations)
        ]
    ).to(x.device)  # (P, n+m) random relabellings
    null = _permutation_null(K, n, perms, unbiased)  # (P,) MMD^2 under H0
    p_value = (1 + (null >= statistic).sum()) / (1 + n_permutations)
    # [/maths:metrics.mmd_test]
    return float(statistic), float(p_value)


# ------------------------------------------------------------ Fréchet distance
def _sqrtm_psd(S: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    w, V = torch.linalg.eigh(S)
    return (V * w.clamp_min(0).sqrt()) @ V.T


def frechet_gaussians(mu1: Tensor, S1: Tensor, mu2: Tensor, S2: Tensor) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, S1) and N(mu2, S2)
    (Dowson & Landau, 1982):
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2}).
    """
    mu1, S1, mu2, S2 = (t.to(torch.float64) for t in (mu1, S1, mu2, S2))
    # [maths:metrics.frechet]
    root1 = _sqrtm_psd(S1)
    cross = _sqrtm_psd(root1 @ S2 @ root1)  # (S1^1/2 S2 S1^1/2)^1/2
    d2 = ((mu1 - mu2) ** 2).sum() + torch.trace(S1 + S2 - 2 * cross)
    # [/maths:metrics.frechet]
    return float(d2)


def frechet_distance(x: Tensor, y: Tensor) -> float:
    """Fréchet distance (squared, as FID reports it; Heusel et al., 2017) between the
    Gaussians fitted by moments to the rows of ``x`` (N, F) and ``y`` (M, F).
    """
    _check_features(x, y, "frechet_distance")
    if min(x.shape[0], y.shape[0]) < 2:
        raise ValueError("frechet_distance needs at least 2 points in each set")
    x, y = x.to(torch.float64), y.to(x.device, torch.float64)
    return frechet_gaussians(x.mean(0), x.T.cov(), y.mean(0), y.T.cov())


# ----------------------------------------------------------- precision/recall
def _knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of x to its k-th nearest other row. (N, F) -> (N,)"""
    d = torch.cdist(x, x)  # (N, N), d_ii = 0
    return d.kthvalue(k + 1, dim=1).values  # k + 1: the point itself is the first


def _coverage(points: Tensor, centres: Tensor, radii: Tensor) -> float:
    """Fraction of ``points`` inside at least one ball (centres, radii)."""
    d = torch.cdist(points, centres)  # (M, N)
    return float((d <= radii[None, :]).any(1).to(torch.float64).mean())


def precision_recall(real: Tensor, fake: Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019).

    The manifold of a set is the union of balls around its points, each with the radius
    of the distance to that point's k-th nearest neighbour in the set. Precision: the
    fraction of ``fake`` inside the manifold of ``real``; recall: the fraction of
    ``real`` inside the manifold of ``fake``. (N, F), (M, F) -> (precision, recall).
    """
    _check_features(real, fake, "precision_recall")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"precision_recall: k must be an int >= 1; got {k!r}")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(
            f"precision_recall with k = {k} needs more than {k} points in each set; "
            f"got {real.shape[0]} and {fake.shape[0]}"
        )
    real, fake = real.to(torch.float64), fake.to(real.device, torch.float64)
    # [maths:metrics.precision_recall]
    precision = _coverage(fake, real, _knn_radii(real, k))
    recall = _coverage(real, fake, _knn_radii(fake, k))
    # [/maths:metrics.precision_recall]
    return precision, recall


# ------------------------------------------------------------ digit features
class DigitClassifier(nn.Module):
    """An MLP on 8x8 digits in [0, 1]: 64 -> 256 -> 64 (features) -> 10 logits.

    :meth:`features` is the penultimate layer (after its ReLU), the phi(x) the metrics
    use.
    """

    def __init__(self, n_features: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, n_features), nn.ReLU()
        )
        self.head = nn.Linear(n_features, 10)

    def features(self, x: Tensor) -> Tensor:  # (B, 64) -> (B, F)
        if x.ndim != 2 or x.shape[1] != 64:
            raise ValueError(
                f"DigitClassifier expects flat 8x8 digits of shape (B, 64); got "
                f"{tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:  # (B, 64) -> (B, 10) logits
        return self.head(self.features(x))


def _digits_split():
    """The grey-level digits split as chapter 12 splits them: a fixed permutation
    (seed 0), the first 1,500 for training, the other 297 held out.
    """
    from dgmlib.data import load_digits

    x, y = load_digits()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:1500]], y[perm[:1500]], x[perm[1500:]], y[perm[1500:]]


def _train_classifier(clf: DigitClassifier, epochs: int = 60) -> None:
    x, y, _, _ = _digits_split()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), 100):
            idx = order[start : start + 100]
            xb = x[idx] + 0.05 * torch.randn(x[idx].shape, generator=g)  # light noise
            loss = nn.functional.cross_entropy(clf(xb.clamp(0, 1)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def digit_classifier(*, epochs: int = 60) -> DigitClassifier:
    """The digit classifier behind :func:`digit_features`, trained on the 1,500
    training digits of chapter 12's split (a few seconds on a CPU, one thread) and
    cached with :func:`dgmlib.cache.train_or_load`. On the CPU, float32, eval mode.
    """
    clf = train_or_load(
        "digit-classifier",
        {"epochs": epochs, "hidden": 256, "features": 64, "seed": 0, "noise": 0.05},
        build=lambda: DigitClassifier(64),
        train=lambda m: _train_classifier(m, epochs),
    )
    return clf.eval()


def digit_features(x: Tensor, classifier: DigitClassifier | None = None) -> Tensor:
    """phi(x): the classifier's penultimate features of flat 8x8 digits in [0, 1].
    (B, 64) -> (B, 64) on x's device, no gradients.
    """
    clf = classifier if classifier is not None else digit_classifier()
    p = next(clf.parameters())
    with torch.no_grad():
        return clf.features(x.to(p)).to(x.device)


def classifier_accuracy(classifier: DigitClassifier) -> float:
    """Accuracy of ``classifier`` on the 297 held-out digits of chapter 12's split."""
    _, _, x, y = _digits_split()
    p = next(classifier.parameters())
    with torch.no_grad():
        pred = classifier(x.to(p)).argmax(1).cpu()
    return float((pred == y).to(torch.float64).mean())
