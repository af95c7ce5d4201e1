"""Datasets for the book: always-offline small sets, and binarized MNIST
(download + verify + cache).

Notation
--------
x : (N, D) tensor      N examples of D pixels (or coordinates), batch first
y : (N,) int64 tensor  class labels, where a dataset has them
v : (N, D) in {0,1}    binary visible vectors, as the energy-based chapters call them

Offline, always: :func:`load_digits` (scikit-learn's 8x8 digits), :func:`toy_2d` (2-D
densities for flows, GANs and diffusion), :func:`bars_and_stripes` (a tiny enumerable
binary set). :func:`load_binarized_mnist` reads the fixed binarization of Salakhutdinov
& Murray (2008); chapters call :func:`binarized_mnist_available` first and fall back to
digits without it.

Binarization is named explicitly, because it changes every likelihood the book reports
(chapter 20 discusses this):

- ``"threshold"``: v = 1[x > threshold]. Deterministic, and the easiest data to model.
- ``"stochastic"``: v ~ Bernoulli(x), drawn once with a seeded generator (a *fixed*
stochastic
  binarization, as for binarized MNIST). Drawing afresh every epoch
  ("dynamic binarization") is a different dataset with different numbers.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgmlib.checks import check_binary, check_shape
from dgmlib.train import progress

__all__ = [
    "load_digits",
    "binarize",
    "toy_2d",
    "TOY_2D",
    "bars_and_stripes",
    "as_images",
    "load_binarized_mnist",
    "binarized_mnist_available",
    "DataIntegrityError",
    "DatasetUnavailableError",
    "MNIST_URL",
    "MNIST_SHA256",
    "check_binary",
    "check_shape",
]

SCHEMES = ("threshold", "stochastic")


# ---------------------------------------------------------------------------
# binarization
def binarize(
    x: Tensor,
    scheme: str = "threshold",
    *,
    threshold: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Binarize intensities ``x`` in [0, 1] by a named scheme.

    Parameters
    ----------
    x : Tensor, any shape
        Intensities in [0, 1].
    scheme : {"threshold", "stochastic"}
        ``"threshold"``: v = 1[x > threshold]. ``"stochastic"``: v ~ Bernoulli(x), one
        draw per entry from ``generator`` (``None`` uses torch's global generator, which
        suits dynamic binarization of minibatches but not a fixed dataset).
    threshold : float
        Cut-off for ``"threshold"``.
    generator : torch.Generator, optional
        Randomness for ``"stochastic"``.

    Returns
    -------
    v : Tensor, same shape as ``x``
        Values in {0, 1}, in ``x``'s floating dtype (float32 for integer or bool input).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"binarize: scheme must be one of {SCHEMES}; got {scheme!r}.")
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        lo, hi = x.double().min().item(), x.double().max().item()
        raise ValueError(
            f"binarize expects intensities in [0, 1]; got values in [{lo:.4g}, "
            f"{hi:.4g}]. Rescale first, e.g. x / x.max() (digits: x / 16, MNIST "
            "bytes: x / 255)."
        )
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if scheme == "threshold":
        return (x > threshold).to(dtype)
    where = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=where).to(x.device)
    return (u < x).to(dtype)  # P(u < x) = x: one Bernoulli(x) draw per entry


_binarize = binarize  # load_digits' ``binarize`` argument shadows the function


# --------------------------------------------------------------------------- digits
def load_digits(
    *,
    binarize: str | None = None,
    threshold: float = 0.5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 handwritten digits (1,797 images, offline), scaled to [0, 1].

    Parameters
    ----------
    binarize : {None, "threshold", "stochastic"}
        ``None`` keeps the 17 grey levels x = counts / 16. ``"threshold"``: v = 1[x >
        threshold]. ``"stochastic"``: v ~ Bernoulli(x) drawn once from ``generator``
        (required), so the dataset is fixed for a given seed.
    threshold : float
        Cut-off for ``"threshold"``.
    generator : torch.Generator, optional
        Required for ``"stochastic"``.
    dtype : torch.dtype
        dtype of ``x``.

    Returns
    -------
    x : Tensor, shape (1797, 64)
        Row-major 8x8 images in [0, 1] (in {0, 1} when binarized).
    y : Tensor, shape (1797,), int64
        Digit labels 0-9.
    """
    from sklearn.datasets import (
        load_digits as sklearn_digits,  # bundled with sklearn: no download
    )

    if binarize is not None and binarize not in SCHEMES:
        raise ValueError(
            f"load_digits: binarize must be None or one of {SCHEMES}; got {binarize!r}."
        )
    if binarize == "stochastic" and generator is None:
        raise ValueError(
            "load_digits(binarize='stochastic') needs "
            "generator=torch.Generator().manual_seed(...): a fixed binarization must "
            "be reproducible, so it needs a seed. Or use binarize='threshold' for a "
            "deterministic one."
        )
    counts, labels = sklearn_digits(return_X_y=True)  # (1797, 64) in 0..16, (1797,)
    x = torch.from_numpy(counts / 16.0).to(dtype)  # (N, 64)
    y = torch.from_numpy(labels).long()  # (N,)
    if binarize is not None:
        x = _binarize(x, binarize, threshold=threshold, generator=generator)
    return x, y


