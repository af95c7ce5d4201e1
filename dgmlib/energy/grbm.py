"""The Gaussian-Bernoulli RBM in the precision form (Deep Learning §20.5.1).

Notation (eq. 20.38-20.42, with a visible mean ``b``)::

    v  (B, D)  real visible units              W         (D, H)  weights
    h  (B, H)  binary hidden units             b         (D,)    visible means
    beta = exp(log_beta)  (D,) precisions      c         (H,)    hidden biases

    E(v, h) = 1/2 sum_i beta_i (v_i - b_i)^2 - sum_ij beta_i v_i W_ij h_j - c.h
              [+ sum_j h_j t_j,  t_j = 1/2 sum_i beta_i W_ij^2   (eq. 20.41)]
    p(v | h)       = N(v; b + W h, diag(beta)^-1)                       (eq. 20.38)
    P(h_j = 1 | v) = sigmoid(c_j + sum_i beta_i v_i W_ij - t_j)
    F(v) = 1/2 sum_i beta_i (v_i - b_i)^2 - sum_j softplus(c_j + (beta v).W_j - t_j)

``hidden_term=True`` adds the term of eq. 20.41 (sign flipped) to the energy: it biases
a hidden unit off when its weights onto high-precision visible units are large. It
changes the parametrisation, not the family (a shift of ``c``).

Integrating v out in closed form (a Gaussian integral per hidden state),

    log Z = D/2 log 2pi - 1/2 sum_i log beta_i
            + logsumexp_h [(c - t).h + sum_i beta_i (b_i (Wh)_i + 1/2 (Wh)_i^2)],

which :func:`dgmlib.exact.log_partition` sums over the 2^H hidden states.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_shape
from ..train import History, fit

__all__ = ["GaussianBernoulliRBM", "GRBMStep", "fit_grbm", "grbm_gibbs"]

LOG_2PI = math.log(2 * math.pi)


class GaussianBernoulliRBM(nn.Module):
    """Gaussian-Bernoulli RBM with weights ``W (D, H)``, visible means ``b (D,)``,
    hidden biases ``c (H,)`` and log precisions ``log_beta (D,)`` (eq. 20.42).

    The four tensors are buffers: read them, assign them (``grbm.W = ...``) or change
    them in place. ``W ~ N(0, init_std^2)`` from ``generator`` (the global RNG when
    None); ``b = c = 0``; ``log_beta = 0`` (unit precisions) unless ``beta`` is given,
    which must be positive. ``hidden_term`` adds eq. 20.41 to the energy.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        beta: Tensor | float | None = None,
        hidden_term: bool = False,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                "GaussianBernoulliRBM needs n_visible >= 1 and n_hidden >= 1; got "
                f"{n_visible}, {n_hidden}"
            )
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0 (0: W = 0); got {init_std}")
        dtype = dtype or torch.get_default_dtype()
        where = generator.device if generator is not None else "cpu"
        W = init_std * torch.randn(
            n_visible, n_hidden, generator=generator, dtype=dtype, device=where
        )
        log_beta = torch.zeros(n_visible, dtype=dtype)
        if beta is not None:
            log_beta = self.precisions_to_log(beta, n_visible).to(dtype)
        self.hidden_term = bool(hidden_term)
        self.register_buffer("W", W.cpu())  # (D, H)
        self.register_buffer("b", torch.zeros(n_visible, dtype=dtype))  # (D,)
        self.register_buffer("c", torch.zeros(n_hidden, dtype=dtype))  # (H,)
        self.register_buffer("log_beta", log_beta)  # (D,)

    @staticmethod
    def precisions_to_log(beta: Tensor | float, n_visible: int) -> Tensor:
        """log beta (D,) from precisions given directly (a number or (D,)); rejects
        non-positive or non-finite ones.
        """
        beta = torch.as_tensor(beta, dtype=torch.float64)
        if beta.ndim == 0:
            beta = beta.expand(n_visible)
        if beta.shape != (n_visible,):
            raise ValueError(
                f"precisions beta must be a number or have shape ({n_visible},); got "
                f"shape {tuple(beta.shape)}"
            )
        if not bool(torch.isfinite(beta).all()) or bool((beta <= 0).any()):
            raise ValueError(
                "precisions beta must be finite and > 0 (they are inverse variances); "
                f"got min {float(beta.min()):.4g}. Pass 1 / data.var(0) for the data's "
                "marginal precisions."
            )
        return beta.log()

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def beta(self) -> Tensor:
        """Precisions exp(log_beta), (D,)."""
        return self.log_beta.exp()

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"hidden_term={self.hidden_term}"
        )

    # --- input checks -----------------------------------------------------------------
    def _check(self, x: Tensor, n: int, name: str) -> Tensor:
        check_shape(x, 2, n, name=name, model="GaussianBernoulliRBM")
        if x.device != self.W.device:
            raise ValueError(
                f"GaussianBernoulliRBM lives on {self.W.device} but {name} is on "
                f"{x.device}; move it: {name}.to(grbm.W.device)"
            )
        return x.to(self.W.dtype)

    # --- exact quantities -------------------------------------------------------------
    def hidden_offset(self) -> Tensor:
        """t_j = 1/2 sum_i beta_i W_ij^2 (eq. 20.41) when ``hidden_term``, else 0."""
        if not self.hidden_term:
            return torch.zeros_like(self.c)
        return 0.5 * (self.beta @ self.W**2)  # (H,)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) (eq. 20.42 with a visible mean); (B, D), (B, H) -> (B,)."""
        v, h = self._check(v, self.n_visible, "v"), self._check(h, self.n_hidden, "h")
        if v.shape[0] != h.shape[0]:
            raise ValueError(
                f"energy needs as many h as v; got v {tuple(v.shape)} and h "
                f"{tuple(h.shape)}"
            )
        beta = self.beta
        # [maths:grbm.energy]
        quad = 0.5 * ((v - self.b) ** 2 * beta).sum(-1)  # (B,)
        inter = (((v * beta) @ self.W) * h).sum(-1)  # (B,)
        return quad - inter - h @ (self.c - self.hidden_offset())
        # [/maths:grbm.energy]

    def hidden_logits(self, v: Tensor) -> Tensor:
        """c_j + sum_i beta_i v_i W_ij - t_j; (B, D) -> (B, H)."""
        v = self._check(v, self.n_visible, "v")
        return (v * self.beta) @ self.W + self.c - self.hidden_offset()

    def p_h_given_v(self, v: Tensor) -> Tensor:
        """P(h_j = 1 | v) = sigmoid(hidden_logits); (B, D) -> (B, H)."""
        return torch.sigmoid(self.hidden_logits(v))

    def mean_v_given_h(self, h: Tensor) -> Tensor:
        """E[v | h] = b + W h (eq. 20.38); (B, H) -> (B, D). The variance is 1/beta."""
        h = self._check(h, self.n_hidden, "h")
        return self.b + h @ self.W.T

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log sum_h exp(-E(v, h)); (B, D) -> (B,)."""
        v = self._check(v, self.n_visible, "v")
        # [maths:grbm.free_energy]
        quad = 0.5 * ((v - self.b) ** 2 * self.beta).sum(-1)  # (B,)
        return quad - F.softplus(self.hidden_logits(v)).sum(-1)
        # [/maths:grbm.free_energy]

    def log_prob(self, v: Tensor, log_z: Tensor | float) -> Tensor:
        """log p(v) = -F(v) - log Z, given log Z (e.g. ``exact.log_partition``)."""
        return -self.free_energy(v) - log_z

    def log_f_hidden(self, h: Tensor) -> Tensor:
        """log int exp(-E(v, h)) dv, the Gaussian integral for each h; (n, H) -> (n,).

        Summed over every h (logsumexp) it is log Z.
        """
        h = self._check(h, self.n_hidden, "h")
        beta = self.beta
        # [maths:grbm.log_f_hidden]
        m = h @ self.W.T  # (n, D) the shift W h of the mean
        gauss = 0.5 * self.n_visible * LOG_2PI - 0.5 * self.log_beta.sum()
        shift = ((self.b * m + 0.5 * m**2) * beta).sum(-1)  # (n,)
        return gauss + shift + h @ (self.c - self.hidden_offset())
        # [/maths:grbm.log_f_hidden]

    # --- sampling ---------------------------------------------------------------------
    @torch.no_grad()
    def sample_h(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """h ~ P(h | v); (B, D) -> (B, H)."""
        return torch.bernoulli(self.p_h_given_v(v), generator=generator)

    @torch.no_grad()
    def sample_v(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """v ~ N(b + W h, diag(beta)^-1) (eq. 20.38); (B, H) -> (B, D)."""
        mean = self.mean_v_given_h(h)
        noise = torch.randn(
            mean.shape, generator=generator, dtype=mean.dtype, device=mean.device
        )
        return mean + noise * torch.exp(-0.5 * self.log_beta)


@torch.no_grad()
def grbm_gibbs(
    grbm: GaussianBernoulliRBM,
    v: Tensor,
    n_steps: int = 1,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n_steps`` block-Gibbs sweeps h ~ P(h | v), v ~ p(v | h) from ``v``."""
    for _ in range(n_steps):
        v = grbm.sample_v(grbm.sample_h(v, generator), generator)
    return v


