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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..train import History, fit

__all__ = ["BernoulliRBM", "cd_update", "fit_rbm", "RBMStep"]


class BernoulliRBM(nn.Module):
    """Binary-binary RBM with weights ``W (D, H)``, visible biases ``b (D,)``, hidden
    biases ``c (H,)``.

    ``W``, ``b`` and ``c`` are plain tensors (buffers): read them, assign them, or call
    ``requires_grad_()`` on them for autograd. ``W`` starts small and random when a
    ``generator`` is given (``W ~ N(0, init_std^2)``), else at zero; biases start at
    zero. Assign ``rbm.b`` from data with :meth:`init_visible_bias_from_data` (Hinton's
    practical guide: log p_i / (1 - p_i)).
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
        W = torch.zeros(n_visible, n_hidden, dtype=dtype)
        if generator is not None:
            W = init_std * torch.randn(
                n_visible,
                n_hidden,
                generator=generator,
                dtype=dtype,
                device=generator.device,
            ).to("cpu")
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
        p = (self._check_v(v).mean(0) + smoothing) / (1 + 2 * smoothing)
        self.b.copy_(torch.log(p) - torch.log1p(-p))


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


@dataclass
class RBMStep:
    """One SGD step of CD-k or PCD-k (SML) on a minibatch; holds persistent chains."""

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

    def __post_init__(self):
        self._vel = [torch.zeros_like(p) for p in (self.rbm.W, self.rbm.b, self.rbm.c)]

    def _sample(self, p: Tensor) -> Tensor:
        # u < p with u ~ U(0, 1) is a Bernoulli(p) draw; about twice as fast as
        # torch.bernoulli on CPU. The states feed only matrix products, so they are
        # stored in matmul_dtype when one is set (0 and 1 are exact in it): no
        # conversion before each product.
        u = torch.rand(
            p.shape, generator=self.generator, dtype=p.dtype, device=p.device
        )
        return (u < p).to(self.matmul_dtype or p.dtype)

    def _products(self, W: Tensor):
        """``(v @ W, h @ W.T)`` as float32 functions, in ``matmul_dtype`` when one is
        set.
        """
        lo = self.matmul_dtype
        if lo is None:
            return (lambda v: v @ W), (lambda h: h @ W.T)
        W_lo = W.to(lo)  # a low-precision copy of the float32 master weights
        return (lambda v: (v.to(lo) @ W_lo).float()), (
            lambda h: (h.to(lo) @ W_lo.T).float()
        )

    @torch.no_grad()
    def __call__(self, v_pos: Tensor) -> dict[str, float]:
        rbm = self.rbm
        W, b, c = rbm.W, rbm.b, rbm.c
        up, down = self._products(W)
        v_in = (
            v_pos if self.matmul_dtype is None else v_pos.to(self.matmul_dtype)
        )  # converted once
        ph_pos = torch.sigmoid(up(v_in) + c)  # (B, H) positive phase
        if self.method == "cd":  # chains start at the data
            h = self._sample(ph_pos)
        else:  # persistent chains (SML)
            if self.chain_h is None:
                self.chain_h = self._sample(torch.sigmoid(up(self.chains) + c))
            h = self.chain_h
        for t in range(self.k):  # block Gibbs, k sweeps
            v_neg = self._sample(torch.sigmoid(down(h) + b))  # (M, D)
            ph = torch.sigmoid(up(v_neg) + c)  # (M, H)
            if t < self.k - 1:
                h = self._sample(ph)
        if self.method == "pcd":
            # The persistent state is the (v, h) pair; h is drawn here with the current
            # parameters and the next update's sweep starts from it (one matmul fewer).
            self.chains, self.chain_h = v_neg, self._sample(ph)
        # ascent direction: <v h>_data - <v h>_model, with h -> P(h|v)
        # (Algorithm 18.3); the same numbers as cd_update(rbm, v_pos, v_neg),
        # accumulated in place into the velocities (fused matrix products, no
        # temporaries of size D x H).
        n_pos, n_neg = len(v_pos), len(v_neg)
        lr = self.lr
        vW, vb, vc = self._vel
        for vel in self._vel:
            vel.mul_(self.momentum)
        if self.matmul_dtype is None:
            vW.addmm_(v_pos.T, ph_pos, alpha=lr / n_pos).addmm_(
                v_neg.T, ph, alpha=-lr / n_neg
            )
        else:
            # both phases in one low-precision product of the stacked minibatches: the
            # kernel accumulates in float32, so the difference is rounded once, not each
            # phase
            v_both = torch.cat([v_in, v_neg])
            h_both = torch.cat([ph_pos / n_pos, ph / -n_neg]).to(self.matmul_dtype)
            vW.add_(v_both.T @ h_both, alpha=lr)
        if self.weight_decay:
            vW.add_(W, alpha=-lr * self.weight_decay)
        vb.add_(v_pos.mean(0) - v_neg.sum(0, dtype=vb.dtype) / n_neg, alpha=lr)
        vc.add_(ph_pos.mean(0) - ph.mean(0), alpha=lr)
        W.add_(vW)
        b.add_(vb)
        c.add_(vc)
        if not self.monitor:
            return {}
        return {
            "recon_error": float(
                ((v_pos - torch.sigmoid(ph_pos @ W.T + b)) ** 2).sum(1).mean()
            )
        }


def fit_rbm(
    rbm: BernoulliRBM,
    data: Tensor,
    *,
    method: str = "pcd",
    k: int = 1,
    batch_size: int = 100,
    epochs: int = 1,
    lr: float = 0.05,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    n_chains: int | None = None,
    monitor: bool = True,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> History:
    """Train ``rbm`` in place by CD-k (``method="cd"``) or PCD-k / SML
    (``method="pcd"``).

    CD-k starts each negative chain at the minibatch (Algorithm 18.2); PCD keeps
    ``n_chains`` persistent chains (default: ``batch_size``) across updates (Algorithm
    18.3, Tieleman 2008). Updates are plain SGD with optional momentum and L2 weight
    decay. Records ``recon_error`` (squared error of one mean-field reconstruction) per
    step when ``monitor``; it is a rough progress signal, not the likelihood.

    ``matmul_dtype=torch.bfloat16`` runs the step's five matrix products in bfloat16
    (mixed precision: the parameters, velocities, sigmoids and Bernoulli draws stay
    float32, and the products accumulate in float32). Its rounding
    (about 0.4 % of a logit) is far below the Monte-Carlo noise of the gradient; on CPUs
    with AVX-512 BF16 (and on GPUs) it is several times faster. Default: the model's own
    dtype throughout.
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
    step = RBMStep(
        rbm,
        method,
        k,
        lr,
        momentum,
        weight_decay,
        generator,
        monitor,
        matmul_dtype=matmul_dtype,
    )
    if method == "pcd":
        m = n_chains or batch_size
        idx = torch.randint(
            len(data),
            (m,),
            generator=generator,
            device=generator.device if generator is not None else "cpu",
        )
        step.chains = data[idx.to(data.device)].clone()
    hist = fit(
        step,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc=f"{method.upper()}-{k}",
        quiet=quiet,
    )
    hist.chains = (
        None if step.chains is None else step.chains.to(rbm.W.dtype)
    )  # final fantasy particles (PCD)
    return hist
