"""Differentiable generator networks (Deep Learning §20.10.2): x = g(z) with z from a
simple distribution.

Notation::

    z       (n, d_z)   latent code, z ~ N(0, I) (U(0, 1) for inverse-transform sampling)
    x       (n, d)     generated sample, x = g(z)
    L       (d, d)     lower-triangular Cholesky factor, Sigma = L L^T

* :class:`AffineGenerator` / :func:`cholesky_generator`: x = mu + L z (eq. 20.71), an
exact
  sampler of N(mu, Sigma); its density follows from the change of variables
  (eq. 20.72-20.73).
* Inverse-transform sampling: x = F^{-1}(u), u ~ U(0, 1), with F the CDF of the target
  (:func:`inverse_transform_sample`, :func:`exponential_icdf`, :func:`cauchy_icdf`,
  :class:`TabulatedCDF` for any 1-D density given on a grid).
* :class:`BernoulliGenerator`: an MLP g(z) whose sigmoid outputs are the means of a
factorial
  Bernoulli p(x | z) (eq. 20.74), so p(x) = E_z p(x | g(z)) (eq. 20.75);
  :func:`mc_log_likelihood` estimates log p(x) by sampling z from the prior,
  differentiably in g.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape

__all__ = [
    "AffineGenerator",
    "cholesky_generator",
    "inverse_transform_sample",
    "exponential_icdf",
    "cauchy_icdf",
    "TabulatedCDF",
    "BernoulliGenerator",
    "mc_log_likelihood",
]


def _randn(shape, generator, dtype, device) -> Tensor:
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


# ------------------------------------------------------------------------------------
# eq. 20.71
class AffineGenerator(nn.Module):
    """x = g(z) = mu + L z with z ~ N(0, I): the one-layer generator of eq. 20.71.

    Parameters
    ----------
    mu : Tensor, shape (d,)
    L : Tensor, shape (d, d)
        Lower triangular with a positive diagonal, so g is invertible and x ~
        N(mu, L L^T).
    """

    def __init__(self, mu: Tensor, L: Tensor):
        super().__init__()
        mu, L = torch.as_tensor(mu), torch.as_tensor(L)
        if mu.ndim != 1 or L.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(
                f"AffineGenerator needs mu (d,) and L (d, d); got {tuple(mu.shape)} "
                f"and {tuple(L.shape)}"
            )
        if not torch.equal(L, L.tril()) or not bool((L.diagonal() > 0).all()):
            raise ValueError(
                "AffineGenerator needs L lower triangular with a positive diagonal (a "
                "Cholesky factor)"
            )
        self.register_buffer("mu", mu.clone())
        self.register_buffer("L", L.clone())

    @property
    def covariance(self) -> Tensor:
        """Sigma = L L^T, the covariance of x; (d, d)."""
        return self.L @ self.L.T

    def forward(self, z: Tensor) -> Tensor:
        """x = mu + L z (eq. 20.71); (..., d) -> (..., d)."""
        return self.mu + z @ self.L.T

    def inverse(self, x: Tensor) -> Tensor:
        """z = L^{-1} (x - mu) by a triangular solve; (..., d) -> (..., d)."""
        d = self.mu.shape[0]
        flat = (x - self.mu).reshape(-1, d).T  # (d, n)
        z = torch.linalg.solve_triangular(self.L, flat, upper=False)
        return z.T.reshape(x.shape)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n samples of N(mu, Sigma); (n, d)."""
        return self(
            _randn((n, self.mu.shape[0]), generator, self.mu.dtype, self.mu.device)
        )

    def log_prob(self, x: Tensor) -> Tensor:
        """log p_x(x) = log p_z(g^{-1}(x)) - log |det L| (change of variables, eq.
        20.73); (..., d) -> (...,).
        """
        z = self.inverse(x)
        d = self.mu.shape[0]
        return (
            -0.5 * (z**2).sum(-1)
            - 0.5 * d * math.log(2 * math.pi)
            - self.L.diagonal().log().sum()
        )


def cholesky_generator(mu: Tensor, cov: Tensor) -> AffineGenerator:
    """The generator x = mu + L z of N(mu, cov), with L the Cholesky factor of cov
    (eq. 20.71).

    Raises ``ValueError`` unless ``cov`` is a symmetric positive-definite (d, d) matrix.
    """
    mu, cov = torch.as_tensor(mu), torch.as_tensor(cov)
    if mu.ndim != 1 or cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"cholesky_generator needs mu (d,) and cov (d, d); got {tuple(mu.shape)} "
            f"and {tuple(cov.shape)}"
        )
    if not torch.allclose(cov, cov.T, atol=1e-10 * float(cov.abs().max()) + 1e-12):
        raise ValueError(
            "cholesky_generator: cov must be symmetric; symmetrise it with (cov + "
            "cov.T) / 2"
        )
    L, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        eig = torch.linalg.eigvalsh(cov)
        raise ValueError(
            "cholesky_generator: cov is not positive definite (smallest eigenvalue "
            f"{float(eig.min()):.3g}); a covariance needs all eigenvalues > 0. Add a "
            "small multiple of the identity."
        )
    return AffineGenerator(mu.to(cov.dtype), L)


