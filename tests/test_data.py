"""Tests of dgmlib.data and dgmlib.checks. No network: downloads are served from file://
URLs.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from dgmlib import data
from dgmlib.checks import check_binary, check_shape
from dgmlib.data import DataIntegrityError, DatasetUnavailableError

DT = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- digits,
# binarize
def test_digits_shapes_ranges_dtypes():
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(torch.unique(y), torch.arange(10))
    assert torch.allclose(x * 16, (x * 16).round())  # 17 grey levels
    x64, _ = data.load_digits(dtype=torch.float64)
    assert x64.dtype == torch.float64


def test_digits_threshold():
    x, _ = data.load_digits()
    v, _ = data.load_digits(binarize="threshold", threshold=0.5)
    assert set(v.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(v, (x > 0.5).float())


def test_digits_stochastic_mean_and_reproducibility():
    x, _ = data.load_digits()
    v1, _ = data.load_digits(binarize="stochastic", generator=gen(1))
    v2, _ = data.load_digits(binarize="stochastic", generator=gen(1))
    v3, _ = data.load_digits(binarize="stochastic", generator=gen(2))
    assert torch.equal(v1, v2) and not torch.equal(v1, v3)
    assert set(v1.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(v1[x == 0] == 0) and torch.all(
        v1[x == 1] == 1
    )  # Bernoulli(0), Bernoulli(1)
    # E[mean v] = mean x; independent draws: SE = sqrt(sum p(1-p)) / N. 5 SE: failure
    # rate ~6e-7.
    x64 = x.double()
    se = (x64 * (1 - x64)).sum().sqrt() / x.numel()
    assert abs(v1.double().mean() - x64.mean()) < 5 * se
    # the same per pixel (64 tests): mean over 1,797 images, 5 SE each
    p = x64.mean(0)
    se_pixel = ((x64 * (1 - x64)).sum(0).sqrt() / len(x)).clamp_min(1e-12)
    assert torch.all((v1.double().mean(0) - p).abs() <= 5 * se_pixel + 1e-12)


def test_digits_errors():
    with pytest.raises(ValueError, match="seed"):
        data.load_digits(binarize="stochastic")
    with pytest.raises(ValueError, match="threshold"):
        data.load_digits(binarize="otsu")


def test_binarize_schemes_and_errors():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.7, 1.0]])
    assert torch.equal(data.binarize(x), torch.tensor([[0.0, 0, 0, 1, 1]]))
    assert torch.equal(
        data.binarize(x, threshold=0.1), torch.tensor([[0.0, 1, 1, 1, 1]])
    )
    a = data.binarize(x.expand(1000, -1), "stochastic", generator=gen(3))
    b = data.binarize(x.expand(1000, -1), "stochastic", generator=gen(3))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert torch.all(a[:, 0] == 0) and torch.all(a[:, -1] == 1)
    assert data.binarize(torch.tensor([0, 1]), "threshold").dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[0, 1\].*got values in \[-0.5, 1\]"):
        data.binarize(torch.tensor([-0.5, 1.0]))
    with pytest.raises(ValueError, match="got values in"):
        data.binarize(torch.tensor([0.5, 2.0]), "stochastic", generator=gen())
    with pytest.raises(ValueError, match="scheme"):
        data.binarize(x, "dynamic")


def test_as_images():
    x, _ = data.load_digits()
    assert data.as_images(x, (8, 8)).shape == (1797, 8, 8)
    with pytest.raises(ValueError, match="needs 784"):
        data.as_images(x, (28, 28))


# --------------------------------------------------------------------------- checks
def test_check_binary():
    check_binary(torch.tensor([0.0, 1.0, 1.0]))
    check_binary(torch.tensor([True, False]))
    check_binary(torch.empty(0, 3))
    msg = (
        r"BernoulliRBM expects binary v in \{0,1\}; got values in \[-0.3, 1.7\]"
        r".*Binarize first: dgmlib.data.binarize\(v\)"
    )
    with pytest.raises(ValueError, match=msg):
        check_binary(torch.tensor([0.0, -0.3, 1.7]), name="v", model="BernoulliRBM")
    with pytest.raises(
        ValueError, match=r"e.g. 0.5"
    ):  # grey values inside [0, 1] fail too
        check_binary(torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError):
        check_binary(torch.tensor([0.0, float("nan")]))


def test_check_shape():
    check_shape(torch.zeros(5, 784), 2, 784)
    check_shape(torch.zeros(5, 3, 7), 3)
    with pytest.raises(
        ValueError, match=r"expects v of shape \(B, 784\); got shape \(5, 64\)"
    ):
        check_shape(torch.zeros(5, 64), 2, 784, name="v")
    with pytest.raises(ValueError, match="unsqueeze"):
        check_shape(torch.zeros(784), 2, 784)
    with pytest.raises(ValueError, match="reshape"):
        check_shape(torch.zeros(5, 28, 28), 2, 784)


# --------------------------------------------------------------------------- 2-D toys
@pytest.mark.parametrize("name", sorted(data.TOY_2D))
def test_toy_2d_shape_determinism(name):
    x = data.toy_2d(name, 513, generator=gen(0))
    assert x.shape == (513, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.abs().max() < 6
    assert torch.equal(x, data.toy_2d(name, 513, generator=gen(0)))
    assert not torch.equal(x, data.toy_2d(name, 513, generator=gen(1)))
    assert data.toy_2d(name, 0, generator=gen()).shape == (0, 2)


def test_toy_2d_geometry():
    g = gen(0)
    r = data.toy_2d("circles", 2000, generator=g, noise=0.0).norm(dim=1)
    assert torch.allclose(r, torch.where(r > 2.25, 3.0, 1.5), atol=1e-5)
    x = data.toy_2d("eight_gaussians", 2000, generator=g, noise=0.0)
    assert len(torch.unique(x.round(decimals=4), dim=0)) == 8
    x = data.toy_2d("checkerboard", 4000, generator=g)
    cell = torch.floor(
        x / 2
    ).long()  # 4x4 board of 2x2 cells; points only on one colour
    assert torch.all((cell[:, 0] + cell[:, 1]) % 2 == 0)


def _spiral_uniform_in_t(n, g, noise):
    """Broken variant of the spiral: t uniform along the arm instead of sqrt-uniform."""
    t = torch.rand(n, generator=g) * 3 * math.pi
    sign = 1 - 2 * torch.randint(2, (n,), generator=g)
    return sign[:, None] * torch.stack([-t * t.cos(), t * t.sin()], 1) / 3


@pytest.mark.parametrize("variant", ["correct", "uniform_in_t"])
def test_toy_2d_geometry_of_the_other_five(variant, monkeypatch):
    """Noise-free draws lie on the curves each sampler's comment describes, and where
    the position along the curve is random its law is checked: KS p < 1e-4 fails (false
    alarm 1e-4 per statistic, four of them); the counts per component are within 5
    binomial sds. The broken spiral (t uniform along the arm) is caught by its KS.
    """
    if variant == "uniform_in_t":
        monkeypatch.setitem(data.TOY_2D, "spiral", (_spiral_uniform_in_t, 0.1))
    n, g = 4000, gen(3)

    def near(a, b):
        return torch.allclose(a, b, atol=1e-4)

    def binomial_ok(count, p):
        return abs(count - n * p) < 5 * (n * p * (1 - p)) ** 0.5

    # moons: radius-2 half circles about (-1, -0.5) (upper) and (1, 0.5) (lower)
    x = data.toy_2d("moons", n, generator=g, noise=0.0).double()
    upper = (x - torch.tensor([-1.0, -0.5], dtype=DT)).norm(dim=1)
    lower = (x - torch.tensor([1.0, 0.5], dtype=DT)).norm(dim=1)
    on_upper = (upper - 2).abs() < 1e-4
    assert bool((on_upper | ((lower - 2).abs() < 1e-4)).all())
    assert bool(
        (x[on_upper, 1] >= -0.5 - 1e-4).all() and (x[~on_upper, 1] <= 0.5 + 1e-4).all()
    )
    assert binomial_ok(int(on_upper.sum()), 0.5)
    # rings: radii 1..4, equally often, angles uniform
    x = data.toy_2d("rings", n, generator=g, noise=0.0).double()
    r = x.norm(dim=1)
    assert near(r, r.round())
    assert all(binomial_ok(int((r.round() == k).sum()), 0.25) for k in (1, 2, 3, 4))
    angle = (torch.atan2(x[:, 1], x[:, 0]) + math.pi) / (2 * math.pi)
    assert stats.kstest(angle.numpy(), "uniform").pvalue > 1e-4
    # spiral: sign * (-t cos t, t sin t) / 3 with t = 3 pi sqrt(U), so (t / 3 pi)^2 ~ U
    x = data.toy_2d("spiral", n, generator=g, noise=0.0).double()
    t = 3 * x.norm(dim=1)
    arm = torch.stack([-t * t.cos(), t * t.sin()], 1) / 3
    assert bool(
        ((x - arm).abs().amax(1).lt(1e-4) | (x + arm).abs().amax(1).lt(1e-4)).all()
    )
    spiral_p = stats.kstest(((t / (3 * math.pi)) ** 2).numpy(), "uniform").pvalue
    assert (spiral_p > 1e-4) == (variant == "correct"), spiral_p
    # swiss roll: (t cos t, t sin t) / 5 with t uniform on [1.5 pi, 4.5 pi]
    x = data.toy_2d("swiss_roll", n, generator=g, noise=0.0).double()
    t = 5 * x.norm(dim=1)
    assert near(x, torch.stack([t * t.cos(), t * t.sin()], 1) / 5)
    u = (t / math.pi - 1.5) / 3
    assert stats.kstest(u.numpy(), "uniform").pvalue > 1e-4
    # pinwheel, no tangential noise: 2 f (cos a, sin a), f ~ N(1, 0.3^2),
    # a = 2 pi arm / 5 + 0.25 exp(f); |x| / 2 = |f| (f < 0 about 4e-4 of the time)
    x = data.toy_2d("pinwheel", n, generator=g, noise=0.0).double()
    r = x.norm(dim=1) / 2
    phi = torch.atan2(x[:, 1], x[:, 0])
    arm_pos = (phi - 0.25 * r.exp()) / (2 * math.pi / 5)
    arm_neg = (phi - math.pi - 0.25 * (-r).exp()) / (2 * math.pi / 5)
    pos = (arm_pos - arm_pos.round()).abs() < 1e-4
    assert bool((pos | ((arm_neg - arm_neg.round()).abs() < 1e-4)).all())
    arm = torch.where(pos, arm_pos, arm_neg).round() % 5
    assert all(binomial_ok(int((arm == k).sum()), 0.2) for k in range(5))
    folded = stats.foldnorm(1 / 0.3, scale=0.3)  # the law of |f|
    assert stats.kstest(r.numpy(), folded.cdf).pvalue > 1e-4


def test_toy_2d_errors():
    with pytest.raises(ValueError, match="unknown dataset 'banana'") as err:
        data.toy_2d("banana", 10, generator=gen())
    assert all(name in str(err.value) for name in data.TOY_2D)
    with pytest.raises(ValueError, match="noise"):
        data.toy_2d("moons", 10, generator=gen(), noise=-1.0)
    with pytest.raises(TypeError):
        data.toy_2d("moons", 10)  # generator is required


# --------------------------------------------------------------------------- bars and
# stripes
@pytest.mark.parametrize("side", [1, 2, 3, 4])
def test_bars_and_stripes(side):
    v = data.bars_and_stripes(side)
    assert v.shape == (2 * 2**side - 2, side * side) and v.dtype == torch.float32
    assert set(v.unique().tolist()) <= {0.0, 1.0}
    assert len(torch.unique(v, dim=0)) == len(v)  # all distinct
    img = v.reshape(-1, side, side)
    rows_constant = (img == img[:, :, :1]).flatten(1).all(1)
    cols_constant = (img == img[:, :1, :]).flatten(1).all(1)
    assert torch.all(rows_constant | cols_constant)
    with pytest.raises(ValueError, match="side"):
        data.bars_and_stripes(0)


# --------------------------------------------------------------------------- binarized
# MNIST
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_DIR = Path(os.environ.get("DGMLIB_DATA_DIR") or SHARED)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No DGMLIB_DATA_DIR, the user cache under tmp_path, downloads pointed at a missing
    folder.
    """
    monkeypatch.delenv("DGMLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("DGMLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DGMLIB_MNIST_URL", (tmp_path / "nowhere").as_uri())
    monkeypatch.setenv("DGMLIB_QUIET", "1")
    return tmp_path


@pytest.fixture
def fake(isolated, monkeypatch):
    """A tiny fake binarized MNIST served as .amat files; its hashes patched into
    MNIST_SHA256.
    """
    rng = np.random.default_rng(0)
    arrays = {
        s: (rng.random((n, 784)) < 0.2).astype(np.uint8)
        for s, n in [("train", 7), ("valid", 3), ("test", 2)]
    }
    src = isolated / "src"
    src.mkdir()
    for split, a in arrays.items():
        lines = [" ".join(map(str, row)) for row in a]
        (src / f"binarized_mnist_{split}.amat").write_text("\n".join(lines) + "\n")
    hashes = {s: hashlib.sha256(a.tobytes()).hexdigest() for s, a in arrays.items()}
    monkeypatch.setattr(data, "MNIST_SHA256", hashes)
    monkeypatch.setenv("DGMLIB_MNIST_URL", src.as_uri())
    return arrays


def cache_files(root: Path) -> list[str]:
    folder = root / "cache" / "data"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.skipif(
    not (REAL_DIR / "binarized_mnist.npz").is_file(),
    reason=f"no binarized_mnist.npz in {REAL_DIR} (set DGMLIB_DATA_DIR to run it)",
)
def test_real_binarized_mnist_verifies(isolated, monkeypatch):
    monkeypatch.setenv("DGMLIB_DATA_DIR", str(REAL_DIR))
    assert data.binarized_mnist_available()
    v = data.load_binarized_mnist("train", download=False)
    assert v.shape == (50000, 784) and v.dtype == torch.float32
    assert abs(v.double().mean().item() - 0.130562) < 1e-6
    assert data.load_binarized_mnist(
        "test", download=False, dtype=torch.uint8
    ).shape == (10000, 784)
    assert (
        cache_files(isolated) == []
    )  # found in DGMLIB_DATA_DIR: nothing downloaded or cached


def test_fake_download_verifies_and_caches(fake, isolated, monkeypatch):
    assert not data.binarized_mnist_available()
    v = data.load_binarized_mnist("valid")
    assert v.shape == (3, 784) and torch.equal(
        v, torch.from_numpy(fake["valid"]).float()
    )
    assert cache_files(isolated) == ["binarized_mnist.npz"]  # no temporary files left
    assert data.binarized_mnist_available()

    def no_download(*args, **kwargs):
        raise AssertionError("should load from the cache, not download")

    monkeypatch.setattr(data, "_download", no_download)
    assert torch.equal(
        data.load_binarized_mnist("train"), torch.from_numpy(fake["train"]).float()
    )
    assert data.load_binarized_mnist("test", download=False).shape == (2, 784)


def test_lookup_order_data_dir_first(fake, isolated, monkeypatch):
    folder = isolated / "mine"
    folder.mkdir()
    np.savez(folder / "binarized_mnist.npz", **fake)
    monkeypatch.setattr(
        data, "_download", None
    )  # any download attempt would fail loudly
    assert data.load_binarized_mnist("test", data_dir=folder).shape == (2, 784)
    monkeypatch.setenv("DGMLIB_DATA_DIR", str(folder))
    assert data.load_binarized_mnist("test").shape == (2, 784)
    assert cache_files(isolated) == []


def test_truncated_npz_is_refused(fake, isolated):
    path = isolated / "cache" / "data" / "binarized_mnist.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, **fake)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataIntegrityError, match="truncated") as err:
        data.load_binarized_mnist(
            "train"
        )  # a download would succeed, but the file is not skipped
    assert str(path) in str(err.value) and "Delete" in str(err.value)
    with pytest.warns(UserWarning, match="truncated"):
        assert not data.binarized_mnist_available()
    assert cache_files(isolated) == [
        "binarized_mnist.npz"
    ]  # left for the user to inspect


def test_wrong_hash_is_refused(fake, isolated, monkeypatch):
    folder = isolated / "mine"
    folder.mkdir()
    tampered = dict(fake, test=1 - fake["test"])
    np.savez(folder / "binarized_mnist.npz", **tampered)
    monkeypatch.setenv("DGMLIB_DATA_DIR", str(folder))
    assert data.load_binarized_mnist("train").shape == (
        7,
        784,
    )  # other splits still verify
    with pytest.raises(DataIntegrityError) as err:
        data.load_binarized_mnist("test")
    msg = str(err.value)
    assert data.MNIST_SHA256["test"] in msg and "found" in msg and str(folder) in msg
    assert (
        hashlib.sha256(tampered["test"].tobytes()).hexdigest() in msg
        and "Delete" in msg
    )


def test_failed_download_explains_and_leaves_nothing(isolated):
    with pytest.raises(DatasetUnavailableError) as err:
        data.load_binarized_mnist("train")
    msg = str(err.value)
    for needed in [
        "DGMLIB_DATA_DIR",
        "load_digits",
        (isolated / "nowhere").as_uri(),
        str(isolated / "cache" / "data" / "binarized_mnist.npz"),
    ]:
        assert needed in msg
    assert cache_files(isolated) == []
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        data.load_binarized_mnist("train", download=False)


def test_partial_or_corrupt_download_leaves_nothing(fake, isolated):
    src = isolated / "src"
    (
        src / "binarized_mnist_test.amat"
    ).unlink()  # train and valid arrive, test does not
    with pytest.raises(DatasetUnavailableError, match="binarized_mnist_test.amat"):
        data.load_binarized_mnist("train")
    assert cache_files(isolated) == []
    text = "\n".join(" ".join(map(str, row)) for row in fake["test"])
    (src / "binarized_mnist_test.amat").write_text(
        text[: 3 * len(text) // 4]
    )  # cut short
    with pytest.raises(DataIntegrityError, match="line 2: expected 784"):
        data.load_binarized_mnist("train")
    assert cache_files(isolated) == []
    (src / "binarized_mnist_test.amat").write_text(
        text.replace("0", "1", 1)
    )  # one pixel flipped
    with pytest.raises(DataIntegrityError, match="expected SHA-256"):
        data.load_binarized_mnist("train")
    assert cache_files(isolated) == []
    assert not data.binarized_mnist_available()


def test_bad_split():
    with pytest.raises(ValueError, match="valid"):
        data.load_binarized_mnist("validation")
