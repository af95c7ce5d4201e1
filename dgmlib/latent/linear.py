"""Linear factor models: probabilistic PCA and factor analysis (book §13.1).

Both models draw a latent code from a standard normal and map it linearly to the data,
adding Gaussian noise (Tipping & Bishop, 1999; Ghahramani & Hinton, 1996)::

    z ~ N(0, I_q),    x = W z + mu + noise,    noise ~ N(0, Psi)

PPCA has isotropic noise Psi = sigma^2 I; factor analysis has diagonal noise Psi =
diag(psi). Everything is Gaussian, so the marginal, the posterior and the ELBO are all
closed form.

Notation
--------
==========================  ======  ======  =========================================
maths                       name    shape   meaning
==========================  ======  ======  =========================================
x                           x       (B, D)  observations
z  (h in the book)          z       (B, q)  latent factors, z ~ N(0, I_q)
W                           W       (D, q)  factor loadings
mu  (b in the book)         mu      (D,)    mean of x
sigma^2                     sigma2  ()      PPCA noise variance
Psi = diag(psi)             psi     (D,)    noise variances (PPCA: sigma2 repeated)
C = W W^T + Psi             C       (D, D)  marginal covariance of x
G = (I + W^T Psi^-1 W)^-1   G       (q, q)  posterior covariance of z given x
S                           S       (D, D)  sample covariance, 1/N normalisation
==========================  ======  ======  =========================================

Parameters are buffers, not ``nn.Parameter``: EM (:func:`em_step_ppca`,
:func:`em_step_fa`) updates them in closed form, and ``.to()`` / ``.double()`` still
move them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "PPCA",
    "FactorAnalysis",
    "ppca_closed_form",
    "em_step_ppca",
    "em_step_fa",
    "gaussian_log_prob",
    "kl_gaussians",
]

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: Tensor, mu: Tensor, cov: Tensor) -> Tensor:
    """log N(x; mu_k, Sigma_k) for every row of ``x`` and every component ``k``, via
    Cholesky.

    log N(x; mu, Sigma) = -1/2 [D log 2pi + log|Sigma| + (x - mu)^T Sigma^-1 (x - mu)],
    with Sigma = L L^T, log|Sigma| = 2 sum_i log L_ii and the quadratic form = ||L^-1
    (x - mu)||^2 (one triangular solve; no inverse, no determinant).

    Parameters
    ----------
    x : Tensor, shape (B, D)
    mu : Tensor, shape (K, D)
    cov : Tensor, shape (K, D, D), symmetric positive definite

    Returns
    -------
    Tensor, shape (B, K)
    """
    D = x.shape[-1]
    L = torch.linalg.cholesky(cov)  # (K, D, D)
    diff = (x[None, :, :] - mu[:, None, :]).transpose(1, 2)  # (K, D, B)
    y = torch.linalg.solve_triangular(L, diff, upper=False)  # (K, D, B) = L^-1 (x - mu)
    maha = (y**2).sum(1)  # (K, B)
    log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (K,)
    return -0.5 * (D * LOG_2PI + log_det[:, None] + maha).T  # (B, K)


def kl_gaussians(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor) -> Tensor:
    """KL(N(m0, S0) || N(m1, S1)) in closed form, batched.

    KL = 1/2 [tr(S1^-1 S0) + (m1 - m0)^T S1^-1 (m1 - m0) - q + log|S1| - log|S0|].

    Parameters
    ----------
    m0, m1 : Tensor, shape (..., q)
    S0, S1 : Tensor, shape (..., q, q) (broadcast against the means' batch shape)

    Returns
    -------
    Tensor, shape (...)
    """
    q = m0.shape[-1]
    L0, L1 = torch.linalg.cholesky(S0), torch.linalg.cholesky(S1)
    A = torch.linalg.solve_triangular(
        L1, L0, upper=False
    )  # L1^-1 L0; tr(S1^-1 S0) = ||A||_F^2
    y = torch.linalg.solve_triangular(L1, (m1 - m0).unsqueeze(-1), upper=False).squeeze(
        -1
    )  # (..., q)
    log_det0 = 2 * torch.log(torch.diagonal(L0, dim1=-2, dim2=-1)).sum(-1)
    log_det1 = 2 * torch.log(torch.diagonal(L1, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * ((A**2).sum((-2, -1)) + (y**2).sum(-1) - q + log_det1 - log_det0)


def _check_x(x: Tensor, D: int, who: str, dtype: torch.dtype) -> Tensor:
    """Validate a (B, D) batch and cast it to ``dtype`` (the model's)."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != D:
        hint = (
            " For a single example use x[None]."
            if x.ndim == 1 and x.shape[0] == D
            else ""
        )
        raise ValueError(
            f"{who} expects x of shape (B, D) with D={D}; got shape "
            f"{tuple(x.shape)}.{hint}"
        )
    return x.to(dtype=dtype)


class _LinearGaussian(nn.Module):
    """What PPCA and factor analysis share: everything is written in terms of ``psi``
    (D,).
    """

    W: Tensor
    mu: Tensor

    @property
    def psi(self) -> Tensor:  # (D,)
        raise NotImplementedError

    @property
    def D(self) -> int:
        return self.W.shape[0]

    @property
    def q(self) -> int:
        return self.W.shape[1]

    def marginal_cov(self) -> Tensor:
        """C = W W^T + Psi, the covariance of p(x) = N(x; mu, C). Shape (D, D)."""
        return self.W @ self.W.T + torch.diag(self.psi)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact marginal log-likelihood log p(x) = log N(x; mu, W W^T + Psi). (B, D) ->
        (B,).
        """
        x = _check_x(x, self.D, type(self).__name__, self.W.dtype)
        return gaussian_log_prob(x, self.mu[None], self.marginal_cov()[None])[:, 0]

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """p(z | x) = N(z; G W^T Psi^-1 (x - mu), G) with G = (I + W^T Psi^-1 W)^-1.

        For PPCA this is Tipping & Bishop's N(M^-1 W^T (x - mu), sigma^2 M^-1), M = W^T
        W + sigma^2 I. The covariance does not depend on x.

        Returns
        -------
        mean : Tensor, shape (B, q)
        cov : Tensor, shape (q, q)
        """
        x = _check_x(x, self.D, type(self).__name__, self.W.dtype)
        W_over_psi = self.W / self.psi[:, None]  # (D, q) = Psi^-1 W
        eye = torch.eye(self.q, dtype=self.W.dtype, device=self.W.device)
        G = torch.linalg.inv(eye + self.W.T @ W_over_psi)  # (q, q)
        G = 0.5 * (G + G.T)  # symmetric to rounding, so Cholesky downstream is happy
        mean = (x - self.mu) @ W_over_psi @ G  # (B, q); G is symmetric
        return mean, G

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: z ~ N(0, I), x = W z + mu + Psi^{1/2} eps.

        Returns
        -------
        x : Tensor, shape (n, D)
        z : Tensor, shape (n, q)
        """
        like = dict(dtype=self.W.dtype, device=self.W.device)
        z = torch.randn(n, self.q, generator=generator, **like)  # (n, q)
        eps = torch.randn(n, self.D, generator=generator, **like)  # (n, D)
        x = z @ self.W.T + self.mu + self.psi.sqrt() * eps  # (n, D)
        return x, z

    def elbo(self, x: Tensor, q_mean: Tensor, q_cov: Tensor) -> Tensor:
        """ELBO L(q) = E_q[log p(x, z)] + H(q) for a Gaussian q(z) = N(q_mean, q_cov),
        closed form.

        With r = x - mu - W m and q = N(m, S):

        * E_q[log p(x|z)] = -1/2 [D log 2pi + sum_d log psi_d + sum_d (r_d^2 +
        (W S W^T)_dd) / psi_d]
        * E_q[log p(z)]   = -1/2 [q log 2pi + ||m||^2 + tr S]
        * H(q)            =  1/2 [q log(2 pi e) + log|S|]

        log p(x) = L(q) + KL(q || p(z|x)) (§19.1), so L(q) = log p(x) exactly when q is
        the posterior.

        Parameters
        ----------
        x : Tensor, shape (B, D)
        q_mean : Tensor, shape (B, q)
        q_cov : Tensor, shape (q, q) or (B, q, q)

        Returns
        -------
        Tensor, shape (B,)
        """
        x = _check_x(x, self.D, type(self).__name__, self.W.dtype)
        q, psi = self.q, self.psi
        if q_mean.shape != (x.shape[0], q) or q_cov.shape[-2:] != (q, q):
            raise ValueError(
                f"elbo expects q_mean of shape (B, q) = {(x.shape[0], q)} and q_cov "
                f"of shape (q, q) or (B, q, q) with q={q}; got {tuple(q_mean.shape)} "
                f"and {tuple(q_cov.shape)}"
            )
        r = x - self.mu - q_mean @ self.W.T  # (B, D)
        WSW_diag = ((self.W @ q_cov) * self.W).sum(-1)  # (D,) or (B, D) = diag(W S W^T)
        e_log_lik = -0.5 * (
            self.D * LOG_2PI + psi.log().sum() + ((r**2 + WSW_diag) / psi).sum(-1)
        )
        trace_S = torch.diagonal(q_cov, dim1=-2, dim2=-1).sum(-1)  # () or (B,)
        e_log_prior = -0.5 * (q * LOG_2PI + (q_mean**2).sum(-1) + trace_S)
        entropy = 0.5 * (q * (LOG_2PI + 1) + torch.logdet(q_cov))
        return e_log_lik + e_log_prior + entropy  # (B,)

    def kl_to_posterior(self, x: Tensor, q_mean: Tensor, q_cov: Tensor) -> Tensor:
        """KL(q || p(z|x)) for q = N(q_mean, q_cov), closed form. Shape (B,)."""
        mean, G = self.posterior(x)
        return kl_gaussians(q_mean, q_cov, mean, G)


class PPCA(_LinearGaussian):
    """Probabilistic PCA: x = W z + mu + sigma eps, z ~ N(0, I_q), eps ~ N(0, I_D)
    (§13.1).

    p(x) = N(x; mu, W W^T + sigma^2 I). Build one with :meth:`from_data`
    (random start for EM) or :func:`ppca_closed_form` (the maximum-likelihood solution).

    Parameters
    ----------
    W : Tensor, shape (D, q)
    mu : Tensor, shape (D,)
    sigma2 : float or Tensor, shape (), > 0
    """

    def __init__(self, W: Tensor, mu: Tensor, sigma2: float | Tensor):
        super().__init__()
        if W.ndim != 2 or mu.shape != (W.shape[0],):
            raise ValueError(
                f"PPCA expects W (D, q) and mu (D,); got {tuple(W.shape)} and "
                f"{tuple(mu.shape)}"
            )
        sigma2 = torch.as_tensor(sigma2, dtype=W.dtype, device=W.device)
        if sigma2.ndim != 0 or not sigma2 > 0:
            raise ValueError(f"PPCA expects a positive scalar sigma2; got {sigma2}")
        self.register_buffer("W", W.clone())  # (D, q)
        self.register_buffer("mu", mu.clone().to(W))  # (D,)
        self.register_buffer("sigma2", sigma2.clone())  # ()

    @property
    def psi(self) -> Tensor:
        return self.sigma2.expand(self.D)  # (D,)

    @classmethod
    def from_data(
        cls, x: Tensor, q: int, *, generator: torch.Generator | None = None
    ) -> PPCA:
        """A random start for EM: mu = data mean, W_ij ~ N(0, s^2 / q), sigma^2 = s^2.

        s^2 is the mean per-dimension variance of ``x``, so W W^T and sigma^2 I are on
        the data's scale.
        """
        mu, s2, W = _random_start(x, q, generator)
        return cls(W, mu, s2.mean())

    def extra_repr(self) -> str:
        return f"D={self.D}, q={self.q}, sigma2={float(self.sigma2):.4g}"


class FactorAnalysis(_LinearGaussian):
    """Factor analysis: x = W z + mu + noise, noise ~ N(0, diag(psi)), z ~ N(0, I_q)
    (§13.1).

    p(x) = N(x; mu, W W^T + diag(psi)). Unlike PPCA there is no closed-form
    maximum-likelihood solution; fit it with EM (:func:`em_step_fa`), which can stop at
    a local optimum.

    Parameters
    ----------
    W : Tensor, shape (D, q)
    mu : Tensor, shape (D,)
    psi : Tensor, shape (D,), > 0
    """

    def __init__(self, W: Tensor, mu: Tensor, psi: Tensor):
        super().__init__()
        D = W.shape[0] if W.ndim == 2 else -1
        if W.ndim != 2 or mu.shape != (D,) or psi.shape != (D,):
            raise ValueError(
                f"FactorAnalysis expects W (D, q), mu (D,), psi (D,); "
                f"got {tuple(W.shape)}, {tuple(mu.shape)}, {tuple(psi.shape)}"
            )
        if not (psi > 0).all():
            raise ValueError(
                "FactorAnalysis expects positive noise variances psi; got min "
                f"{float(psi.min())}"
            )
        self.register_buffer("W", W.clone())  # (D, q)
        self.register_buffer("mu", mu.clone().to(W))  # (D,)
        self.register_buffer("psi_", psi.clone().to(W))  # (D,)

    @property
    def psi(self) -> Tensor:
        return self.psi_

    @classmethod
    def from_data(
        cls, x: Tensor, q: int, *, generator: torch.Generator | None = None
    ) -> FactorAnalysis:
        """A random start for EM: mu = data mean, W_ij ~ N(0, s^2 / q), psi_d =
        Var(x_d).
        """
        mu, var, W = _random_start(x, q, generator)
        return cls(W, mu, var)

    def extra_repr(self) -> str:
        return f"D={self.D}, q={self.q}"


def _random_start(
    x: Tensor, q: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Data mean (D,), per-dimension variance (D,) and a random W (D, q) scaled to the
    data.
    """
    if x.ndim != 2 or not 1 <= q <= x.shape[1]:
        raise ValueError(
            f"expects x of shape (N, D) and 1 <= q <= D; got x {tuple(x.shape)} and "
            f"q={q}"
        )
    mu = x.mean(0)  # (D,)
    var = x.var(0, unbiased=False)  # (D,)
    W = torch.randn(
        x.shape[1], q, generator=generator, dtype=x.dtype, device=x.device
    )  # (D, q)
    return mu, var, W * (var.mean() / q).sqrt()


def ppca_closed_form(x: Tensor, q: int) -> PPCA:
    """Maximum-likelihood PPCA (Tipping & Bishop, 1999, eqs. 7-8).

    With the eigendecomposition S = U Lambda U^T of the 1/N sample covariance,
    eigenvalues in decreasing order:

    * mu = sample mean
    * sigma^2 = mean of the D - q smallest eigenvalues (the variance PCA throws away)
    * W = U_q (Lambda_q - sigma^2 I)^{1/2}   (taking the arbitrary rotation R = I)

    Parameters
    ----------
    x : Tensor, shape (N, D)
    q : int, 1 <= q < D
    """
    if x.ndim != 2 or not 1 <= q < x.shape[1]:
        raise ValueError(
            "ppca_closed_form expects x of shape (N, D) and 1 <= q < D; got "
            f"{tuple(x.shape)}, q={q}"
        )
    # [maths:ppca.closed_form]
    mu = x.mean(0)  # (D,)
    xc = x - mu
    S = xc.T @ xc / x.shape[0]  # (D, D)
    lam, U = torch.linalg.eigh(S)  # ascending
    lam, U = lam.flip(0), U.flip(1)  # descending
    sigma2 = lam[q:].mean()  # the variance PCA throws away
    # W = U_q (Lambda_q - sigma^2 I)^{1/2}, (D, q)
    W = U[:, :q] * (lam[:q] - sigma2).clamp_min(0).sqrt()
    return PPCA(W, mu, sigma2)
    # [/maths:ppca.closed_form]


def _moments(model: _LinearGaussian, x: Tensor) -> tuple[Tensor, Tensor, float]:
    """Shared start of both EM steps: mean log-likelihood before the update, data mean,
    S.
    """
    x = _check_x(x, model.D, type(model).__name__, model.W.dtype)
    log_lik = model.log_prob(x).mean().item()
    mu = x.mean(0)  # (D,)
    xc = x - mu
    return mu, xc.T @ xc / x.shape[0], log_lik  # S: (D, D)


@torch.no_grad()
def em_step_ppca(model: PPCA, x: Tensor) -> float:
    """One EM iteration for PPCA, in place (Tipping & Bishop, 1999, eqs. 29-30).

    mu is set to the sample mean (its maximum-likelihood value for any W, sigma^2), then
    with M = W^T W + sigma^2 I and S the 1/N sample covariance:

    * W_new = S W (sigma^2 I + M^-1 W^T S W)^-1
    * sigma^2_new = tr(S - S W M^-1 W_new^T) / D

    This is the E-step (posterior moments of z) and M-step folded together; it costs
    O(D^2 q) instead of touching every example. The log-likelihood never decreases.

    Returns
    -------
    float
        Mean log-likelihood per example (nats) of the parameters *before* the update.
    """
    mu, S, log_lik = _moments(model, x)
    # [maths:ppca.em_step]
    W, sigma2 = model.W, model.sigma2
    eye = torch.eye(model.q, dtype=W.dtype, device=W.device)
    M = W.T @ W + sigma2 * eye  # (q, q)
    SW = S @ W  # (D, q)
    Minv_WtSW = torch.linalg.solve(M, W.T @ SW)  # (q, q)
    # W_new = S W (sigma^2 I + M^-1 W^T S W)^-1
    W_new = torch.linalg.solve((sigma2 * eye + Minv_WtSW).T, SW.T).T  # (D, q)
    # sigma^2_new = tr(S - S W M^-1 W_new^T) / D
    sigma2_new = (
        torch.trace(S) - (SW * torch.linalg.solve(M, W_new.T).T).sum()
    ) / model.D
    # [/maths:ppca.em_step]
    model.mu.copy_(mu)
    model.W.copy_(W_new)
    model.sigma2.copy_(sigma2_new)
    return log_lik


@torch.no_grad()
def em_step_fa(model: FactorAnalysis, x: Tensor) -> float:
    """One EM iteration for factor analysis, in place (Ghahramani & Hinton, 1996).

    mu is set to the sample mean. E-step: E[z|x] = beta (x - mu) with beta = G W^T
    Psi^-1 (q, D), E[z z^T|x] = G + E[z] E[z]^T. M-step, summed over the data through S:

    * W_new = S beta^T (G + beta S beta^T)^-1
    * psi_new = diag(S - W_new beta S)

    Returns
    -------
    float
        Mean log-likelihood per example (nats) of the parameters *before* the update.
    """
    mu, S, log_lik = _moments(model, x)
    # [maths:fa.em_step]
    W, psi = model.W, model.psi
    eye = torch.eye(model.q, dtype=W.dtype, device=W.device)
    W_over_psi = W / psi[:, None]  # (D, q)
    G = torch.linalg.inv(eye + W.T @ W_over_psi)  # (q, q) posterior covariance
    beta = G @ W_over_psi.T  # (q, D): E[z | x] = beta (x - mu)
    S_betaT = S @ beta.T  # (D, q) = (1/N) sum_n (x_n - mu) E[z_n]^T
    Ezz = G + beta @ S_betaT  # (q, q) = (1/N) sum_n E[z_n z_n^T]
    W_new = torch.linalg.solve(Ezz, S_betaT.T).T  # (D, q); Ezz is symmetric
    # psi_new = diag(S - W_new beta S), (D,)
    psi_new = torch.diagonal(S) - (W_new * S_betaT).sum(-1)
    # [/maths:fa.em_step]
    model.mu.copy_(mu)
    model.W.copy_(W_new)
    model.psi.copy_(psi_new)
    return log_lik
