"""Maximum mean discrepancy and generative moment matching networks (book §20.10.5).

A moment of p is E_x prod_i x_i^{n_i} (eq. 20.82). Matching moments one by one needs a
number of terms that grows like D^k for the moments of order k; the maximum mean
discrepancy (MMD, Gretton et al., 2012) matches the means of infinitely many features
phi(x) at once, through a kernel k(x, y) = <phi(x), phi(y)>:

    MMD^2(p, q) = E k(x, x') + E k(y, y') - 2 E k(x, y),   x, x' ~ p,  y, y' ~ q.

With a characteristic kernel (the Gaussian is one) MMD^2 = 0 iff p = q. Here the kernel
is a sum of Gaussians over a few bandwidths s, k(x, y) = sum_s exp(-|x - y|^2 / (2 s^2))
(Li et al., 2015), which is characteristic because each term is.

A generative moment matching network (GMMN; Li et al., 2015; Dziugaite et al., 2015) is
a generator G(z), z ~ N(0, I), trained by minimising the MMD between a minibatch of its
samples and a minibatch of data: no discriminator and no encoder. Li et al.'s GMMN+AE
trains an autoencoder first and the GMMN on its codes; samples are decoded codes.

Notation
--------
==================  ============  =========  =====================================
maths               name          shape      meaning
==================  ============  =========  =====================================
x, y                x, y          (N, D),    two samples (data, model)
                                  (M, D)
s                   bandwidths    (S,)       Gaussian kernel widths
k(x, y)             K_xy          (N, M)     kernel matrix, a sum over s
MMD^2_b, MMD^2_u    mmd2          ()         biased (V-) and unbiased (U-) estimates
z                   z             (B, q)     latent noise, N(0, I_q)
==================  ============  =========  =====================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgmlib.train import History, fit

__all__ = [
    "gaussian_kernel",
    "mmd2",
    "fit_gmmn",
    "sample_generator",
    "Autoencoder",
    "fit_autoencoder",
    "DecodedGenerator",
]


def check_bandwidths(bandwidths) -> tuple[float, ...]:
    """The bandwidths as a tuple of positive floats, or a ValueError saying why not."""
    if isinstance(bandwidths, (int, float)) and not isinstance(bandwidths, bool):
        bandwidths = (bandwidths,)
    try:
        values = tuple(float(s) for s in bandwidths)
    except TypeError:
        raise ValueError(
            "bandwidths must be a positive number or a sequence of them, e.g. "
            f"(0.1, 0.5, 1.0); got {bandwidths!r}"
        ) from None
    if not values or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(
            "bandwidths are Gaussian kernel widths and must all be finite and > 0; got "
            f"{values}. Use e.g. the median distance between points times "
            "(0.25, 0.5, 1, 2)."
        )
    return values


def check_pair(
    x: Tensor,
    y: Tensor,
    fn: str = "mmd2",
    hint: str = "Compare samples of the same space (flatten images to (N, D) first).",
) -> None:
    """Both of shape (N, D) with the same D, else a ValueError naming ``fn``; shared
    by the sample-based metrics of :mod:`dgmlib.evaluate`.
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            raise ValueError(
                f"{fn} expects {name} of shape (N, D); got "
                f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}"
            )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{fn}: x and y must have the same number of features; got x "
            f"{tuple(x.shape)} and y {tuple(y.shape)}. {hint}"
        )


def gaussian_kernel(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    """k(x_i, y_j) = sum_s exp(-|x_i - y_j|^2 / (2 s^2)). (N, D), (M, D) -> (N, M)."""
    # [maths:mmd.kernel]
    d2 = ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T).clamp_min(
        0
    )  # (N, M) squared distances
    return sum(torch.exp(-d2 / (2 * s**2)) for s in bandwidths)
    # [/maths:mmd.kernel]


