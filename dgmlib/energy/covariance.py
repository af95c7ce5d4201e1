"""Boltzmann machines of conditional covariance (Deep Learning §20.5.2): the mean and
covariance RBM (mcRBM, eq. 20.43-20.47), the mean-product of Student's t (mPoT, eq.
20.48-20.49) and the spike-and-slab RBM (ssRBM, eq. 20.50-20.53).

Notation::

    x     (B, D)   real visible units (zero-mean data)
    h_m   (B, Hm)  binary mean units,  W (D, Hm), b_m (Hm,)   (the GRBM part, 20.44)
    h_c   (B, Hc)  covariance units,   R (D, Hc): column j is r^(j); b_c (Hc,)
    mcRBM:  E = 1/2 x.x - x.W h_m - b_m.h_m + 1/2 sum_j h_c,j (x.r_j)^2 - b_c.h_c
    mPoT:   E = 1/2 x.x - x.W h_m - b_m.h_m
                + sum_j [h_c,j (1 + 1/2 (x.r_j)^2) + (1 - gamma_j) log h_c,j],  h_c > 0
    both:   x | h ~ N(C W h_m, C),  C^-1 = I + sum_j h_c,j r_j r_j^T  (non-diagonal)

    ssRBM:  spikes h (B, H) binary, slabs s (B, H) real; W (D, H), Lambda (D,) diagonal,
            Phi (D, H) >= 0 (column i is the diagonal of Phi_i), alpha (H,) > 0, mu (H,)
    E = -sum_i x.W_i s_i h_i + 1/2 x.(Lambda + sum_i Phi_i h_i) x
        + 1/2 sum_i alpha_i s_i^2 - sum_i alpha_i mu_i s_i h_i - b.h
        + sum_i alpha_i mu_i^2 h_i                                       (eq. 20.51)

The mcRBM and mPoT conditional p(x | h) needs a D x D factorisation per sample, so
they are sampled through x's marginal by Hamiltonian Monte Carlo on the free energy
(:func:`dgmlib.mcmc.hmc`; Ranzato & Hinton 2010). The ssRBM's x | s, h is diagonal:
Gibbs over x, s, h needs no inversion. Its x | h (s summed out, eq. 20.53) is a
Gaussian only while Lambda + Phi h - sum_i h_i W_i W_i^T / alpha_i is positive
definite; otherwise the integral diverges (:meth:`SpikeSlabRBM.min_precision_eig`).

Eq. 20.51 prints the last term as alpha_i mu_i^2 h_i; Courville et al. (2011) write
1/2 alpha_i mu_i^2 h_i. The two differ by a shift of the spike biases b; we follow the
book.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_shape
from ..exact import all_states, log_sum_exp_states
from ..mcmc.hmc import hmc
from ..train import History, fit

__all__ = [
    "MeanCovarianceRBM",
    "MeanPoT",
    "SpikeSlabRBM",
    "fit_covariance_rbm",
    "mcrbm_log_partition",
    "pca_whitening",
    "sample_hmc",
]

LOG_2PI = math.log(2 * math.pi)


def _randn(shape, like: Tensor, generator, scale: float) -> Tensor:
    where = generator.device if generator is not None else like.device
    z = torch.randn(shape, generator=generator, dtype=like.dtype, device=where)
    return (scale * z).to(like.device)


class _MeanCovariance(nn.Module):
    """What the mcRBM and the mPoT share: the GRBM mean part (eq. 20.44) and the
    covariance filters R; parameters are ``nn.Parameter`` s trained by autograd.
    """

    def __init__(self, n_visible, n_mean, n_cov, *, init_std, generator, dtype):
        super().__init__()
        if min(n_visible, n_cov) < 1 or n_mean < 0:
            raise ValueError(
                f"{type(self).__name__} needs n_visible >= 1, n_mean >= 0, n_cov >= 1; "
                f"got {n_visible}, {n_mean}, {n_cov}"
            )
        dtype = dtype or torch.get_default_dtype()
        like = torch.zeros((), dtype=dtype)
        self.W = nn.Parameter(_randn((n_visible, n_mean), like, generator, init_std))
        self.b_m = nn.Parameter(torch.zeros(n_mean, dtype=dtype))
        self.R = nn.Parameter(_randn((n_visible, n_cov), like, generator, init_std))

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    def _check_x(self, x: Tensor) -> Tensor:
        check_shape(x, 2, self.n_visible, name="x", model=type(self).__name__)
        return x.to(self.W.dtype)

    def mean_energy(self, x: Tensor, h_m: Tensor) -> Tensor:
        """E_m(x, h_m) = 1/2 x.x - x.W h_m - b_m.h_m (eq. 20.44); (B,)."""
        return 0.5 * (x**2).sum(-1) - ((x @ self.W) * h_m).sum(-1) - h_m @ self.b_m

    def p_hm_given_x(self, x: Tensor) -> Tensor:
        """P(h_m = 1 | x) = sigmoid(b_m + x W); (B, Hm)."""
        return torch.sigmoid(self._check_x(x) @ self.W + self.b_m)

    def conditional_x(self, h_m: Tensor, h_c: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (B, D) and covariance (B, D, D) of p(x | h) (eq. 20.47): C = (I +
        sum_j h_c,j r_j r_j^T)^-1, mean C W h_m. One D x D solve per row.
        """
        # [maths:covariance.conditional_x]
        eye = torch.eye(self.n_visible, dtype=self.W.dtype, device=self.W.device)
        prec = eye + torch.einsum("dj,bj,ej->bde", self.R, h_c, self.R)  # (B, D, D)
        cov = torch.linalg.inv(prec)
        mean = (cov @ (h_m @ self.W.T)[:, :, None])[..., 0]  # (B, D)
        # [/maths:covariance.conditional_x]
        return mean, cov

    @torch.no_grad()
    def sample_x_given_h(self, h_m, h_c, generator=None) -> Tensor:
        """x ~ p(x | h) by a Cholesky factor of the precision: the costly way."""
        eye = torch.eye(self.n_visible, dtype=self.W.dtype, device=self.W.device)
        prec = eye + torch.einsum("dj,bj,ej->bde", self.R, h_c, self.R)
        L = torch.linalg.cholesky(prec)  # prec = L L^T; x = mean + L^-T z
        mean = torch.cholesky_solve((h_m @ self.W.T)[:, :, None], L)[..., 0]
        z = _randn(mean.shape, mean, generator, 1.0)[:, :, None]
        return mean + torch.linalg.solve_triangular(L.mT, z, upper=True)[..., 0]


