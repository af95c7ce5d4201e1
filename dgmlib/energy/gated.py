"""A three-way (gated) RBM over pairs of images (Deep Learning §20.8; Memisevic &
Hinton 2007, 2010).

The hidden units model the *transformation* between an input image x and an output
image y: p(y, h | x) = exp(-E(y, h; x)) / Z(x) with the third-order energy

    E(y, h; x) = -sum_ijk W_ijk x_i y_j h_k - b.y - c.h,

and, to keep the parameters few, the factored weights W_ijk = sum_f Wx_if Wy_jf Wh_kf
(Memisevic & Hinton 2010; F factors)::

    x (B, Dx), y (B, Dy), h (B, H)    Wx (Dx, F), Wy (Dy, F), Wh (H, F), b (Dy,), c (H,)
    P(h_k = 1 | x, y) = sigmoid(c_k + sum_f Wh_kf (x.Wx_f) (y.Wy_f))
    P(y_j = 1 | x, h) = sigmoid(b_j + sum_f Wy_jf (x.Wx_f) (h.Wh_f))
    F(y | x) = -b.y - sum_k softplus(c_k + sum_f Wh_kf (x.Wx_f) (y.Wy_f))

Given x, it is an RBM between y and h whose weights Wy diag(x.Wx) Wh^T depend on x:
x gates the connections. Trained by CD-k on y with x clamped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..train import History, fit

__all__ = ["GatedRBM", "fit_gated_rbm", "gated_cd_loss"]


def _randn(shape, std: float, generator) -> Tensor:
    dev = generator.device if generator is not None else "cpu"
    return (std * torch.randn(shape, generator=generator, device=dev)).cpu()


class GatedRBM(nn.Module):
    """Factored three-way RBM p(y, h | x) with ``n_factors`` factors."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_hidden: int,
        n_factors: int,
        *,
        init_std: float = 0.3,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if min(n_in, n_out, n_hidden, n_factors) < 1:
            raise ValueError(
                "GatedRBM needs n_in, n_out, n_hidden, n_factors >= 1; got "
                f"{n_in}, {n_out}, {n_hidden}, {n_factors}"
            )
        self.Wx = nn.Parameter(_randn((n_in, n_factors), init_std, generator))
        self.Wy = nn.Parameter(_randn((n_out, n_factors), init_std, generator))
        self.Wh = nn.Parameter(_randn((n_hidden, n_factors), init_std, generator))
        self.b = nn.Parameter(torch.zeros(n_out))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    def _check(self, t: Tensor, d: int, name: str) -> Tensor:
        check_shape(t, 2, d, name=name, model="GatedRBM")
        check_binary(t, name=name, model="GatedRBM")
        return t.to(self.Wx.dtype)

    def weights(self) -> Tensor:
        """The full three-way tensor W_ijk = sum_f Wx_if Wy_jf Wh_kf, (Dx, Dy, H)."""
        return torch.einsum("if,jf,kf->ijk", self.Wx, self.Wy, self.Wh)

    def energy(self, x: Tensor, y: Tensor, h: Tensor) -> Tensor:
        """E(y, h; x); -> (B,)."""
        x = self._check(x, self.Wx.shape[0], "x")
        y = self._check(y, self.Wy.shape[0], "y")
        fx, fy, fh = x @ self.Wx, y @ self.Wy, h.to(self.Wx.dtype) @ self.Wh
        return -(fx * fy * fh).sum(-1) - y @ self.b - h @ self.c

    def hidden_logits(self, x: Tensor, y: Tensor) -> Tensor:
        """c + sum_f Wh_f (x.Wx_f)(y.Wy_f): the pre-sigmoid of P(h | x, y); (B, H)."""
        x = self._check(x, self.Wx.shape[0], "x")
        check_shape(y, 2, self.Wy.shape[0], name="y", model="GatedRBM")
        y = y.to(self.Wx.dtype)  # probabilities allowed (mean-field)
        # [maths:gated.conditionals]
        fx, fy = x @ self.Wx, y @ self.Wy  # (B, F) factor inputs
        return self.c + (fx * fy) @ self.Wh.T  # (B, H)

    def output_logits(self, x: Tensor, h: Tensor) -> Tensor:
        """b + sum_f Wy_f (x.Wx_f)(h.Wh_f): the pre-sigmoid of P(y | x, h); (B, Dy)."""
        x = self._check(x, self.Wx.shape[0], "x")
        fx, fh = x @ self.Wx, h.to(self.Wx.dtype) @ self.Wh  # (B, F)
        return self.b + (fx * fh) @ self.Wy.T  # (B, Dy)
        # [/maths:gated.conditionals]

    def p_h_given_xy(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.sigmoid(self.hidden_logits(x, y))

    def p_y_given_xh(self, x: Tensor, h: Tensor) -> Tensor:
        return torch.sigmoid(self.output_logits(x, h))

    def free_energy(self, x: Tensor, y: Tensor) -> Tensor:
        """F(y | x), h summed out; -> (B,)."""
        y = self._check(y, self.Wy.shape[0], "y")
        return -(y @ self.b) - F.softplus(self.hidden_logits(x, y)).sum(-1)

    @torch.no_grad()
    def gibbs_y(
        self,
        x: Tensor,
        y: Tensor,
        k: int = 1,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """k Gibbs sweeps y -> h -> y with x clamped."""
        for _ in range(k):
            h = torch.bernoulli(self.p_h_given_xy(x, y), generator=generator)
            y = torch.bernoulli(self.p_y_given_xh(x, h), generator=generator)
        return y

    @torch.no_grad()
    def transfer(self, x: Tensor, y: Tensor, x_new: Tensor) -> Tensor:
        """Analogy: infer the transformation h = P(h | x, y), apply it to ``x_new``:
        P(y_new = 1 | x_new, h) (mean-field, one pass)."""
        return self.p_y_given_xh(x_new, self.p_h_given_xy(x, y))


def gated_cd_loss(
    model: GatedRBM,
    x: Tensor,
    y: Tensor,
    *,
    k: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """CD-k surrogate mean F(y | x) - F(y~ | x), y~ from k Gibbs sweeps (x clamped)."""
    y_neg = model.gibbs_y(x, y, k, generator=generator)
    return (model.free_energy(x, y) - model.free_energy(x, y_neg)).mean()


def fit_gated_rbm(
    model: GatedRBM,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int = 10,
    lr: float = 0.02,
    batch_size: int = 100,
    k: int = 1,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Adam on :func:`gated_cd_loss`; records the one-pass reconstruction error of y."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch):
        xb, yb = batch
        loss = gated_cd_loss(model, xb, yb, k=k, generator=generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            err = ((model.transfer(xb, yb, xb) - yb) ** 2).mean()
        return {"recon": float(err)}

    return fit(
        step,
        (x.to(model.Wx.dtype), y.to(model.Wx.dtype)),
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="gated rbm",
        quiet=quiet,
    )
