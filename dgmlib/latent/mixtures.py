"""Mixture models, the ELBO and expectation-maximisation (book §3.9.6, §19.1-19.2).

A mixture has one discrete latent variable z in {0, ..., K-1}::

    z ~ Categorical(pi),    x | z = k ~ p_k(x)

so log p(x) = logsumexp_k [log pi_k + log p_k(x)] and the posterior p(z | x) (the
"responsibilities") follows from Bayes' rule. EM alternates (§19.2):

* E-step: q(z) <- p(z | x; theta_old), which makes the ELBO tight: L(q) = log p(x);
* M-step: theta <- argmax_theta E_q[log p(x, z; theta)], in closed form here.

Each step cannot decrease log p(x), because log p(x) = L(q) + KL(q || p(z|x)) (§19.1).

Notation
--------
=================  =========  =========  ===========================================
maths              name       shape      meaning
=================  =========  =========  ===========================================
x                  x          (B, D)     observations
z                  z          (B,)       component index
pi                 pi         (K,)       mixing proportions; stored as ``log_pi``
mu_k               mu         (K, D)     Gaussian means / Bernoulli probabilities
Sigma_k            cov        (K, D, D)  Gaussian covariances
log p(x, z=k)      log_joint  (B, K)
p(z=k | x)         r          (B, K)     responsibilities
q(z)               q          (B, K)     any distribution over z, one row per example
=================  =========  =========  ===========================================

:func:`em_step`, :func:`fit_em`, :func:`elbo` and :func:`kl_to_posterior` also accept
the linear-Gaussian models of :mod:`dgmlib.latent.linear` (PPCA, factor analysis); for
those, ``q`` is a pair ``(mean (B, q), cov (q, q) or (B, q, q))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dgmlib.latent.linear import (
    PPCA,
    FactorAnalysis,
    _check_x,
    _LinearGaussian,
    em_step_fa,
    em_step_ppca,
    gaussian_log_prob,
)
from dgmlib.train import History, NonFiniteError, progress

__all__ = [
    "GaussianMixture",
    "BernoulliMixture",
    "em_step",
    "fit_em",
    "elbo",
    "kl_to_posterior",
]


class _Mixture(nn.Module):
    """What both mixtures share: log p(x), the posterior and sampling z, given
    ``log_joint``.
    """

    log_pi: Tensor
    mu: Tensor

    @property
    def pi(self) -> Tensor:
        return self.log_pi.exp()  # (K,)

    @property
    def K(self) -> int:
        return self.mu.shape[0]

    @property
    def D(self) -> int:
        return self.mu.shape[1]

    def log_joint(self, x: Tensor) -> Tensor:  # (B, D) -> (B, K)
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_k log p(x, z=k). (B, D) -> (B,)."""
        return torch.logsumexp(self.log_joint(x), dim=1)

    def posterior(self, x: Tensor) -> Tensor:
        """Responsibilities p(z=k | x) = p(x, z=k) / p(x) (Bayes' rule). (B, D) ->
        (B, K), rows sum to 1.
        """
        return torch.softmax(self.log_joint(x), dim=1)

    def _sample_z(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.multinomial(
            self.pi, n, replacement=True, generator=generator
        )  # (n,)


class GaussianMixture(_Mixture):
    """Mixture of Gaussians p(x) = sum_k pi_k N(x; mu_k, Sigma_k) (§3.9.6).

    Parameters
    ----------
    pi : Tensor, shape (K,)
        Mixing proportions, positive, summing to 1.
    mu : Tensor, shape (K, D)
    cov : Tensor, shape (K, D, D)
        Positive-definite covariances. With ``covariance="diag"`` only their diagonals
        are used (they are stored as diagonal matrices, so every method reads the same
        ``cov``).
    covariance : {"full", "diag"}
        Which covariances the M-step fits.
    reg_covar : float
        Added to the diagonal of every covariance in the M-step (as scikit-learn does)
        so a component that collapses onto few points keeps a positive-definite
        covariance. With ``reg_covar > 0`` the M-step is no longer the exact maximiser,
        so near convergence the log-likelihood can dip by O(reg_covar^2); set it to 0
        for textbook EM.

    Parameters are buffers: EM updates them in closed form. Build a random start with
    :meth:`from_data`.
    """

    def __init__(
        self,
        pi: Tensor,
        mu: Tensor,
        cov: Tensor,
        *,
        covariance: str = "full",
        reg_covar: float = 1e-6,
    ):
        super().__init__()
        if covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag'; got {covariance!r}")
        K, D = mu.shape if mu.ndim == 2 else (-1, -1)
        if mu.ndim != 2 or pi.shape != (K,) or cov.shape != (K, D, D):
            raise ValueError(
                f"GaussianMixture expects pi (K,), mu (K, D), cov (K, D, D); "
                f"got {tuple(pi.shape)}, {tuple(mu.shape)}, {tuple(cov.shape)}"
            )
        _check_pi(pi)
        if covariance == "diag":
            cov = torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
        self.covariance, self.reg_covar = covariance, float(reg_covar)
        self.register_buffer("log_pi", pi.log().to(mu))  # (K,)
        self.register_buffer("mu", mu.clone())  # (K, D)
        self.register_buffer("cov", cov.clone().to(mu))  # (K, D, D)

    @classmethod
    def from_data(
        cls,
        x: Tensor,
        n_components: int,
        *,
        covariance: str = "full",
        reg_covar: float = 1e-6,
        generator: torch.Generator | None = None,
    ) -> GaussianMixture:
        """A start for EM: k-means++ seeding for the means, uniform pi, the data
        covariance for each Sigma_k.

        k-means++ (Arthur & Vassilvitskii, 2007) picks the first mean uniformly from the
        data and each next one with probability proportional to the squared distance to
        the nearest mean so far.
        """
        if x.ndim != 2 or not 1 <= n_components <= x.shape[0]:
            raise ValueError(
                "GaussianMixture.from_data expects x of shape (N, D) with N >= "
                f"n_components >= 1; got x {tuple(x.shape)} and "
                f"n_components={n_components}"
            )
        N, D = x.shape
        gen_device = generator.device if generator is not None else torch.device("cpu")
        idx = [int(torch.randint(N, (1,), generator=generator, device=gen_device))]
        d2 = ((x - x[idx[0]]) ** 2).sum(
            1
        )  # (N,) squared distance to the nearest chosen mean
        for _ in range(1, n_components):
            weights = d2 if d2.sum() > 0 else torch.ones_like(d2)
            idx.append(
                int(torch.multinomial(weights.to(gen_device), 1, generator=generator))
            )
            d2 = torch.minimum(d2, ((x - x[idx[-1]]) ** 2).sum(1))
        mu = x[idx]  # (K, D)
        xc = x - x.mean(0)
        data_cov = xc.T @ xc / N + reg_covar * torch.eye(
            D, dtype=x.dtype, device=x.device
        )  # (D, D)
        pi = torch.full(
            (n_components,), 1.0 / n_components, dtype=x.dtype, device=x.device
        )
        cov = data_cov.expand(n_components, D, D)
        return cls(pi, mu, cov, covariance=covariance, reg_covar=reg_covar)

    def log_joint(self, x: Tensor) -> Tensor:
        """log p(x, z=k) = log pi_k + log N(x; mu_k, Sigma_k). (B, D) -> (B, K)."""
        x = _check_x(x, self.D, "GaussianMixture", self.mu.dtype)
        return self.log_pi + gaussian_log_prob(x, self.mu, self.cov)  # (B, K)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: z ~ Categorical(pi), x = mu_z + L_z eps with Sigma_z =
        L_z L_z^T.

        Returns
        -------
        x : Tensor, shape (n, D)
        z : Tensor, shape (n,), int64
        """
        z = self._sample_z(n, generator)  # (n,)
        eps = torch.randn(
            n,
            self.D,
            1,
            generator=generator,
            dtype=self.mu.dtype,
            device=self.mu.device,
        )
        L = torch.linalg.cholesky(self.cov)  # (K, D, D)
        x = self.mu[z] + (L[z] @ eps).squeeze(-1)  # (n, D)
        return x, z

    def extra_repr(self) -> str:
        cov = f"covariance={self.covariance!r}, reg_covar={self.reg_covar:g}"
        return f"K={self.K}, D={self.D}, {cov}"


class BernoulliMixture(_Mixture):
    """Mixture of products of Bernoullis p(x) = sum_k pi_k prod_d mu_kd^x_d
    (1 - mu_kd)^(1 - x_d).

    For binary data such as binarised MNIST: each component is a "prototype image" of
    pixel probabilities (Bishop, 2006, §9.3.3).

    Parameters
    ----------
    pi : Tensor, shape (K,)
    mu : Tensor, shape (K, D)
        Probabilities P(x_d = 1 | z = k), in [0, 1].
    alpha : float
        Smoothing of the M-step: mu_kd = (sum_n r_nk x_nd + alpha) / (N_k + 2 alpha),
        the MAP estimate under a Beta(1 + alpha, 1 + alpha) prior (alpha = 1 is
        Laplace's add-one rule). Any alpha > 0 keeps mu off 0 and 1, so an unseen pixel
        value never costs -inf. With alpha > 0 EM increases log-likelihood + log-prior,
        so near convergence the log-likelihood alone can dip by a hair
        (:meth:`log_prior`); alpha = 0 is textbook EM. Inside logarithms mu is clamped
        to [tiny, 1 - eps] so that alpha = 0 cannot make NaNs.
    """

    def __init__(self, pi: Tensor, mu: Tensor, *, alpha: float = 1e-2):
        super().__init__()
        if mu.ndim != 2 or pi.shape != (mu.shape[0],):
            raise ValueError(
                "BernoulliMixture expects pi (K,) and mu (K, D); got "
                f"{tuple(pi.shape)}, {tuple(mu.shape)}"
            )
        if not ((mu >= 0) & (mu <= 1)).all():
            raise ValueError(
                "BernoulliMixture expects probabilities mu in [0, 1]; got "
                f"[{float(mu.min())}, {float(mu.max())}]"
            )
        _check_pi(pi)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha}")
        self.alpha = float(alpha)
        self.register_buffer("log_pi", pi.log().to(mu))  # (K,)
        self.register_buffer("mu", mu.clone())  # (K, D)

    @classmethod
    def from_data(
        cls,
        x: Tensor,
        n_components: int,
        *,
        alpha: float = 1e-2,
        generator: torch.Generator | None = None,
    ) -> BernoulliMixture:
        """A start for EM: uniform pi; mu_k halfway between a random data point and the
        data mean, squashed into [0.25, 0.75] so no component starts certain about any
        pixel.
        """
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        x = _check_binary(x, x.shape[-1], dtype)
        if not 1 <= n_components <= x.shape[0]:
            raise ValueError(
                f"need 1 <= n_components <= N={x.shape[0]}; got "
                f"n_components={n_components}"
            )
        gen_device = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randperm(x.shape[0], generator=generator, device=gen_device)[
            :n_components
        ].to(x.device)
        mu = 0.25 + 0.5 * (x[idx] + x.mean(0)) / 2  # (K, D)
        pi = torch.full(
            (n_components,), 1.0 / n_components, dtype=x.dtype, device=x.device
        )
        return cls(pi, mu, alpha=alpha)

    def log_joint(self, x: Tensor) -> Tensor:
        """log p(x, z=k) = log pi_k + sum_d [x_d log mu_kd + (1 - x_d) log(1 - mu_kd)].
        (B, D) -> (B, K).
        """
        x = _check_binary(x, self.D, self.mu.dtype)
        finfo = torch.finfo(self.mu.dtype)
        mu = self.mu.clamp(finfo.tiny, 1 - finfo.eps)
        return self.log_pi + x @ mu.log().T + (1 - x) @ torch.log1p(-mu).T  # (B, K)

    def log_prior(self) -> Tensor:
        """log of the Beta(1 + alpha, 1 + alpha) prior on every mu_kd, up to a constant.
        Shape ().

        The smoothed M-step maximises E_q[log p(x, z)] + log_prior, so EM never
        decreases sum_n log p(x_n) + log_prior (MAP-EM); with alpha = 0 this is 0.
        """
        finfo = torch.finfo(self.mu.dtype)
        mu = self.mu.clamp(finfo.tiny, 1 - finfo.eps)
        return self.alpha * (mu.log() + torch.log1p(-mu)).sum()

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: z ~ Categorical(pi), x_d ~ Bernoulli(mu_zd).

        Returns
        -------
        x : Tensor, shape (n, D), values in {0, 1}, the model's dtype
        z : Tensor, shape (n,), int64
        """
        z = self._sample_z(n, generator)  # (n,)
        u = torch.rand(
            n, self.D, generator=generator, dtype=self.mu.dtype, device=self.mu.device
        )
        return (u < self.mu[z]).to(self.mu.dtype), z

    def extra_repr(self) -> str:
        return f"K={self.K}, D={self.D}, alpha={self.alpha:g}"


def _check_pi(pi: Tensor) -> None:
    if not (pi > 0).all() or abs(float(pi.sum()) - 1) > 1e-5:
        raise ValueError(
            f"mixing proportions pi must be positive and sum to 1; got {pi.tolist()}"
        )


def _check_binary(x: Tensor, D: int, dtype: torch.dtype) -> Tensor:
    """Validate a binary (B, D) batch (float, int or bool) and cast it to ``dtype``."""
    x = _check_x(x, D, "BernoulliMixture", dtype)
    if ((x != 0) & (x != 1)).any():
        raise ValueError(
            "BernoulliMixture expects binary x in {0,1}; got values in "
            f"[{float(x.min()):.4g}, {float(x.max()):.4g}]. Binarize first: "
            "dgmlib.data.binarize(x)"
        )
    return x


def _e_step(model: _Mixture, x: Tensor) -> tuple[Tensor, float]:
    """Responsibilities r (B, K) and the mean log-likelihood they came from."""
    log_joint = model.log_joint(x)  # (B, K)
    log_px = torch.logsumexp(log_joint, dim=1, keepdim=True)  # (B, 1)
    return (log_joint - log_px).exp(), log_px.mean().item()


@torch.no_grad()
def _em_step_gmm(model: GaussianMixture, x: Tensor) -> float:
    x = _check_x(x, model.D, "GaussianMixture", model.mu.dtype)
    r, log_lik = _e_step(model, x)  # (B, K)
    Nk = (
        r.sum(0) + 10 * torch.finfo(x.dtype).eps
    )  # (K,) effective counts; eps as scikit-learn
    mu = (r.T @ x) / Nk[:, None]  # (K, D)
    diff = x[None] - mu[:, None]  # (K, B, D)
    if model.covariance == "full":
        cov = (
            torch.einsum("bk,kbi,kbj->kij", r, diff, diff) / Nk[:, None, None]
        )  # (K, D, D)
    else:
        cov = torch.diag_embed(
            (r.T[:, :, None] * diff**2).sum(1) / Nk[:, None]
        )  # (K, D, D)
    cov = cov + model.reg_covar * torch.eye(model.D, dtype=x.dtype, device=x.device)
    model.log_pi.copy_((Nk / Nk.sum()).log())
    model.mu.copy_(mu)
    model.cov.copy_(cov)
    return log_lik


@torch.no_grad()
def _em_step_bernoulli(model: BernoulliMixture, x: Tensor) -> float:
    x = _check_binary(x, model.D, model.mu.dtype)
    r, log_lik = _e_step(model, x)  # (B, K)
    Nk = r.sum(0) + 10 * torch.finfo(x.dtype).eps  # (K,)
    mu = (r.T @ x + model.alpha) / (Nk[:, None] + 2 * model.alpha)  # (K, D)
    model.log_pi.copy_((Nk / Nk.sum()).log())
    model.mu.copy_(mu)
    return log_lik


_EM_STEPS = {
    GaussianMixture: _em_step_gmm,
    BernoulliMixture: _em_step_bernoulli,
    PPCA: em_step_ppca,
    FactorAnalysis: em_step_fa,
}


def em_step(model: nn.Module, x: Tensor) -> float:
    """One EM iteration on the whole data set, in place (§19.2).

    * GaussianMixture: E-step r = p(z|x); M-step N_k = sum_n r_nk, pi_k = N_k / N,
      mu_k = sum_n r_nk x_n / N_k, Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k
      + reg_covar I.
    * BernoulliMixture: same pi; mu_kd = (sum_n r_nk x_nd + alpha) / (N_k + 2 alpha).
    * PPCA / FactorAnalysis:
    :func:`~dgmlib.latent.linear.em_step_ppca` / ``em_step_fa``.

    Parameters
    ----------
    model : GaussianMixture | BernoulliMixture | PPCA | FactorAnalysis
    x : Tensor, shape (N, D)

    Returns
    -------
    float
        Mean log-likelihood per example (nats) of the parameters *before* the update,
        i.e. the ones the E-step used.
    """
    for cls, step in _EM_STEPS.items():
        if isinstance(model, cls):
            return step(model, x)
    raise TypeError(
        f"em_step knows {', '.join(c.__name__ for c in _EM_STEPS)}; got "
        f"{type(model).__name__}"
    )


def fit_em(
    model: nn.Module,
    x: Tensor,
    *,
    n_iter: int = 100,
    tol: float = 1e-6,
    quiet: bool | None = None,
) -> History:
    """Run :func:`em_step` until the log-likelihood rises by less than ``tol`` nats per
    example.

    Returns
    -------
    History
        ``history["log_likelihood"][t]`` is the mean log-likelihood of the parameters
        after t updates (entry 0 is the start); it is non-decreasing. The model has had
        ``len(history)`` updates, so it is at least as good as the last entry.
    """
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0; got {n_iter}")
    history = History()
    with progress(total=n_iter, desc=f"EM {type(model).__name__}", quiet=quiet) as bar:
        # [maths:mixtures.fit_em]
        for t in range(n_iter):
            log_lik = em_step(model, x)  # E-step and M-step; log p before the update
            if not math.isfinite(log_lik):
                raise NonFiniteError(
                    f"EM: log-likelihood is {log_lik} at iteration {t}; check x for "
                    "NaN/inf"
                )
            history.record({"log_likelihood": log_lik})
            bar.update(1)
            bar.set_postfix({"log_likelihood": f"{log_lik:.6g}"}, refresh=False)
            lls = history["log_likelihood"]
            if t > 0 and lls[-1] - lls[-2] < tol:  # the log-likelihood stopped rising
                break
        # [/maths:mixtures.fit_em]
    return history


def _check_q(model: _Mixture, x: Tensor, q: Tensor) -> None:
    if q.shape != (x.shape[0], model.K):
        raise ValueError(
            f"q must have shape (B, K) = {(x.shape[0], model.K)}, one distribution "
            f"per row; got {tuple(q.shape)}"
        )
    if (q < 0).any() or not torch.allclose(
        q.sum(1), torch.ones_like(q[:, 0]), atol=1e-5
    ):
        raise ValueError(
            "q must hold probabilities: non-negative rows that sum to 1 (e.g. "
            "torch.softmax(logits, 1))"
        )


def elbo(model: nn.Module, x: Tensor, q) -> Tensor:
    """Evidence lower bound L(q) = E_q[log p(x, z)] + H(q) (eq. 19.11) for each example.

    Parameters
    ----------
    model : GaussianMixture | BernoulliMixture, or PPCA | FactorAnalysis
    x : Tensor, shape (B, D)
    q : Tensor, shape (B, K), rows are distributions over z; for the linear models
        a pair (mean (B, q), cov (q, q) or (B, q, q)) of a Gaussian q(z).

    Returns
    -------
    Tensor, shape (B,)
        L(q) <= log p(x), with equality iff q = p(z|x).
    """
    if isinstance(model, _LinearGaussian):
        return model.elbo(x, *q)
    log_joint = model.log_joint(x)  # (B, K)
    _check_q(model, x, q)
    # [maths:mixtures.elbo]
    return (q * log_joint).sum(1) - torch.xlogy(q, q).sum(1)  # E_q[log p(x, z)] + H(q)
    # [/maths:mixtures.elbo]


def kl_to_posterior(model: nn.Module, x: Tensor, q) -> Tensor:
    """KL(q(z) || p(z | x)) for each example, so that log p(x) = L(q) + KL (§19.1).
    Shape (B,).

    ``q`` is as in :func:`elbo`. Terms with q_k = 0 contribute 0.
    """
    if isinstance(model, _LinearGaussian):
        return model.kl_to_posterior(x, *q)
    log_joint = model.log_joint(x)  # (B, K)
    _check_q(model, x, q)
    log_post = log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)  # (B, K)
    return torch.xlogy(q, q).sum(1) - (q * log_post).sum(1)