class GRBMStep:
    """One CD-k / PCD-k update of a :class:`GaussianBernoulliRBM`.

    The gradient of the log-likelihood is E_data[-dF/dtheta] - E_model[-dF/dtheta]
    (§18.1-18.2); here it is taken by autograd of F(v_data) - F(v_model) with
    the negative samples held fixed, for W, b, c and (``learn_precision``) log_beta.
    Plain SGD with rate ``lr`` (``lr_precision`` for log_beta).
    """

    def __init__(
        self,
        grbm: GaussianBernoulliRBM,
        *,
        lr: float = 0.01,
        k: int = 1,
        persistent: bool = False,
        learn_precision: bool = False,
        lr_precision: float | None = None,
        n_chains: int = 100,
        generator: torch.Generator | None = None,
    ):
        if k < 1:
            raise ValueError(f"k (Gibbs sweeps per update) must be >= 1; got {k}")
        self.grbm, self.lr, self.k, self.persistent = grbm, lr, k, persistent
        self.learn_precision = learn_precision
        self.lr_precision = lr if lr_precision is None else lr_precision
        self.generator, self.n_chains, self.chains = generator, n_chains, None

    def __call__(self, v_pos: Tensor) -> dict[str, float]:
        grbm, g = self.grbm, self.generator
        v_pos = grbm._check(v_pos, grbm.n_visible, "v")
        if self.persistent:
            if self.chains is None:
                self.chains = v_pos[:1].expand(self.n_chains, -1).clone()
            start = self.chains
        else:
            start = v_pos
        v_neg = grbm_gibbs(grbm, start, self.k, generator=g)  # (B, D)
        if self.persistent:
            self.chains = v_neg
        names = ["W", "b", "c"] + (["log_beta"] if self.learn_precision else [])
        params = [getattr(grbm, n).requires_grad_(True) for n in names]
        try:
            # [maths:grbm.cd_step]
            loss = grbm.free_energy(v_pos).mean() - grbm.free_energy(v_neg).mean()
            grads = torch.autograd.grad(loss, params)
            # [/maths:grbm.cd_step]
        finally:
            for p in params:
                p.requires_grad_(False)
        with torch.no_grad():
            for name, p, gr in zip(names, params, grads):
                rate = self.lr_precision if name == "log_beta" else self.lr
                p.sub_(rate * gr)  # descend F(data) - F(model): ascend log p
        return {
            "recon": float(
                ((v_pos - grbm_gibbs(grbm, v_pos, 1, generator=g)) ** 2).sum(-1).mean()
            ),
            "log_beta": float(grbm.log_beta.mean()),
        }


def fit_grbm(
    grbm: GaussianBernoulliRBM,
    data: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.01,
    k: int = 1,
    persistent: bool = False,
    learn_precision: bool = False,
    lr_precision: float | None = None,
    init_from_data: bool = True,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train ``grbm`` on real-valued ``data`` (N, D) by CD-k (``persistent=False``) or
    PCD-k, with precisions fixed or learned (``learn_precision``).

    ``init_from_data`` sets b to the data mean (and, when precisions are learned, the
    start log_beta to the data's marginal log precisions). Returns the :class:`History`
    of the squared reconstruction error and the mean log precision.
    """
    data = grbm._check(data, grbm.n_visible, "data")
    if init_from_data:
        grbm.b = data.mean(0).clone()
        if learn_precision:
            grbm.log_beta = -torch.log(data.var(0) + 1e-6)
    step = GRBMStep(
        grbm,
        lr=lr,
        k=k,
        persistent=persistent,
        learn_precision=learn_precision,
        lr_precision=lr_precision,
        n_chains=batch_size,
        generator=generator,
    )
    return fit(
        step,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="fit_grbm",
        quiet=quiet,
    )