class MeanCovarianceRBM(_MeanCovariance):
    """mcRBM (Ranzato & Hinton 2010; eq. 20.43-20.47): ``n_mean`` binary mean units
    (a GRBM with unit precisions and no visible mean) and ``n_cov`` binary covariance
    units with filters ``R (D, n_cov)`` and biases ``b_c``.
    """

    def __init__(
        self,
        n_visible: int,
        n_mean: int,
        n_cov: int,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(
            n_visible,
            n_mean,
            n_cov,
            init_std=init_std,
            generator=generator,
            dtype=dtype,
        )
        self.b_c = nn.Parameter(torch.zeros(n_cov, dtype=self.W.dtype))

    def energy(self, x: Tensor, h_m: Tensor, h_c: Tensor) -> Tensor:
        """E_mc(x, h_m, h_c) = E_m + E_c (eq. 20.43-20.45); (B,)."""
        x = self._check_x(x)
        # [maths:covariance.mcrbm_energy]
        e_c = 0.5 * ((x @ self.R) ** 2 * h_c).sum(-1) - h_c @ self.b_c  # eq. 20.45
        return self.mean_energy(x, h_m) + e_c
        # [/maths:covariance.mcrbm_energy]

    def p_hc_given_x(self, x: Tensor) -> Tensor:
        """P(h_c,j = 1 | x) = sigmoid(b_c,j - 1/2 (x.r_j)^2); (B, Hc)."""
        return torch.sigmoid(self.b_c - 0.5 * (self._check_x(x) @ self.R) ** 2)

    def free_energy(self, x: Tensor) -> Tensor:
        """F(x) = 1/2 x.x - sum softplus(b_m + x W) - sum softplus(b_c - (x R)^2/2)."""
        x = self._check_x(x)
        # [maths:covariance.mcrbm_free_energy]
        mean_part = F.softplus(x @ self.W + self.b_m).sum(-1)
        cov_part = F.softplus(self.b_c - 0.5 * (x @ self.R) ** 2).sum(-1)
        return 0.5 * (x**2).sum(-1) - mean_part - cov_part
        # [/maths:covariance.mcrbm_free_energy]


class MeanPoT(_MeanCovariance):
    """mPoT (Ranzato et al. 2010b; eq. 20.48-20.49): Gamma-distributed covariance
    units with shapes ``gamma (n_cov,)`` (positive, stored as ``log_gamma``).
    """

    def __init__(
        self,
        n_visible: int,
        n_mean: int,
        n_cov: int,
        *,
        gamma: float = 1.0,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(
            n_visible,
            n_mean,
            n_cov,
            init_std=init_std,
            generator=generator,
            dtype=dtype,
        )
        if not gamma > 0:
            raise ValueError(
                f"mPoT shapes gamma must be > 0 (Gamma distributions); got {gamma}"
            )
        self.log_gamma = nn.Parameter(
            torch.full((n_cov,), math.log(gamma), dtype=self.W.dtype)
        )

    def energy(self, x: Tensor, h_m: Tensor, h_c: Tensor) -> Tensor:
        """E_mPoT (eq. 20.48-20.49), h_c > 0; (B,)."""
        x = self._check_x(x)
        if bool((h_c <= 0).any()):
            raise ValueError("mPoT covariance units h_c must be > 0 (Gamma variables)")
        gamma = self.log_gamma.exp()
        # [maths:covariance.mpot_energy]
        e_c = (h_c * (1 + 0.5 * (x @ self.R) ** 2) + (1 - gamma) * h_c.log()).sum(-1)
        return self.mean_energy(x, h_m) + e_c
        # [/maths:covariance.mpot_energy]

    def hc_given_x(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """p(h_c,j | x) = Gamma(shape gamma_j, rate 1 + (x.r_j)^2 / 2): (shape, rate),
        both (B, Hc); its mean is shape / rate.
        """
        rate = 1 + 0.5 * (self._check_x(x) @ self.R) ** 2
        return self.log_gamma.exp().expand_as(rate), rate

    def free_energy(self, x: Tensor) -> Tensor:
        """F(x) = 1/2 x.x - sum softplus(b_m + x W) + sum_j gamma_j log(1 + (x.r_j)^2/2)
        - sum_j log Gamma(gamma_j) (h_c integrated out: int h^(g-1) e^(-a h) dh =
        Gamma(g) a^-g).
        """
        x = self._check_x(x)
        gamma = self.log_gamma.exp()
        # [maths:covariance.mpot_free_energy]
        mean_part = F.softplus(x @ self.W + self.b_m).sum(-1)
        cov_part = (gamma * torch.log1p(0.5 * (x @ self.R) ** 2)).sum(-1)
        const = torch.lgamma(gamma).sum()
        return 0.5 * (x**2).sum(-1) - mean_part + cov_part - const
        # [/maths:covariance.mpot_free_energy]


def mcrbm_log_partition(model: MeanCovarianceRBM) -> Tensor:
    """Exact log Z of a small mcRBM: the covariance units enumerated (one D x D
    Cholesky each), the mean units enumerated inside, x integrated in closed form:

    log Z = logsumexp_h [b.h + D/2 log 2pi - 1/2 log|P(h_c)| + 1/2 m^T P^-1 m],
    m = W h_m, P(h_c) = I + sum_j h_c,j r_j r_j^T. Needs n_mean, n_cov <= 12.
    """
    D, Hm = model.W.shape
    Hc = model.R.shape[1]
    if Hm > 12 or Hc > 12:
        raise ValueError(
            f"exact log Z of an mcRBM enumerates 2**n_mean * 2**n_cov states; got "
            f"{Hm} and {Hc} (at most 12 each). Use ais(MCRBMPath(model)) instead"
        )
    with torch.no_grad():
        W, R = model.W.double(), model.R.double()
        hc = all_states(Hc, dtype=torch.float64, device=W.device)  # (2^Hc, Hc)
        eye = torch.eye(D, dtype=torch.float64, device=W.device)
        L = torch.linalg.cholesky(eye + torch.einsum("dj,bj,ej->bde", R, hc, R))
        log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        base = hc @ model.b_c.double() + 0.5 * D * LOG_2PI - 0.5 * log_det  # (2^Hc,)

        def log_f(hm: Tensor) -> Tensor:  # (n, Hm) -> (n, 2^Hc)
            m = hm @ W.T  # (n, D)
            y = torch.linalg.solve_triangular(
                L[None], m[:, None, :, None].expand(-1, len(hc), -1, -1), upper=False
            )  # (n, 2^Hc, D, 1) = L^-1 m
            quad = 0.5 * (y[..., 0] ** 2).sum(-1)  # 1/2 m^T P^-1 m
            return (hm @ model.b_m.double())[:, None] + base + quad

        return torch.logsumexp(
            log_sum_exp_states(log_f, Hm, dtype=torch.float64, device=W.device), 0
        )


class SpikeSlabRBM(nn.Module):
    """ssRBM (Courville et al. 2011; eq. 20.50-20.53) with ``n_hidden`` spike-slab
    pairs. Buffers, set directly: ``W (D, H)``, ``b (H,)``, ``log_lambda (D,)``,
    ``Phi (D, H)`` (non-negative), ``log_alpha (H,)``, ``mu (H,)``.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                f"SpikeSlabRBM needs n_visible, n_hidden >= 1; got {n_visible}, "
                f"{n_hidden}"
            )
        dtype = dtype or torch.get_default_dtype()
        like = torch.zeros((), dtype=dtype)
        self.register_buffer(
            "W", _randn((n_visible, n_hidden), like, generator, init_std)
        )
        self.register_buffer("b", torch.zeros(n_hidden, dtype=dtype))
        self.register_buffer("log_lambda", torch.zeros(n_visible, dtype=dtype))
        self.register_buffer("Phi", torch.zeros(n_visible, n_hidden, dtype=dtype))
        self.register_buffer("log_alpha", torch.zeros(n_hidden, dtype=dtype))
        self.register_buffer("mu", torch.zeros(n_hidden, dtype=dtype))

    def check_parameters(self) -> None:
        """Phi must be non-negative (eq. 20.51)."""
        if bool((self.Phi < 0).any()):
            raise ValueError(
                "ssRBM Phi (D, H) must be non-negative: column i is the diagonal of "
                f"Phi_i; got min {float(self.Phi.min()):.4g}. Clamp it: Phi.clamp_(0)"
            )

    def _check(self, x: Tensor, n: int, name: str) -> Tensor:
        check_shape(x, 2, n, name=name, model="SpikeSlabRBM")
        return x.to(self.W.dtype)

    def energy(self, x: Tensor, s: Tensor, h: Tensor) -> Tensor:
        """E_ss(x, s, h) (eq. 20.50-20.51); (B,)."""
        D, H = self.W.shape
        x, s, h = self._check(x, D, "x"), self._check(s, H, "s"), self._check(h, H, "h")
        lam, alpha = self.log_lambda.exp(), self.log_alpha.exp()
        # [maths:covariance.ssrbm_energy]
        inter = ((x @ self.W) * s * h).sum(-1)
        quad_x = 0.5 * (x**2 * lam).sum(-1) + 0.5 * ((x**2 @ self.Phi) * h).sum(-1)
        slab = 0.5 * (alpha * s**2).sum(-1) - (alpha * self.mu * s * h).sum(-1)
        spike = -(h @ self.b) + h @ (alpha * self.mu**2)
        return -inter + quad_x + slab + spike
        # [/maths:covariance.ssrbm_energy]

    def spike_logits(self, x: Tensor) -> Tensor:
        """log P(h_i = 1 | x) / P(h_i = 0 | x), slabs integrated out; (B, H)."""
        x = self._check(x, self.W.shape[0], "x")
        alpha = self.log_alpha.exp()
        w = x @ self.W  # (B, H): W_i^T x
        # [maths:covariance.ssrbm_spike]
        gain = self.mu * w + w**2 / (2 * alpha) - 0.5 * (x**2 @ self.Phi)
        return self.b - 0.5 * alpha * self.mu**2 + gain
        # [/maths:covariance.ssrbm_spike]

    def free_energy(self, x: Tensor) -> Tensor:
        """F(x) = 1/2 x.Lambda x - sum softplus(spike_logits) - sum log(2pi/alpha)/2."""
        x = self._check(x, self.W.shape[0], "x")
        slab_const = 0.5 * (LOG_2PI - self.log_alpha).sum()
        lam = self.log_lambda.exp()
        return (
            0.5 * (x**2 * lam).sum(-1)
            - F.softplus(self.spike_logits(x)).sum(-1)
            - slab_const
        )

    def precision_given_h(self, h: Tensor) -> Tensor:
        """Lambda + sum_i Phi_i h_i - sum_i h_i W_i W_i^T / alpha_i, (B, D, D): the
        inverse of C_ss (eq. 20.53). Not always positive definite.
        """
        alpha = self.log_alpha.exp()
        diag = torch.diag_embed(self.log_lambda.exp() + h @ self.Phi.T)
        return diag - torch.einsum("di,bi,ei->bde", self.W, h / alpha, self.W)

    def min_precision_eig(self) -> Tensor:
        """The smallest eigenvalue of precision_given_h over all 2^H spike patterns:
        <= 0 means p(x | h) (eq. 20.53) does not exist and Z diverges. H <= 16.
        """
        H = self.W.shape[1]
        if H > 16:
            raise ValueError(
                f"min_precision_eig enumerates 2**H patterns; H = {H} > 16"
            )
        hs = all_states(H, dtype=self.W.dtype, device=self.W.device)
        return torch.linalg.eigvalsh(self.precision_given_h(hs)).min()

    @torch.no_grad()
    def gibbs(
        self, x: Tensor, n_steps: int = 1, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``n_steps`` sweeps h ~ P(h | x), s ~ p(s | x, h), x ~ p(x | s, h); returns
        (x, s, h). Every conditional is factorial: no matrix is inverted.
        """
        self.check_parameters()
        x = self._check(x, self.W.shape[0], "x")
        alpha, lam = self.log_alpha.exp(), self.log_lambda.exp()
        where = generator.device if generator is not None else x.device
        for _ in range(n_steps):
            # [maths:covariance.ssrbm_gibbs]
            p = torch.sigmoid(self.spike_logits(x))
            h = torch.bernoulli(p.to(where), generator=generator).to(x.device)
            s_mean = h * (self.mu + (x @ self.W) / alpha)  # (B, H)
            s = s_mean + _randn(s_mean.shape, x, generator, 1.0) / alpha.sqrt()
            prec = lam + h @ self.Phi.T  # (B, D): the diagonal of x's precision
            x_mean = ((s * h) @ self.W.T) / prec
            x = x_mean + _randn(x_mean.shape, x, generator, 1.0) / prec.sqrt()
            # [/maths:covariance.ssrbm_gibbs]
        return x, s, h


def sample_hmc(
    model,
    x0: Tensor,
    *,
    n_steps: int = 50,
    step_size: float = 0.05,
    n_leapfrog: int = 20,
    target_accept: float | None = None,
    generator: torch.Generator | None = None,
):
    """Samples of an mcRBM's or mPoT's marginal p(x) by HMC on -F(x) (Ranzato & Hinton
    2010): :func:`dgmlib.mcmc.hmc` with ``log_p = -model.free_energy``.
    """
    with torch.no_grad():
        x0 = model._check_x(x0)

    def log_p(x):
        return -model.free_energy(x)

    return hmc(
        log_p,
        x0,
        n_steps=n_steps,
        step_size=step_size,
        n_leapfrog=n_leapfrog,
        target_accept=target_accept,
        generator=generator,
    )


def fit_covariance_rbm(
    model: nn.Module,
    data: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    n_leapfrog: int = 20,
    step_size: float = 0.05,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train an mcRBM or mPoT by contrastive divergence with HMC negatives (Ranzato &
    Hinton 2010): from each data batch, one HMC step (``n_leapfrog`` leapfrog steps,
    step size adapted to 90 % acceptance) on -F(x); then Adam on F(data) -
    F(negatives). Returns the History of that loss, the acceptance and the step size.
    """
    data = model._check_x(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    state = {"step_size": step_size}

    def step(x):
        res = sample_hmc(
            model,
            x,
            n_steps=1,
            step_size=state["step_size"],
            n_leapfrog=n_leapfrog,
            target_accept=0.9,
            generator=generator,
        )
        state["step_size"] = res.step_size
        # [maths:covariance.cd_step]
        loss = model.free_energy(x).mean() - model.free_energy(res.x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        # [/maths:covariance.cd_step]
        return {
            "loss": float(loss.detach()),
            "accept": float(res.accept_rate[-1]),
            "step_size": res.step_size,
        }

    return fit(
        step,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc=f"fit {type(model).__name__}",
        quiet=quiet,
    )


def pca_whitening(x: Tensor, *, eps: float = 1e-3) -> tuple[Tensor, Tensor, float]:
    """PCA whitening from data ``x`` (N, D), as Ranzato & Hinton (2010) preprocess
    patches: returns (mean (D,), A (D, D), log|det A|) with z = (x - mean) A having
    identity covariance (eigenvalues floored at ``eps``). Densities map back by the
    change of variables: log p_x(x) = log p_z(z) + log|det A|.
    """
    mean = x.mean(0)
    evals, evecs = torch.linalg.eigh(torch.cov((x - mean).T))
    evals = evals.clamp_min(eps)
    A = evecs / evals.sqrt()  # (D, D): column k is u_k / sqrt(lambda_k)
    return mean, A, float(-0.5 * evals.log().sum())
