"""The Bernoulli restricted Boltzmann machine (Deep Learning §20.2; lecture 17).

Notation (eq. 20.4-20.16)::

    v  (B, D)  visible units in {0,1}          W  (D, H)  weights
    h  (B, H)  hidden units in {0,1}           b  (D,)    visible biases
                                               c  (H,)    hidden biases

    E(v, h) = -b.v - c.h - v.W.h                                    (eq. 20.5)
    P(h_j = 1 | v) = sigmoid(c_j + v.W[:, j])                       (eq. 20.14)
    P(v_i = 1 | h) = sigmoid(b_i + W[i, :].h)                       (eq. 20.16)
    F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + v.W[:, j])

The model computes; learning (:func:`fit_rbm`) and sampling (:mod:`dgmlib.mcmc`) are
functions that take it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..draws import bernoulli, reuse
from ..train import History
from .recipe import (
    MomentumSGD,
    fit_on_budget,
    resolve_momentum,
    resolve_schedule,
    visible_bias_from_data,
)

__all__ = [
    "BernoulliRBM",
    "cd_update",
    "centered_energy",
    "centered_gradient",
    "centered_to_uncentered",
    "fit_rbm",
    "RBMStep",
    "uncentered_parameters",
]


class BernoulliRBM(nn.Module):
    """Binary-binary RBM with weights ``W (D, H)``, visible biases ``b (D,)``, hidden
    biases ``c (H,)``.

    ``W``, ``b`` and ``c`` are plain tensors (buffers): read them, assign them, or call
    ``requires_grad_()`` on them for autograd. ``W`` starts small and random,
    ``W ~ N(0, init_std^2)``, drawn from ``generator`` when one is given and from the
    global RNG otherwise (as ``torch.nn`` layers do; ``init_std=0`` gives W = 0);
    biases start at zero. Assign ``rbm.b`` from data with
    :meth:`init_visible_bias_from_data` (Hinton's practical guide: log p_i / (1 - p_i));
    :func:`fit_rbm` does it by default.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                "BernoulliRBM needs n_visible >= 1 and n_hidden >= 1; got "
                f"{n_visible}, {n_hidden}"
            )
        dtype = dtype or torch.get_default_dtype()
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0 (0: W = 0); got {init_std}")
        W = torch.zeros(n_visible, n_hidden, dtype=dtype)
        if generator is not None:
            W = init_std * torch.randn(
                n_visible,
                n_hidden,
                generator=generator,
                dtype=dtype,
                device=generator.device,
            ).to("cpu")
        elif init_std > 0:  # the global RNG, as torch.nn layers do
            W = init_std * torch.randn(n_visible, n_hidden, dtype=dtype)
        # Buffers, not Parameters: learning is the explicit CD/SML update, the tensors
        # can be read and re-assigned (rbm.W = ...), and they still move with .to() and
        # save in state_dict.
        self.register_buffer("W", W)  # (D, H)
        self.register_buffer("b", torch.zeros(n_visible, dtype=dtype))  # (D,)
        self.register_buffer("c", torch.zeros(n_hidden, dtype=dtype))  # (H,)

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    # --- input checks -----------------------------------------------------------------
    def _check_v(self, v: Tensor, binary: bool = True) -> Tensor:
        check_shape(v, 2, self.n_visible, name="v", model="BernoulliRBM")
        if binary:
            check_binary(v, name="v", model="BernoulliRBM")
        if v.device != self.W.device:
            raise ValueError(
                f"BernoulliRBM lives on {self.W.device} but v is on {v.device}; move "
                "one: v.to(rbm.W.device)"
            )
        return v.to(self.W.dtype)

    def _check_h(self, h: Tensor) -> Tensor:
        check_shape(h, 2, self.n_hidden, name="h", model="BernoulliRBM")
        if h.device != self.W.device:
            raise ValueError(
                f"BernoulliRBM lives on {self.W.device} but h is on {h.device}; move "
                "one: h.to(rbm.W.device)"
            )
        return h.to(self.W.dtype)

    # --- exact quantities -------------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) = -b.v - c.h - v.W.h (eq. 20.5); (B, D), (B, H) -> (B,)."""
        v, h = self._check_v(v), self._check_h(h)
        if v.shape[0] != h.shape[0]:
            raise ValueError(
                f"energy needs as many h as v; got v {tuple(v.shape)} and h "
                f"{tuple(h.shape)}"
            )
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def hidden_logits(self, v: Tensor) -> Tensor:
        """c + v W, the pre-sigmoid of P(h = 1 | v) (eq. 20.14); (B, D) -> (B, H)."""
        return v @ self.W + self.c

    def visible_logits(self, h: Tensor) -> Tensor:
        """b + W h, the pre-sigmoid of P(v = 1 | h) (eq. 20.16); (B, H) -> (B, D)."""
        return h @ self.W.T + self.b

    def p_h_given_v(self, v: Tensor) -> Tensor:
        """P(h_j = 1 | v) for every j: factorial (eq. 20.7-20.14); (B, D) -> (B, H)."""
        return torch.sigmoid(self.hidden_logits(self._check_v(v, binary=False)))

    def p_v_given_h(self, h: Tensor) -> Tensor:
        """P(v_i = 1 | h) for every i (eq. 20.15-20.16); (B, H) -> (B, D)."""
        return torch.sigmoid(self.visible_logits(self._check_h(h)))

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -b.v - sum_j softplus(c_j + v.W[:, j]), so P(v) = exp(-F(v)) / Z;
        (B, D) -> (B,).
        """
        v = self._check_v(v)
        return -(v @ self.b) - F.softplus(self.hidden_logits(v)).sum(-1)

    def free_energy_hidden(self, h: Tensor) -> Tensor:
        """F(h) = -c.h - sum_i softplus(b_i + W[i, :].h), the other layer summed out;
        (B, H) -> (B,).
        """
        h = self._check_h(h)
        return -(h @ self.c) - F.softplus(self.visible_logits(h)).sum(-1)

    def unnormalized_log_prob(self, v: Tensor) -> Tensor:
        """log P*(v) = -F(v); add -log Z (dgmlib.exact.log_partition or dgmlib.mcmc.ais)
        for log P(v).
        """
        return -self.free_energy(v)

    def pseudo_log_likelihood(self, v: Tensor) -> Tensor:
        """sum_i log P(v_i | v_-i), the pseudo-likelihood (§18.3), over every unit;
        (B, D) -> (B,).

        Each term is log sigmoid(+-(F(v with v_i=0) - F(v with v_i=1))). This is what
        scikit-learn's ``score_samples`` estimates (by flipping one random unit); it is
        not log P(v).
        """
        v = self._check_v(v)
        pre = self.hidden_logits(v)  # (B, H)
        base = -(v @ self.b) - F.softplus(pre).sum(-1)  # F(v), (B,)
        # flipping unit i changes v_i by s_i = 1 - 2 v_i: pre + s_i W[i], b.v + s_i b_i
        s = 1 - 2 * v  # (B, D)
        flipped_pre = pre[:, None, :] + s[:, :, None] * self.W[None]  # (B, D, H)
        flipped = (
            -(v @ self.b)[:, None] - s * self.b - F.softplus(flipped_pre).sum(-1)
        )  # (B, D)
        return F.logsigmoid(flipped - base[:, None]).sum(-1)

    @torch.no_grad()
    def init_visible_bias_from_data(
        self, v: Tensor, *, smoothing: float = 0.01
    ) -> None:
        """Set b_i = log(p_i / (1 - p_i)) from smoothed pixel means p_i
        (Hinton 2010, §8.1).
        """
        self.b.copy_(visible_bias_from_data(self._check_v(v), smoothing=smoothing))


# --- learning -------------------------------------------------------------------------
def cd_update(
    rbm: BernoulliRBM, v_pos: Tensor, v_neg: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The (negative) log-likelihood gradient estimate of CD/SML: positive minus
    negative phase.

    Returns (dW, db, dc), the *ascent* directions ``dW = <v h>_data - <v h>_model`` with
    h replaced by P(h = 1 | v) (eq. 18.6 / Algorithms 18.2-18.3); equals minus the
    autograd gradient of ``F(v_pos).mean() - F(v_neg).mean()``.
    """
    ph_pos = rbm.p_h_given_v(v_pos)  # (B, H)
    ph_neg = rbm.p_h_given_v(v_neg)  # (M, H)
    dW = v_pos.T @ ph_pos / len(v_pos) - v_neg.T @ ph_neg / len(v_neg)  # (D, H)
    db = v_pos.mean(0) - v_neg.mean(0)
    dc = ph_pos.mean(0) - ph_neg.mean(0)
    return dW, db, dc