# ------------------------------------------------------------------------------------
# inverse transform
def inverse_transform_sample(
    icdf: Callable[[Tensor], Tensor],
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """x = F^{-1}(u) with u ~ U(0, 1): a sample of the distribution whose CDF is F
    (§20.10.2).

    P(F^{-1}(u) <= x) = P(u <= F(x)) = F(x) for a continuous, increasing F. Returns
    (n,).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(
            f"inverse_transform_sample: n must be a non-negative int; got {n!r}"
        )
    where = generator.device if generator is not None else "cpu"
    u = torch.rand(n, generator=generator, device=where, dtype=dtype)
    return icdf(u)


def exponential_icdf(rate: float = 1.0) -> Callable[[Tensor], Tensor]:
    """F^{-1}(u) = -log(1 - u) / rate, the inverse CDF of Exponential(rate)."""
    if not rate > 0:
        raise ValueError(f"exponential_icdf: rate must be > 0; got {rate}")
    return lambda u: -torch.log1p(-u) / rate


def cauchy_icdf(loc: float = 0.0, scale: float = 1.0) -> Callable[[Tensor], Tensor]:
    """F^{-1}(u) = loc + scale tan(pi (u - 1/2)), the inverse CDF of Cauchy(loc, scale)
    (no mean!).
    """
    if not scale > 0:
        raise ValueError(f"cauchy_icdf: scale must be > 0; got {scale}")
    return lambda u: loc + scale * torch.tan(math.pi * (u - 0.5))


class TabulatedCDF:
    """A 1-D distribution given by a density on a grid: CDF by the trapezoid rule,
    inverse by interpolation.

    The CDF F is piecewise linear between grid points (density piecewise constant
    between them, the trapezoid rule's cell averages), so :meth:`icdf` inverts it
    exactly and ``icdf(u)`` with u ~ U(0, 1) samples exactly from the distribution whose
    CDF is :meth:`cdf`; it approaches the continuous density as the grid is refined.

    Parameters
    ----------
    grid : Tensor, shape (m,)
        Increasing points covering the support.
    density : Tensor, shape (m,)
        Non-negative density values (any normalisation) at ``grid``.
    """

    def __init__(self, grid: Tensor, density: Tensor):
        grid, density = (
            torch.as_tensor(grid, dtype=torch.float64),
            torch.as_tensor(density, dtype=torch.float64),
        )
        if grid.ndim != 1 or density.shape != grid.shape or grid.numel() < 2:
            raise ValueError(
                "TabulatedCDF needs grid (m,) and density (m,), m >= 2; got "
                f"{tuple(grid.shape)}, {tuple(density.shape)}"
            )
        if not bool((grid[1:] > grid[:-1]).all()):
            raise ValueError("TabulatedCDF: grid must be strictly increasing")
        if bool((density < 0).any()) or not bool(torch.isfinite(density).all()):
            raise ValueError("TabulatedCDF: density must be finite and non-negative")
        # [maths:generators.TabulatedCDF]
        # trapezoid masses of the m - 1 cells, (m-1,)
        cells = 0.5 * (density[1:] + density[:-1]) * (grid[1:] - grid[:-1])
        total = cells.sum()
        if not total > 0:
            raise ValueError("TabulatedCDF: density integrates to 0 on the grid")
        self.grid = grid
        zero = torch.zeros(1, dtype=torch.float64)
        self.F = torch.cat([zero, cells.cumsum(0) / total])  # (m,) F at the grid
        self.F[-1] = 1.0

    def cdf(self, x: Tensor) -> Tensor:
        """F(x), piecewise linear; 0 left of the grid and 1 right of it."""
        return self._interp(torch.as_tensor(x, dtype=torch.float64), self.grid, self.F)

    def icdf(self, u: Tensor) -> Tensor:
        """F^{-1}(u) for u in [0, 1], linear within each grid cell."""
        return self._interp(torch.as_tensor(u, dtype=torch.float64), self.F, self.grid)

    # [/maths:generators.TabulatedCDF]
    __call__ = icdf

    @staticmethod
    def _interp(t: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
        """Linear interpolation of (xp, fp) at t, clamped at the ends
        (xp non-decreasing).
        """
        i = torch.searchsorted(xp, t.clamp(xp[0], xp[-1]), right=True).clamp(
            1, xp.numel() - 1
        )
        x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
        width = x1 - x0
        frac = torch.where(
            width > 0,
            (t.clamp(xp[0], xp[-1]) - x0) / torch.where(width > 0, width, 1.0),
            0.0,
        )
        return f0 + frac * (f1 - f0)


# ------------------------------------------------------------------------------------
# eq. 20.74
class BernoulliGenerator(nn.Module):
    """g(z): an MLP whose sigmoid outputs are Bernoulli means, p(x_i = 1 | z) = g(z)_i
    (eq. 20.74).

    With z ~ N(0, I) this defines p(x) = E_z[prod_i g(z)_i^{x_i} (1 - g(z)_i)^{1 - x_i}]
    (eq. 20.75).

    Parameters
    ----------
    n_latent : int
        d_z.
    n_visible : int
        d, the number of binary outputs.
    hidden : sequence of int
        Widths of the tanh hidden layers.
    generator : torch.Generator, optional
        Randomness for the initial weights (N(0, 1/fan_in)).
    dtype : torch.dtype, optional
    """

    def __init__(
        self,
        n_latent: int,
        n_visible: int,
        hidden: Sequence[int] = (64,),
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        sizes = [n_latent, *hidden, n_visible]
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(
                f"BernoulliGenerator: sizes must be positive ints; got {sizes}"
            )
        dt = dtype or torch.get_default_dtype()
        self.layers = nn.ModuleList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            lin = nn.Linear(n_in, n_out, dtype=dt)
            with torch.no_grad():
                where = generator.device if generator is not None else "cpu"
                lin.weight.copy_(
                    torch.randn(
                        n_out, n_in, generator=generator, device=where, dtype=dt
                    )
                    / math.sqrt(n_in)
                )
                lin.bias.zero_()
            self.layers.append(lin)
        self.n_latent, self.n_visible = n_latent, n_visible

    def logits(self, z: Tensor) -> Tensor:
        """Pre-sigmoid outputs; (..., d_z) -> (..., d)."""
        h = z
        for lin in self.layers[:-1]:
            h = torch.tanh(lin(h))
        return self.layers[-1](h)

    def forward(self, z: Tensor) -> Tensor:
        """The Bernoulli means g(z) = sigmoid(logits) (eq. 20.74); (..., d_z) ->
        (..., d).
        """
        return torch.sigmoid(self.logits(z))

    def log_p_x_given_z(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) = sum_i [x_i log g_i + (1 - x_i) log(1 - g_i)]; (B, d) with
        (K, d_z) -> (K, B).

        Every example is scored under every code: one (K, d) x (d, B) product.
        """
        a = self.logits(z)  # (K, d)
        return a @ x.to(a.dtype).T - F.softplus(a).sum(-1, keepdim=True)  # (K, B)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, means: bool = False
    ) -> Tensor:
        """x ~ p(x) by z ~ N(0, I), then x ~ Bernoulli(g(z)); ``means=True`` returns
        g(z) itself. (n, d).
        """
        p0 = self.layers[0].weight
        z = _randn((n, self.n_latent), generator, p0.dtype, p0.device)
        mean = self(z)
        if means:
            return mean
        where = generator.device if generator is not None else mean.device
        u = torch.rand(
            mean.shape, generator=generator, device=where, dtype=mean.dtype
        ).to(mean.device)
        return (u < mean).to(mean.dtype)


def mc_log_likelihood(
    gen: BernoulliGenerator,
    x: Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 4096,
) -> Tensor:
    """log p_hat(x) = log (1/k) sum_s p(x | z_s), z_s ~ N(0, I) shared by the batch
    (eq. 20.75).

    p_hat(x) is unbiased for p(x), so E[log p_hat(x)] <= log p(x) (Jensen), with a gap
    that shrinks as k grows. For a fixed draw of z_1..z_k, p_hat is itself a
    distribution over x (a mixture of k factorial Bernoullis): it sums to exactly 1 over
    all 2^d states. Differentiable in the generator's weights
    (z does not depend on them).

    Parameters
    ----------
    x : Tensor, shape (B, d)
        Binary vectors.
    k : int
        Number of prior samples.

    Returns
    -------
    log_p_hat : Tensor, shape (B,)
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"mc_log_likelihood: k must be a positive int; got {k!r}")
    check_shape(x, 2, gen.n_visible, name="x", model="BernoulliGenerator")
    check_binary(x, "x", "BernoulliGenerator")
    p0 = gen.layers[0].weight
    total = None
    for start in range(0, k, chunk):
        z = _randn(
            (min(chunk, k - start), gen.n_latent), generator, p0.dtype, p0.device
        )
        part = torch.logsumexp(gen.log_p_x_given_z(x, z), dim=0)  # (B,)
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(k)