def mmd2(
    x: Tensor, y: Tensor, *, bandwidths: Sequence[float] | float, unbiased: bool = True
) -> Tensor:
    """Squared maximum mean discrepancy between the samples ``x`` and ``y``
    (Gretton et al., 2012, eq. 3 and lemma 6), with the kernel of
    :func:`gaussian_kernel`.

    ``unbiased=True``: the U-statistic, whose expectation is MMD^2(p, q) exactly; it
    leaves out the diagonal terms k(x_i, x_i) and can be negative. ``unbiased=False``:
    the V-statistic (the squared distance between the two empirical mean embeddings),
    >= 0 and biased upwards by about (E k(x,x) - E k(x,x'))/N + (same for y)/M.

    Parameters
    ----------
    x : Tensor, shape (N, D)   (N >= 2 when unbiased)
    y : Tensor, shape (M, D)   (M >= 2 when unbiased)
    bandwidths : positive float or sequence of them

    Returns
    -------
    Tensor, shape (), differentiable in x and y.
    """
    check_pair(x, y)
    bandwidths = check_bandwidths(bandwidths)
    n, m = x.shape[0], y.shape[0]
    if unbiased and (n < 2 or m < 2):
        raise ValueError(
            f"the unbiased MMD needs at least 2 points in each sample; got {n} and {m}"
        )
    if n < 1 or m < 1:
        raise ValueError(f"mmd2 needs non-empty samples; got {n} and {m} points")
    y = y.to(x)
    # [maths:mmd.mmd2]
    K_xx = gaussian_kernel(x, x, bandwidths)  # (N, N)
    K_yy = gaussian_kernel(y, y, bandwidths)  # (M, M)
    K_xy = gaussian_kernel(x, y, bandwidths)  # (N, M)
    if unbiased:  # mean over i != j: drop the diagonal k(x_i, x_i)
        xx = (K_xx.sum() - K_xx.diagonal().sum()) / (n * (n - 1))
        yy = (K_yy.sum() - K_yy.diagonal().sum()) / (m * (m - 1))
    else:
        xx, yy = K_xx.mean(), K_yy.mean()
    return xx + yy - 2 * K_xy.mean()
    # [/maths:mmd.mmd2]


# --------------------------------------------------------------------------- GMMN
def _first_param(module: nn.Module) -> Tensor:
    p = next(module.parameters(), None)
    if p is None:
        raise ValueError(f"{type(module).__name__} has no parameters to train")
    return p


def _randn(shape, generator, like: Tensor) -> Tensor:
    where = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=where).to(like)


