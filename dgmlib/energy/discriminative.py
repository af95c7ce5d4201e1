"""The discriminative RBM (Deep Learning §20.8; Larochelle & Bengio 2008).

Notation (Larochelle & Bengio 2008, eq. 1-2)::

    x  (B, D)  inputs in {0,1}        W  (D, H)  input weights   b  (D,)  input biases
    y  (B,)    class in 0..K-1        U  (K, H)  class weights   d  (K,)  class biases
    h  (B, H)  hidden units in {0,1}                             c  (H,)  hidden biases

    E(x, y, h) = -b.x - c.h - d_y - x.W.h - U[y].h
    F(x, y) = -log sum_h exp(-E) = -b.x - d_y - sum_j softplus(c_j + U[y, j] + x.W_j)
    p(y | x) = exp(-F(x, y)) / sum_y' exp(-F(x, y'))      (exact: K terms, h summed out)

Three objectives (§20.8: "a linear combination of both ... often performs best"):
``generative`` -log p(x, y) (its gradient by CD-k), ``discriminative`` -log p(y | x)
(exact gradient by autograd), ``hybrid`` -log p(y | x) - alpha log p(x, y).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..train import History, fit

__all__ = ["DiscriminativeRBM", "drbm_loss", "fit_drbm", "gibbs_xy"]

OBJECTIVES = ("generative", "discriminative", "hybrid")


def _randn(shape, std: float, generator) -> Tensor:
    """std * N(0, 1) of ``shape`` on the CPU, drawn on the generator's device."""
    dev = generator.device if generator is not None else "cpu"
    return (std * torch.randn(shape, generator=generator, device=dev)).cpu()


class DiscriminativeRBM(nn.Module):
    """An RBM over (x, one-hot y) with weights ``W (D, H)``, ``U (K, H)`` and biases
    ``b (D,)``, ``c (H,)``, ``d (K,)`` (``nn.Parameter`` s, trained by autograd)."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        n_classes: int,
        *,
        init_std: float = 0.05,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if min(n_visible, n_hidden) < 1 or n_classes < 2:
            raise ValueError(
                "DiscriminativeRBM needs n_visible, n_hidden >= 1 and n_classes >= 2; "
                f"got {n_visible}, {n_hidden}, {n_classes}"
            )
        dtype = dtype or torch.get_default_dtype()
        shape_w, shape_u = (n_visible, n_hidden), (n_classes, n_hidden)
        self.W = nn.Parameter(_randn(shape_w, init_std, generator))
        self.U = nn.Parameter(_randn(shape_u, init_std, generator))
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))
        self.d = nn.Parameter(torch.zeros(n_classes))
        self.to(dtype)

    @property
    def n_classes(self) -> int:
        return self.U.shape[0]

    def _check(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_shape(x, 2, self.W.shape[0], name="x", model="DiscriminativeRBM")
        check_binary(x, name="x", model="DiscriminativeRBM")
        if y is not None:
            if y.shape != (x.shape[0],) or y.dtype != torch.long:
                raise ValueError(
                    f"DiscriminativeRBM expects labels y of shape ({x.shape[0]},) and "
                    f"dtype int64; got {tuple(y.shape)} {y.dtype}. Pass y.long()"
                )
            if y.min() < 0 or y.max() >= self.n_classes:
                raise ValueError(
                    f"labels must lie in 0..{self.n_classes - 1}; got "
                    f"{int(y.min())}..{int(y.max())}"
                )
        return x.to(self.W.dtype), y

    def energy(self, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        """E(x, y, h) = -b.x - c.h - d_y - x.W.h - U[y].h; -> (B,)."""
        x, y = self._check(x, y)
        return (
            -(x @ self.b)
            - h @ self.c
            - self.d[y]
            - ((x @ self.W + self.U[y]) * h).sum(-1)
        )

    def free_energy(self, x: Tensor, y: Tensor) -> Tensor:
        """F(x, y), h summed out; (B, D), (B,) -> (B,)."""
        x, y = self._check(x, y)
        pre = x @ self.W + self.c + self.U[y]  # (B, H)
        return -(x @ self.b) - self.d[y] - F.softplus(pre).sum(-1)

    def log_p_y_given_x(self, x: Tensor) -> Tensor:
        """log p(y | x) for every class, exact; (B, D) -> (B, K)."""
        x, _ = self._check(x)
        # [maths:drbm.p_y_given_x]
        pre = (x @ self.W + self.c)[:, None, :] + self.U[None]  # (B, K, H)
        neg_f = self.d + F.softplus(pre).sum(-1)  # -F(x, y) + b.x, (B, K)
        return torch.log_softmax(neg_f, dim=-1)
        # [/maths:drbm.p_y_given_x]

    def predict(self, x: Tensor) -> Tensor:
        """argmax_y p(y | x); (B, D) -> (B,)."""
        return self.log_p_y_given_x(x).argmax(-1)


@torch.no_grad()
def gibbs_xy(
    model: DiscriminativeRBM,
    x: Tensor,
    y: Tensor,
    k: int = 1,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """k block-Gibbs sweeps on (x, y): h ~ p(h | x, y), then x ~ p(x | h) and
    y ~ p(y | h) (softmax over the K classes), independently given h."""
    for _ in range(k):
        p_h = torch.sigmoid(x @ model.W + model.c + model.U[y])
        h = torch.bernoulli(p_h, generator=generator)
        x = torch.bernoulli(torch.sigmoid(h @ model.W.T + model.b), generator=generator)
        y = torch.multinomial(
            torch.softmax(h @ model.U.T + model.d, -1), 1, generator=generator
        )[:, 0]
    return x, y


def drbm_loss(
    model: DiscriminativeRBM,
    x: Tensor,
    y: Tensor,
    *,
    objective: str = "hybrid",
    alpha: float = 0.01,
    k: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """A loss whose gradient is the objective's: -log p(y|x) exact, the generative
    part by the CD-k surrogate F(x, y) - F(x~, y~) (negatives held fixed)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")
    x, y = model._check(x, y)
    # [maths:drbm.loss]
    disc = F.nll_loss(model.log_p_y_given_x(x), y)  # -mean log p(y | x)
    loss = disc if objective != "generative" else 0.0 * disc
    if objective != "discriminative":
        x_neg, y_neg = gibbs_xy(model, x, y, k, generator=generator)
        gen = (model.free_energy(x, y) - model.free_energy(x_neg, y_neg)).mean()
        loss = loss + (alpha if objective == "hybrid" else 1.0) * gen
    # [/maths:drbm.loss]
    return loss, {"nll_y": float(disc.detach())}


def fit_drbm(
    model: DiscriminativeRBM,
    x: Tensor,
    y: Tensor,
    *,
    objective: str = "hybrid",
    alpha: float = 0.01,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 50,
    k: int = 1,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train by Adam on :func:`drbm_loss`; the History records ``nll_y``."""
    model._check(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch):
        loss, row = drbm_loss(
            model, *batch, objective=objective, alpha=alpha, k=k, generator=generator
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        return row

    return fit(
        step,
        (x.to(model.W.dtype), y),
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc=f"drbm {objective}",
        quiet=quiet,
    )