def as_images(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Reshape flat examples ``x`` (N, D) into images (N, *shape), e.g.
    ``as_images(x, (8, 8))``.
    """
    shape = tuple(shape)
    per_example = math.prod(x.shape[1:]) if x.ndim >= 1 else 0
    if x.ndim < 1 or per_example != math.prod(shape):
        raise ValueError(
            f"as_images: each example of x (shape {tuple(x.shape)}) has "
            f"{per_example} values, but shape {shape} needs {math.prod(shape)}. "
            "Digits are (8, 8), MNIST is (28, 28)."
        )
    return x.reshape(x.shape[0], *shape)


# --------------------------------------------------------------------------- 2-D toys
def _normal(n: int, g: torch.Generator, d: int = 2) -> Tensor:
    return torch.randn(n, d, generator=g, device=g.device)


def _uniform(n: int, g: torch.Generator) -> Tensor:
    return torch.rand(n, generator=g, device=g.device)


def _choice(n: int, k: int, g: torch.Generator) -> Tensor:
    return torch.randint(k, (n,), generator=g, device=g.device)


def _moons(n, g, noise):  # two interleaved half circles, centred
    t = math.pi * _uniform(n, g)
    upper = _choice(n, 2, g) == 0
    x = torch.where(
        upper[:, None],
        torch.stack([t.cos(), t.sin()], 1),
        torch.stack([1 - t.cos(), 0.5 - t.sin()], 1),
    )
    return 2 * (x - torch.tensor([0.5, 0.25], device=x.device)) + noise * _normal(n, g)


def _circles(
    n, g, noise
):  # radii 3 and 1.5 (sklearn's make_circles with factor 0.5, times 3)
    return _rings_with(n, g, noise, torch.tensor([3.0, 1.5], device=g.device))


def _rings(n, g, noise):  # four concentric rings, radii 1..4
    return _rings_with(n, g, noise, torch.tensor([1.0, 2.0, 3.0, 4.0], device=g.device))


def _rings_with(n, g, noise, radii):
    r = radii[_choice(n, len(radii), g)]
    t = 2 * math.pi * _uniform(n, g)
    return r[:, None] * torch.stack([t.cos(), t.sin()], 1) + noise * _normal(n, g)


def _eight_gaussians(n, g, noise):  # modes on a circle of radius 2
    t = 2 * math.pi * _choice(n, 8, g) / 8
    return 2 * torch.stack([t.cos(), t.sin()], 1) + noise * _normal(n, g)


def _checkerboard(
    n, g, noise
):  # uniform on the black squares of a 4x4 board on [-4, 4]^2
    x1 = 4 * _uniform(n, g) - 2
    x2 = _uniform(n, g) - 2 * _choice(n, 2, g) + torch.floor(x1) % 2
    return 2 * torch.stack([x1, x2], 1) + noise * _normal(n, g)


def _spiral(n, g, noise):  # two interleaved spirals
    t = _uniform(n, g).sqrt() * 3 * math.pi  # density grows along the arm like the area
    sign = 1 - 2 * _choice(n, 2, g)
    x = sign[:, None] * torch.stack([-t * t.cos(), t * t.sin()], 1) / 3
    return x + noise * _normal(n, g)


def _pinwheel(n, g, noise, k=5, rate=0.25):  # k arms; noise is the tangential std
    arm = _choice(n, k, g)
    f = _normal(n, g) * torch.tensor([0.3, noise], device=g.device)
    f[:, 0] += 1
    angle = 2 * math.pi * arm / k + rate * f[:, 0].exp()
    c, s = angle.cos(), angle.sin()
    rot = torch.stack(
        [torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2
    )  # (n, 2, 2)
    return 2 * (rot @ f[:, :, None])[:, :, 0]


def _swiss_roll(n, g, noise):
    t = 1.5 * math.pi * (1 + 2 * _uniform(n, g))
    return torch.stack([t * t.cos(), t * t.sin()], 1) / 5 + noise * _normal(n, g)


# name -> (sampler, default noise); every set lies roughly in [-4, 4]^2
TOY_2D = {
    "moons": (_moons, 0.1),
    "circles": (_circles, 0.08),
    "rings": (_rings, 0.08),
    "eight_gaussians": (_eight_gaussians, 0.2),
    "checkerboard": (_checkerboard, 0.0),
    "spiral": (_spiral, 0.1),
    "pinwheel": (_pinwheel, 0.1),
    "swiss_roll": (_swiss_roll, 0.1),
}


def toy_2d(
    name: str,
    n: int,
    *,
    generator: torch.Generator,
    noise: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` i.i.d. draws from a named 2-D toy density, on ``generator``'s device.

    Parameters
    ----------
    name : str
        One of ``TOY_2D``: "moons", "circles" (2 rings), "rings" (4 rings),
        "eight_gaussians", "checkerboard", "spiral" (two arms), "pinwheel" (5 arms),
        "swiss_roll".
    n : int
        Number of points.
    generator : torch.Generator
        All randomness comes from it; the same seed gives the same points.
    noise : float, optional
        Standard deviation of the Gaussian noise (for "pinwheel": the tangential
        spread); ``None`` uses the dataset's default from ``TOY_2D``.

    Returns
    -------
    x : Tensor, shape (n, 2)
    """
    if name not in TOY_2D:
        raise ValueError(
            f"toy_2d: unknown dataset {name!r}; choose one of {sorted(TOY_2D)}."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"toy_2d: n must be a non-negative int; got {n!r}.")
    sample, default_noise = TOY_2D[name]
    noise = default_noise if noise is None else float(noise)
    if noise < 0:
        raise ValueError(
            f"toy_2d: noise is a standard deviation and must be >= 0; got {noise}."
        )
    return sample(n, generator, noise).to(dtype)  # (n, 2)


# --------------------------------------------------------------------------- bars and
# stripes
def bars_and_stripes(side: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """All distinct bars-and-stripes images on a ``side`` x ``side`` grid (MacKay 2003).

    Each image has every row constant (stripes) or every column constant (bars). There
    are 2 * 2**side - 2 distinct ones: the all-0 and all-1 images are both a bar and a
    stripe.

    Returns
    -------
    v : Tensor, shape (2 * 2**side - 2, side * side)
        Row-major binary images: first the 2**side stripes, then the bars that are not
        stripes.
    """
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ValueError(f"bars_and_stripes: side must be an int >= 1; got {side!r}.")
    codes = torch.arange(2**side)
    bits = (codes[:, None] >> torch.arange(side - 1, -1, -1)) & 1  # (2**side, side)
    stripes = bits[:, :, None].expand(-1, side, side)  # row i is bits[i]
    bars = stripes.transpose(1, 2)[1:-1]  # drop all-0 and all-1, already stripes
    return torch.cat([stripes, bars]).reshape(-1, side * side).to(dtype)


# --------------------------------------------------------------------------- binarized
# MNIST
class DataIntegrityError(ValueError):
    """A data file is truncated, unreadable, or its arrays do not match the published
    hashes.
    """


class DatasetUnavailableError(RuntimeError):
    """No verified copy of a dataset was found, and it could not (or may not) be
    downloaded.
    """


MNIST_FILE = "binarized_mnist.npz"
MNIST_SPLITS = ("train", "valid", "test")
MNIST_D = 784  # 28 x 28, row-major
MNIST_URL = (
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist"  # Larochelle
)
# SHA-256 of np.ascontiguousarray(a).tobytes() for each (N, 784) uint8 array; tests
# patch this.
MNIST_SHA256 = {
    # train (50000, 784), valid (10000, 784), test (10000, 784)
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}
_TIMEOUT_S = 60
_HOW_TO_PROCEED = (
    "To proceed: set DGMLIB_DATA_DIR to a folder holding binarized_mnist.npz "
    "(keys train/valid/test, uint8 0/1), or connect to the internet and call again, "
    "or use dgmlib.data.load_digits() instead."
)


def cache_dir() -> Path:
    """The user data cache: ``data/`` under :func:`dgmlib.cache.cache_dir`
    (``$DGMLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/dgmlib``, else ``~/.cache/dgmlib``).
    """
    from .cache import cache_dir as root

    return root() / "data"


def _search_paths(data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """Where to look, in order, as (where it came from, path to the npz)."""
    places = []
    if data_dir is not None:
        places.append(("data_dir argument", Path(data_dir).expanduser()))
    if os.environ.get("DGMLIB_DATA_DIR"):
        places.append(
            ("DGMLIB_DATA_DIR", Path(os.environ["DGMLIB_DATA_DIR"]).expanduser())
        )
    places.append(("user cache", cache_dir()))
    return [(origin, folder / MNIST_FILE) for origin, folder in places]


def _verify(
    a: np.ndarray, split: str, source: str, fix: str | None = None
) -> np.ndarray:
    """Return ``a`` if it is the published (N, 784) uint8 array of ``split``, else
    raise.
    """
    fix = fix or f"Delete {source} and call again to download a fresh copy."
    if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != MNIST_D:
        raise DataIntegrityError(
            f"{source}: {split!r} should be a uint8 array of shape (N, {MNIST_D}); "
            f"found {a.dtype} of shape {a.shape}. {fix}"
        )
    found = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    if found != MNIST_SHA256[split]:
        raise DataIntegrityError(
            f"{source}: {split!r} array does not match the published data: expected "
            f"SHA-256 {MNIST_SHA256[split]}, found {found} (shape {a.shape}). {fix}"
        )
    return a


def _read_npz(path: Path, splits=MNIST_SPLITS) -> dict[str, np.ndarray]:
    """Read and verify ``splits`` of one npz; any damage raises
    :class:`DataIntegrityError`.
    """
    try:
        with (
            open(path, "rb") as fh,
            np.load(fh, allow_pickle=False) as f,
        ):  # fh: closed on failure
            keys = f.files
            arrays = {s: f[s] for s in splits if s in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataIntegrityError(
            f"{path} is truncated, corrupted or not a valid .npz file "
            f"({type(err).__name__}: {err}); expected an npz with keys "
            f"{list(MNIST_SPLITS)}. Delete {path} and call again to download a fresh "
            "copy."
        ) from err
    if len(arrays) < len(splits):
        raise DataIntegrityError(
            f"{path}: expected keys {list(MNIST_SPLITS)}, found {keys}. "
            f"Delete {path} and call again to download a fresh copy."
        )
    return {s: _verify(a, s, str(path)) for s, a in arrays.items()}


def _download(url: str, dest: Path) -> None:
    """Stream ``url`` to ``dest`` with a progress bar (MB)."""
    with (
        urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response,
        open(dest, "wb") as out,
    ):
        size = response.headers.get("Content-Length")
        total = int(size) / 1e6 if size else None
        with progress(total=total, desc=f"{url.rsplit('/', 1)[-1]} (MB)") as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk) / 1e6)


def _parse_amat(path: Path, source: str) -> np.ndarray:
    """Parse an .amat file (one image per line: 784 space-separated 0/1) into (N, 784)
    uint8.
    """
    rows = []
    for i, line in enumerate(path.read_bytes().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != MNIST_D:
            raise DataIntegrityError(
                f"{source}, line {i}: expected {MNIST_D} space-separated 0/1 values, "
                f"found {len(tokens)}. The download is incomplete or not binarized "
                "MNIST; nothing was saved."
            )
        rows.append(b"".join(tokens))
    digits = np.frombuffer(b"".join(rows), dtype=np.uint8) - ord("0")
    if digits.size != len(rows) * MNIST_D or (digits > 1).any():
        raise DataIntegrityError(
            f"{source}: expected only the values 0 and 1; found other tokens. Nothing "
            "was saved."
        )
    return digits.reshape(len(rows), MNIST_D)


def _download_mnist(base_url: str, dest: Path) -> None:
    """Download, parse and verify all three splits, then write ``dest`` atomically."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetUnavailableError(
            f"Could not create the cache folder {dest.parent} ({err}); "
            "set DGMLIB_CACHE_DIR to a writable folder."
        ) from err
    # Everything happens in a temporary folder beside dest, removed on any failure; the
    # finished npz appears at dest in one os.replace, so dest is never a partial file.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        arrays = {}
        for split in MNIST_SPLITS:
            url = f"{base_url.rstrip('/')}/binarized_mnist_{split}.amat"
            amat = Path(tmp) / f"{split}.amat"
            try:
                _download(url, amat)
            except (urllib.error.URLError, OSError, ValueError) as err:
                raise DatasetUnavailableError(
                    f"Could not download {url} ({type(err).__name__}: {err})."
                ) from err
            fix = (
                "Nothing was saved. Check DGMLIB_MNIST_URL, or retry if the download "
                "was cut short."
            )
            arrays[split] = _verify(_parse_amat(amat, url), split, source=url, fix=fix)
            amat.unlink()
        partial = Path(tmp) / MNIST_FILE
        np.savez_compressed(partial, **arrays)
        os.replace(partial, dest)


def _find_mnist(data_dir) -> Path | None:
    return next((path for _, path in _search_paths(data_dir) if path.is_file()), None)


def load_binarized_mnist(
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Binarized MNIST with the fixed binarization of Salakhutdinov & Murray (2008).

    The copy distributed by Hugo Larochelle: 50,000 train / 10,000 valid / 10,000 test
    images, the dataset of the published binarized-MNIST likelihood tables. Looked up as
    ``binarized_mnist.npz`` in ``data_dir``, then ``$DGMLIB_DATA_DIR``, then the user
    cache (:func:`cache_dir`); if none is found and ``download`` is true, the three
    ``.amat`` files are downloaded from ``$DGMLIB_MNIST_URL`` (default ``MNIST_URL``),
    verified and cached. Every array is checked against the SHA-256 hashes in
    ``MNIST_SHA256`` before use.

    Parameters
    ----------
    split : {"train", "valid", "test"}
    data_dir : path, optional
        A folder holding ``binarized_mnist.npz``, searched first.
    download : bool
        Whether to download when no copy is found.
    dtype : torch.dtype

    Returns
    -------
    v : Tensor, shape (N, 784)
        Row-major 28x28 images with values in {0, 1}.

    Raises
    ------
    DataIntegrityError
        The first copy found is truncated or its arrays do not match the hashes.
    DatasetUnavailableError
        No copy was found and it could not be downloaded.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(
            f"load_binarized_mnist: split must be one of {MNIST_SPLITS}; got {split!r}."
        )
    path = _find_mnist(data_dir)
    if path is None:
        searched = "; ".join(f"{origin}: {p}" for origin, p in _search_paths(data_dir))
        base_url = os.environ.get("DGMLIB_MNIST_URL") or MNIST_URL
        if not download:
            raise DatasetUnavailableError(
                f"binarized MNIST not found (searched {searched}) and download=False. "
                f"{_HOW_TO_PROCEED}"
            )
        path = cache_dir() / MNIST_FILE
        try:
            _download_mnist(base_url, path)
        except DatasetUnavailableError as err:
            raise DatasetUnavailableError(
                f"binarized MNIST not found (searched {searched}). {err} "
                f"{_HOW_TO_PROCEED}"
            ) from err
    v = _read_npz(path, splits=(split,))[split]  # (N, 784) uint8, verified
    # row-major (the file may store the arrays column-major): minibatch gathers of
    # whole images are then contiguous reads
    return torch.from_numpy(v).to(dtype).contiguous()


def binarized_mnist_available(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether :func:`load_binarized_mnist` would find a verified copy without
    downloading.

    A copy that is found but fails verification gives ``False`` with a warning naming
    it.
    """
    path = _find_mnist(data_dir)
    if path is None:
        return False
    try:
        _read_npz(path)
    except DataIntegrityError as err:
        warnings.warn(str(err), stacklevel=2)
        return False
    return True


# ------------------------------------------------------------ natural image patches
def natural_image_patches(
    n_train: int = 20000,
    n_test: int = 5000,
    *,
    size: int = 8,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Grey ``size`` x ``size`` patches of scikit-learn's two bundled photographs
    (``load_sample_images``: china.jpg, flower.jpg; offline), flattened to (N, size^2).

    The split is fixed and spatial: training patches lie wholly in the left 3/4 of
    each image, test patches wholly in the right 1/4, so no pixel is shared. Corners are
    drawn from ``generator`` (half from each image). Grey levels (the RGB mean, in
    [0, 1]) are dequantised by uniform noise of one grey level (1/255), then the
    training set's per-pixel mean is removed from both splits and both are divided by
    the training set's overall standard deviation (one number), so the training pixels
    have mean 0 and variance 1. Densities of these patches are in nats per patch of
    the standardised values.
    """
    from sklearn.datasets import load_sample_images

    if n_train < 1 or n_test < 1 or size < 1:
        raise ValueError(
            "natural_image_patches needs n_train >= 1, n_test >= 1 and size >= 1; got "
            f"{n_train}, {n_test}, {size}"
        )
    images = [
        torch.from_numpy(np.asarray(im, dtype=np.float64).mean(-1) / 255.0)
        for im in load_sample_images().images
    ]  # two (427, 640) grey images

    def cut(n: int, part: str) -> Tensor:
        out = []
        for k, im in enumerate(images):
            m = n // 2 + (n % 2 if k == 0 else 0)
            rows, cols = im.shape
            split = (3 * cols) // 4
            lo, hi = (0, split - size) if part == "train" else (split, cols - size)
            r = torch.randint(0, rows - size + 1, (m,), generator=generator)
            c = torch.randint(lo, hi + 1, (m,), generator=generator)
            idx = torch.arange(size)
            rr = (r[:, None] + idx)[:, :, None]  # (m, size, 1)
            cc = (c[:, None] + idx)[:, None, :]  # (m, 1, size)
            out.append(im[rr, cc].reshape(m, size * size))
        x = torch.cat(out)
        noise = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        return x + noise / 255.0

    x_train, x_test = cut(n_train, "train"), cut(n_test, "test")
    mean, sd = x_train.mean(0), x_train.std()
    where = generator.device if generator is not None else torch.device("cpu")
    return (
        ((x_train - mean) / sd).to(dtype=dtype, device=where),
        ((x_test - mean) / sd).to(dtype=dtype, device=where),
    )