def sample_generator(
    G: nn.Module,
    n: int,
    *,
    latent_dim: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` samples G(z), z ~ N(0, I_latent_dim), without gradients. -> (n, D)."""
    p = _first_param(G)
    with torch.no_grad():
        return G(_randn((n, latent_dim), generator, p))


def _check_generator_output(G: nn.Module, latent_dim: int, dim: int, p: Tensor):
    with torch.no_grad():
        out = G(torch.zeros(2, latent_dim, dtype=p.dtype, device=p.device))
    if not isinstance(out, Tensor) or out.shape != (2, dim):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"the generator maps z of shape (B, {latent_dim}) to {got} for B = 2; the "
            f"data need (B, {dim}). Make G's last layer output {dim} features (and "
            "flatten images), or pass the latent_dim G was built for."
        )


def fit_gmmn(
    G: nn.Module,
    data: Tensor,
    *,
    latent_dim: int,
    bandwidths: Sequence[float] | float,
    batch_size: int,
    steps: int,
    generator: torch.Generator | None = None,
    lr: float = 1e-3,
    unbiased: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
    quiet: bool | None = None,
    callback=None,
) -> History:
    """Train the generator ``G`` (z of size ``latent_dim`` -> x) by minimising the MMD
    between its samples and the data (Li et al., 2015; Dziugaite et al., 2015).

    Each step draws ``batch_size`` data points (without replacement) and as many
    z ~ N(0, I), and takes one Adam step (learning rate ``lr``, or ``optimizer``) on
    :func:`mmd2` (unbiased by default) with the kernel's ``bandwidths``. Randomness
    (minibatches and z) comes from ``generator``.

    Returns the :class:`~dgmlib.train.History` with ``"mmd2"`` per step.
    """
    bandwidths = check_bandwidths(bandwidths)
    if not isinstance(data, Tensor) or data.ndim != 2:
        raise ValueError(
            "fit_gmmn expects data of shape (N, D) (flatten images first); got "
            f"{tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__}"
        )
    n = data.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValueError(f"batch_size must be an int; got {batch_size!r}")
    if not 2 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be between 2 and the number of data points ({n}); got "
            f"{batch_size}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0; got {steps!r}")
    p = _first_param(G)
    _check_generator_output(G, latent_dim, data.shape[1], p)
    data = data.to(p)
    opt = optimizer or torch.optim.Adam(G.parameters(), lr=lr)
    gen_device = generator.device if generator is not None else torch.device("cpu")

    # [maths:mmd.fit_gmmn]
    def step() -> dict:
        idx = torch.randperm(n, generator=generator, device=gen_device)[:batch_size]
        x = data[idx.to(data.device)]  # (B, D) data
        z = _randn((batch_size, latent_dim), generator, p)  # (B, q)
        loss = mmd2(G(z), x, bandwidths=bandwidths, unbiased=unbiased)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"mmd2": loss.item()}

    # [/maths:mmd.fit_gmmn]
    return fit(step, n_steps=steps, desc="gmmn", quiet=quiet, callback=callback)


# ------------------------------------------------------------------- GMMN + AE
class Autoencoder(nn.Module):
    """An autoencoder with sigmoid codes in (0, 1)^c and a sigmoid output, as in Li
    et al.'s (2015) GMMN+AE: x (B, D) -> code h (B, c) -> reconstruction (B, D).

    Parameters
    ----------
    x_dim, code_dim : int
    hidden : sequence of int
        Widths of the encoder's hidden layers (ReLU); the decoder uses them reversed.
    """

    def __init__(self, x_dim: int, code_dim: int, hidden: Sequence[int] = (256,)):
        super().__init__()
        for name, v in (("x_dim", x_dim), ("code_dim", code_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Autoencoder: {name} must be an int >= 1; got {v!r}")
        sizes = (x_dim, *hidden, code_dim)
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        for a, b in zip(sizes[::-1][:-1], sizes[::-1][1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        enc[-1], dec[-1] = nn.Sigmoid(), nn.Sigmoid()
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.x_dim, self.code_dim = x_dim, code_dim

    def encode(self, x: Tensor) -> Tensor:  # (B, D) -> (B, c)
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:  # (B, c) -> (B, D)
        return self.decoder(h)

    def forward(self, x: Tensor) -> Tensor:  # (B, D) -> (B, D)
        return self.decode(self.encode(x))


def fit_autoencoder(
    ae: Autoencoder,
    x: Tensor,
    *,
    epochs: int = 50,
    batch_size: int = 100,
    lr: float = 1e-3,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train ``ae`` to reconstruct ``x`` (squared error summed over features, mean over
    the batch), optionally from inputs corrupted by Gaussian ``noise`` (a denoising
    autoencoder, which keeps the codes of nearby images close). Returns the History with
    ``"loss"`` per step.
    """
    if x.ndim != 2 or x.shape[1] != ae.x_dim:
        raise ValueError(
            f"fit_autoencoder expects x of shape (N, {ae.x_dim}); got {tuple(x.shape)}"
        )
    p = _first_param(ae)
    x = x.to(p)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)

    def step(batch: Tensor) -> float:
        corrupted = (
            batch + noise * _randn(batch.shape, generator, p) if noise else batch
        )
        loss = ((ae(corrupted) - batch) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return fit(
        step,
        x,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="autoencoder",
        quiet=quiet,
    )


class DecodedGenerator(nn.Module):
    """x = decoder(G(z)): a code-space GMMN seen as a generator of data (Li et al.,
    2015, GMMN+AE). (B, q) -> (B, D).
    """

    def __init__(self, G: nn.Module, ae: Autoencoder):
        super().__init__()
        self.G, self.ae = G, ae

    def forward(self, z: Tensor) -> Tensor:
        return self.ae.decode(self.G(z))