# --- the centered RBM (eq. 20.36-20.37 for the BM; Montavon & Mueller 2012) ----------
def centered_energy(
    v: Tensor, h: Tensor, W: Tensor, b_c: Tensor, c_c: Tensor, mu: Tensor, lam: Tensor
) -> Tensor:
    """E(v, h) = -(v - mu).b_c - (h - lam).c_c - (v - mu) W (h - lam), the RBM with
    offsets ``mu (D,)`` and ``lam (H,)`` (eq. 20.36-20.37 with the BM's one offset
    vector split over the two layers); (B, D), (B, H) -> (B,).
    """
    x, y = v - mu, h - lam
    return -(x @ b_c) - (y @ c_c) - ((x @ W) * y).sum(-1)


def uncentered_parameters(
    W: Tensor, b_c: Tensor, c_c: Tensor, mu: Tensor, lam: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(W, b, c) of the ordinary RBM with the same distribution as the centered one:
    expanding the centered energy, b = b_c - W lam and c = c_c - W^T mu (the rest is a
    constant that cancels in Z).
    """
    return W, b_c - W @ lam, c_c - W.T @ mu


def centered_gradient(
    rbm: BernoulliRBM, v_pos: Tensor, v_neg: Tensor, mu: Tensor, lam: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The ascent directions of the centered RBM in its own parameters (Melchior,
    Fischer & Wiskott 2016, eq. 10-12), h replaced by P(h = 1 | v)::

        dW   = <(v - mu)(h - lam)^T>_data - <(v - mu)(h - lam)^T>_model
        db_c = <v>_data - <v>_model        dc_c = <h>_data - <h>_model

    (the minus autograd gradient of F_c(v_pos).mean() - F_c(v_neg).mean() with F_c
    the centered free energy).
    """
    ph_pos, ph_neg = rbm.p_h_given_v(v_pos), rbm.p_h_given_v(v_neg)
    x_pos, y_pos, x_neg, y_neg = v_pos - mu, ph_pos - lam, v_neg - mu, ph_neg - lam
    dW = x_pos.T @ y_pos / len(v_pos) - x_neg.T @ y_neg / len(v_neg)  # (D, H)
    return dW, v_pos.mean(0) - v_neg.mean(0), ph_pos.mean(0) - ph_neg.mean(0)


def centered_to_uncentered(
    dW: Tensor, db_c: Tensor, dc_c: Tensor, mu: Tensor, lam: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """A step (dW, db_c, dc_c) in the centered parameters, as a step in the model's
    (W, b, c) (differentiating b = b_c - W lam, c = c_c - W^T mu with the offsets
    held): (dW, db_c - dW lam, dc_c - dW^T mu).
    """
    return dW, db_c - dW @ lam, dc_c - dW.T @ mu


@dataclass
class RBMStep:
    """One SGD step of CD-k or PCD-k (SML) on a minibatch; holds persistent chains.

    ``lr`` and ``momentum`` are the current values (:func:`fit_rbm` sets them before
    each update from its schedules); the update is :class:`~dgmlib.energy.recipe.
    MomentumSGD`'s, weight decay on ``W`` only. Both steps draw their states with
    :func:`dgmlib.draws.bernoulli`. ``fused=True`` (default) runs the step with
    preallocated buffers, in-place sigmoids and draws, the data and the chains stacked
    so that one product gives both phases' hidden probabilities (PCD) and one the
    weights' gradient (bfloat16), and the momentum folded into the weight products;
    ``fused=False`` is the readable step, the same numbers on the same seed
    (tests/test_rbm_recipe.py). ``centered=True`` follows the centered
    gradient (:func:`centered_gradient`) with offsets ``mu`` (fixed) and ``lam`` (an
    exponential moving average of the data's hidden means, rate ``offset_rate``).
    """

    rbm: BernoulliRBM
    method: str
    k: int
    lr: float
    momentum: float
    weight_decay: float
    generator: torch.Generator | None
    monitor: bool = True  # record the reconstruction error (one more matmul)
    chains: Tensor | None = (
        None  # (M, D) persistent fantasy particles (PCD); in matmul_dtype if set
    )
    chain_h: Tensor | None = None  # (M, H) their hidden states (likewise)
    matmul_dtype: torch.dtype | None = (
        None  # e.g. torch.bfloat16: mixed precision (see fit_rbm)
    )
    fused: bool = True
    centered: bool = False
    mu: Tensor | None = None  # (D,) visible offsets of the centered RBM
    lam: Tensor | None = None  # (H,) hidden offsets
    offset_rate: float = 0.01

    def __post_init__(self):
        rbm = self.rbm
        self.opt = MomentumSGD(
            [rbm.W, rbm.b, rbm.c],
            [True, False, False],
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        self._buf: dict[str, Tensor] = {}
        if self.centered:
            if self.mu is None:
                self.mu = torch.full_like(rbm.b, 0.5)
            if self.lam is None:
                self.lam = torch.full_like(rbm.c, 0.5)

    @property
    def _vel(self) -> list[Tensor]:
        return self.opt.velocities

    # --- the readable step ------------------------------------------------------------
    def _sample(self, p: Tensor) -> Tensor:
        # u < p on a 2^24-point grid, u from random 64-bit words (dgmlib.draws): faster
        # than torch.rand on CPU. The states feed only matrix products, so
        # they are stored in matmul_dtype when one is set (0 and 1 are exact in it).
        return bernoulli(p, self.generator).to(self.matmul_dtype or p.dtype)

    def _products(self, W: Tensor):
        """``(v @ W, h @ W.T)`` as functions returning W's dtype, the products in
        ``matmul_dtype`` when one is set.
        """
        lo, dt = self.matmul_dtype, W.dtype
        if lo is None:
            return (lambda v: v @ W), (lambda h: h @ W.T)
        W_lo = W.to(lo)  # a low-precision copy of the master weights
        return (lambda v: (v.to(lo) @ W_lo).to(dt)), (
            lambda h: (h.to(lo) @ W_lo.T).to(dt)
        )

    def _readable(self, v_pos: Tensor) -> tuple[Tensor, Tensor]:
        rbm = self.rbm
        W, b, c = rbm.W, rbm.b, rbm.c
        up, down = self._products(W)
        ph_pos = torch.sigmoid(up(v_pos) + c)  # (B, H) positive phase, eq. 20.14
        if self.method == "cd":  # chains start at the data (Algorithm 18.2)
            h = self._sample(ph_pos)
        else:  # persistent chains (SML, Algorithm 18.3)
            if self.chain_h is None:
                self.chain_h = self._sample(torch.sigmoid(up(self.chains) + c))
            h = self.chain_h
        for t in range(self.k):  # block Gibbs, k sweeps
            v_neg = self._sample(torch.sigmoid(down(h) + b))  # (M, D), eq. 20.16
            ph = torch.sigmoid(up(v_neg) + c)  # (M, H)
            if t < self.k - 1:
                h = self._sample(ph)
        if self.method == "pcd":
            # The persistent state is the (v, h) pair; h is drawn here with the current
            # parameters and the next update's sweep starts from it.
            self.chains, self.chain_h = v_neg, self._sample(ph)
        v_neg = v_neg.to(W.dtype)
        # ascent: <v h>_data - <v h>_model with h -> P(h|v) (= cd_update)
        n_pos, n_neg = len(v_pos), len(v_neg)
        if self.centered:
            x_pos, y_pos = v_pos - self.mu, ph_pos - self.lam
            x_neg, y_neg = v_neg - self.mu, ph - self.lam
            dW = x_pos.T @ y_pos / n_pos - x_neg.T @ y_neg / n_neg
            db_c, dc_c = v_pos.mean(0) - v_neg.mean(0), ph_pos.mean(0) - ph.mean(0)
            grads = centered_to_uncentered(dW, db_c, dc_c, self.mu, self.lam)
        else:
            dW = v_pos.T @ ph_pos / n_pos - v_neg.T @ ph / n_neg  # (D, H)
            grads = dW, v_pos.mean(0) - v_neg.mean(0), ph_pos.mean(0) - ph.mean(0)
        self.opt.momentum, self.opt.weight_decay = self.momentum, self.weight_decay
        self.opt.step(grads, self.lr)
        return ph_pos, v_neg

    # --- the fused step ---------------------------------------------------------------
    def _b(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """A preallocated buffer, reused while its shape and dtype stay the same."""
        return reuse(self._buf, name, shape, dtype, self.rbm.W.device)

    def _draw(self, p: Tensor, name: str, out: Tensor | None = None) -> Tensor:
        """Bernoulli(p) in ``out`` or buffer ``name``; the draws of :meth:`_sample`."""
        if out is None:
            out = self._b(name, p.shape, self.matmul_dtype or p.dtype)
        return bernoulli(p, self.generator, out=out, buffers=self._buf)

    def _fused(self, v_pos: Tensor) -> tuple[Tensor, Tensor]:
        rbm, b_ = self.rbm, self._b
        W, b, c = rbm.W, rbm.b, rbm.c
        (D, H), dt, lo = W.shape, W.dtype, self.matmul_dtype
        B, M = len(v_pos), len(self.chains) if self.method == "pcd" else len(v_pos)
        W_lo = W if lo is None else b_("W_lo", (D, H), lo).copy_(W)

        def up(v, out):  # sigmoid(c + v W) into out, in place
            if lo is None:
                return torch.addmm(c, v, W, out=out).sigmoid_()
            a = torch.mm(v, W_lo, out=b_(f"a{len(v)}", (len(v), H), lo))
            return torch.add(a, c, out=out).sigmoid_()

        def down(h):  # sigmoid(b + h W^T)
            pv = b_("pv", (len(h), D), dt)
            if lo is None:
                return torch.addmm(b, h, W.T, out=pv).sigmoid_()
            a = torch.mm(h, W_lo.T, out=b_("pv_lo", (len(h), D), lo))
            return torch.add(a, b, out=pv).sigmoid_()

        # X = [v_pos; v_neg] and P = [P(h|v_pos); P(h|v_neg)]: the states and their
        # hidden probabilities, stacked so one product serves both phases
        X, P = b_("X", (B + M, D), lo or dt), b_("P", (B + M, H), dt)
        X[:B].copy_(v_pos)
        ph_pos, v_neg, ph = P[:B], X[B:], P[B:]
        if self.method == "cd":
            h = self._draw(up(X[:B], ph_pos), "h")
        else:
            if self.chain_h is None:
                chains = self.chains.to(lo or dt)
                self.chain_h = self._draw(up(chains, b_("P0", (M, H), dt)), "h")
            h = self.chain_h
        for t in range(self.k):
            self._draw(down(h), "v", out=v_neg)  # (M, D)
            if t < self.k - 1:
                h = self._draw(up(v_neg, ph), "h")
        if self.method == "pcd":  # both phases in one product
            up(X, P)
            self.chains, self.chain_h = v_neg, self._draw(ph, "h")
        else:
            up(v_neg, ph)
        lr, m = self.lr, self.momentum
        vW, vb, vc = self.opt.velocities
        mu, lam = self.mu, self.lam
        if self.centered:  # centered products: the same GEMMs on shifted factors
            x_pos = torch.sub(v_pos, mu, out=b_("x_pos", (B, D), dt))
            y_pos = torch.sub(ph_pos, lam, out=b_("y_pos", (B, H), dt))
            x_neg = torch.sub(v_neg, mu, out=b_("x_neg", (M, D), dt))
            y_neg = torch.sub(ph, lam, out=b_("y_neg", (M, H), dt))
        else:
            x_pos, y_pos, x_neg, y_neg = X[:B], ph_pos, v_neg, ph
        if lo is None:
            # momentum folded into the first product: vW <- m vW + lr/B x^T y - ...
            vW.addmm_(x_pos.T, y_pos, beta=m, alpha=lr / B)
            vW.addmm_(x_neg.T, y_neg, alpha=-lr / M)
        else:
            # both phases in one low-precision product of the stacked minibatches: the
            # kernel accumulates in float32, so the difference is rounded once
            if self.centered:
                X = b_("XC", (B + M, D), lo)
                X[:B].copy_(x_pos)
                X[B:].copy_(x_neg)
            Y = b_("Y", (B + M, H), lo)
            torch.mul(y_pos, 1 / B, out=Y[:B])
            torch.mul(y_neg, -1 / M, out=Y[B:])
            G = torch.mm(X.T, Y, out=b_("G", (D, H), lo))
            if m:
                vW.mul_(m)
            # widened first: an add of mixed dtypes takes a slow path on CPU
            vW.add_(b_("G_f", (D, H), dt).copy_(G), alpha=lr)
        if self.weight_decay:
            vW.add_(W, alpha=-lr * self.weight_decay)
        db = v_pos.mean(0) - v_neg.sum(0, dtype=dt) / M  # (D,)
        dc = ph_pos.mean(0) - ph.mean(0)  # (H,)
        if self.centered:  # db_c - dW lam, dc_c - dW^T mu, without forming dW
            sy_pos, sy_neg = y_pos @ lam / B, y_neg @ lam / M  # (B,), (M,)
            sx_pos, sx_neg = x_pos @ mu / B, x_neg @ mu / M
            db -= sy_pos @ x_pos - sy_neg @ x_neg
            dc -= sx_pos @ y_pos - sx_neg @ y_neg
        vb.mul_(m).add_(db, alpha=lr)
        vc.mul_(m).add_(dc, alpha=lr)
        W.add_(vW)
        b.add_(vb)
        c.add_(vc)
        return ph_pos, v_neg

    @torch.no_grad()
    def __call__(self, v_pos: Tensor) -> dict[str, float]:
        ph_pos, _ = (self._fused if self.fused else self._readable)(v_pos)
        if self.centered:  # hidden offsets follow the data's hidden means
            self.lam.lerp_(ph_pos.mean(0), self.offset_rate)
        if not self.monitor:
            return {}
        rbm = self.rbm
        return {
            "recon_error": float(
                ((v_pos - torch.sigmoid(ph_pos @ rbm.W.T + rbm.b)) ** 2).sum(1).mean()
            )
        }


def fit_rbm(
    rbm: BernoulliRBM,
    data: Tensor,
    *,
    method: str = "pcd",
    k: int = 1,
    batch_size: int = 100,
    epochs: int | None = None,
    lr: float = 0.05,
    momentum: float | Callable[[float], float] = 0.5,
    weight_decay: float = 1e-4,
    n_chains: int | None = None,
    monitor: bool = True,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    matmul_dtype: torch.dtype | None = None,
    schedule: str | Callable[[float], float] = "linear",
    seconds: float | None = None,
    chains: Tensor | None = None,
    init_visible_bias: bool = True,
    centered: bool = False,
    offsets: tuple[Tensor, Tensor] | None = None,
    offset_rate: float = 0.01,
    fused: bool = True,
) -> History:
    """Train ``rbm`` in place by CD-k (``method="cd"``) or PCD-k / SML
    (``method="pcd"``), with the library's recipe (:mod:`dgmlib.energy.recipe`).

    CD-k starts each negative chain at the minibatch (Algorithm 18.2); PCD keeps
    ``n_chains`` persistent chains (default: ``batch_size``) across every update of the
    call (Algorithm 18.3, Tieleman 2008), started at random training images, or at
    ``chains`` when the caller passes back ``History.chains`` of an earlier call.

    The budget is ``epochs`` (default 1) or ``seconds`` of wall-clock time (then
    ``epochs``, if given, caps it). The rate of update i is ``lr * schedule(t)``, t the
    fraction of the budget spent: ``"linear"`` (default) decays to zero
    (Salakhutdinov & Murray 2008), ``"constant"`` keeps ``lr``, which makes the
    likelihood of PCD rise and then fall (Fischer & Igel 2010; chapter 4). Momentum
    (a number or a callable of t, e.g. ``recipe.momentum_ramp()``) and weight decay on
    ``W`` (default 1e-4, Hinton 2010 §10) follow :class:`recipe.MomentumSGD`. With
    ``init_visible_bias`` (default) the visible biases start at the data's log-odds
    (Hinton 2010 §8.1) when they are all zero and no ``chains`` are passed back.

    ``centered=True`` follows the centered gradient (:func:`centered_gradient`;
    Montavon & Mueller 2012, Melchior et al. 2016) with visible offsets ``mu`` the data
    mean and hidden offsets ``lam`` starting at 0.5 and tracking the data's hidden
    means (moving average, ``offset_rate``); ``offsets=(mu, lam)`` resumes them
    (``History.offsets``). The model stays an ordinary RBM: only the update differs.

    Records ``recon_error`` (squared error of one mean-field reconstruction) per step
    when ``monitor``; it is a rough progress signal, not the likelihood.

    ``matmul_dtype=torch.bfloat16`` runs the step's matrix products in bfloat16 (mixed
    precision: the parameters, velocities, sigmoids and draws' probabilities stay in
    the model's dtype, and the products accumulate in float32). Its rounding (about
    0.4 % of a logit) is far below the Monte-Carlo noise of the gradient; on CPUs with
    AVX-512 BF16 or AMX (and on GPUs) it is several times faster. ``fused=False`` runs
    the readable step (same numbers on the same seed, slower).
    """
    if method not in ("cd", "pcd"):
        raise ValueError(f"method must be 'cd' or 'pcd'; got {method!r}")
    if k < 1:
        raise ValueError(f"k (Gibbs steps per update) must be >= 1; got {k}")
    data = rbm._check_v(data)
    if matmul_dtype is not None and not matmul_dtype.is_floating_point:
        raise ValueError(
            "matmul_dtype must be a floating dtype such as torch.bfloat16; got "
            f"{matmul_dtype}"
        )
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds (a time budget) must be > 0; got {seconds}")
    if epochs is not None and epochs < 0:
        raise ValueError(f"epochs must be >= 0; got {epochs}")
    lr_of, momentum_of = resolve_schedule(schedule), resolve_momentum(momentum)
    if chains is not None:
        if method != "pcd":
            raise ValueError("chains are the persistent chains of method='pcd'")
        chains = rbm._check_v(chains).clone()
    if init_visible_bias and chains is None and not rbm.b.any():
        rbm.init_visible_bias_from_data(data)
    mu = lam = None
    if centered:
        if offsets is not None:
            mu, lam = (t.to(rbm.W).clone() for t in offsets)
        else:
            mu, lam = data.mean(0), torch.full_like(rbm.c, 0.5)
    step = RBMStep(
        rbm,
        method,
        k,
        lr,
        momentum_of(0.0),
        weight_decay,
        generator,
        monitor,
        matmul_dtype=matmul_dtype,
        fused=fused,
        centered=centered,
        mu=mu,
        lam=lam,
        offset_rate=offset_rate,
    )
    if method == "pcd":
        if chains is None:
            m = n_chains or batch_size
            idx = torch.randint(
                len(data),
                (m,),
                generator=generator,
                device=generator.device if generator is not None else "cpu",
            )
            chains = data[idx.to(data.device)].clone()
        step.chains = chains

    def rates(t: float) -> None:
        step.lr, step.momentum = lr * lr_of(t), momentum_of(t)

    hist, progress = fit_on_budget(
        step,
        data,
        rates,
        epochs=epochs,
        seconds=seconds,
        batch_size=batch_size,
        generator=generator,
        desc=f"{method.upper()}-{k}",
        quiet=quiet,
    )
    hist.chains = (
        None if step.chains is None else step.chains.to(rbm.W.dtype).clone()
    )  # final fantasy particles (PCD): pass them back as chains= to continue
    hist.offsets = (step.mu, step.lam) if centered else None
    hist.updates = progress.steps
    return hist
