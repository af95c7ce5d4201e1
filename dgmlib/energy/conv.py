"""Convolutional RBM with probabilistic max pooling (Deep Learning §20.6; Lee et al.
2009).

Notation (one input channel, K filters of size f x f, pooling blocks C x C)::

    v  (B, 1, Nv, Nv')  binary image           W  (K, 1, f, f)  filters
    h  (B, K, Nh, Nh')  binary detector units  c  (K,)          one bias per filter
    p  (B, K, Np, Np')  pooling units          b  ()            one visible bias

    I(h_kij) = c_k + (W_k * v)_ij         (*: cross-correlation, "valid" or zero-padded)
    E(v, h) = -sum_k sum_ij h_kij (W_k * v)_ij - sum_k c_k sum_ij h_kij - b sum v

with the constraint of probabilistic max pooling: in every block alpha of C x C detector
units at most one is on, and p_alpha = 1 iff one is. A block has n + 1 = C^2 + 1 states,
the all-off state of energy zero, so (Lee et al. 2009, eq. 14-15)

    P(h_kij = 1 | v) = exp(I(h_kij)) / (1 + sum_{i'j' in alpha} exp(I(h_ki'j')))
    P(p_alpha = 0 | v) = 1 / (1 + sum_{i'j' in alpha} exp(I(h_ki'j')))
    P(v = 1 | h) = sigmoid(b + sum_k (W_k (*) h_k))    ((*): transposed convolution)
    F(v) = -b sum v - sum_{k, alpha} log(1 + sum_{ij in alpha} exp(I(h_kij)))

Boundary (§20.6): ``padding="valid"`` gives Nh = Nv - f + 1, so border pixels lie in
the receptive field of fewer detector units; ``padding="zero"`` pads the image with
f // 2 zeros that are not modelled, Nh = Nv, and border detector units see fewer pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary
from ..train import History, fit

__all__ = ["ConvRBM", "cd_loss_conv", "fit_conv_rbm", "pool_block_states"]

PADDINGS = ("valid", "zero")


class ConvRBM(nn.Module):
    """A convolutional RBM over binary images of a fixed ``image_shape`` (Nv, Nv'), with
    ``n_filters`` filters of ``filter_size`` and probabilistic max pooling over
    ``pool`` x ``pool`` blocks of detector units.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        n_filters: int,
        filter_size: int,
        *,
        pool: int = 2,
        padding: str = "valid",
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
        if padding == "zero" and filter_size % 2 == 0:
            raise ValueError(
                f"padding='zero' needs an odd filter_size (f // 2 zeros each side); "
                f"got {filter_size}"
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        self.pad = filter_size // 2 if padding == "zero" else 0
        self.padding, self.pool = padding, pool
        det = tuple(s + 2 * self.pad - filter_size + 1 for s in self.image_shape)
        if min(det) < 1 or any(s % pool for s in det):
            raise ValueError(
                f"detector maps of size {det} (image {self.image_shape}, filter "
                f"{filter_size}, padding {padding!r}) must be positive multiples of "
                f"pool={pool}; choose another image size, filter size or pool"
            )
        self.detector_shape = det
        dev = generator.device if generator is not None else "cpu"
        W = init_std * torch.randn(
            n_filters, 1, filter_size, filter_size, generator=generator, device=dev
        )
        dtype = dtype or torch.get_default_dtype()
        self.W = nn.Parameter(W.cpu().to(dtype))  # (K, 1, f, f)
        self.c = nn.Parameter(torch.zeros(n_filters, dtype=dtype))  # (K,)
        self.b = nn.Parameter(torch.zeros((), dtype=dtype))  # ()

    def check_v(self, v: Tensor) -> Tensor:
        """(B, 1, Nv, Nv') binary images of this model's size, in its dtype."""
        want = (1, *self.image_shape)
        if v.ndim != 4 or tuple(v.shape[1:]) != want:
            raise ValueError(
                f"ConvRBM expects images of shape (B, {', '.join(map(str, want))}); "
                f"got {tuple(v.shape)}. Its partition function depends on the image "
                "size (§20.6): build a ConvRBM for that size, or crop / pad the images"
            )
        check_binary(v, name="v", model="ConvRBM")
        return v.to(self.W.dtype)

    def detector_input(self, v: Tensor) -> Tensor:
        """I(h_kij) = c_k + (W_k * v)_ij; (B, 1, Nv, Nv') -> (B, K, Nh, Nh')."""
        v = self.check_v(v)
        return F.conv2d(v, self.W, padding=self.pad) + self.c[:, None, None]

    def _blocks(self, a: Tensor) -> Tensor:
        """(B, K, Nh, Nh') -> (B, K, Np, Np', C*C): the detector units of each block."""
        B, K, H, W_ = a.shape
        C = self.pool
        a = a.reshape(B, K, H // C, C, W_ // C, C).permute(0, 1, 2, 4, 3, 5)
        return a.reshape(B, K, H // C, W_ // C, C * C)

    def _unblocks(self, a: Tensor) -> Tensor:
        """Inverse of :meth:`_blocks`."""
        B, K, P, Q, _ = a.shape
        C = self.pool
        a = a.reshape(B, K, P, Q, C, C).permute(0, 1, 2, 4, 3, 5)
        return a.reshape(B, K, P * C, Q * C)

    def block_log_probs(self, v: Tensor) -> Tensor:
        """log P(state | v) of each block's n + 1 states: index 0 is all off, index
        1 + r the r-th detector on; (B, 1, Nv, Nv') -> (B, K, Np, Np', C*C + 1)."""
        # [maths:conv.pool]
        I = self._blocks(self.detector_input(v))  # (B, K, Np, Np', n)
        off = torch.zeros_like(I[..., :1])  # the all-off state has energy zero
        return torch.log_softmax(torch.cat([off, I], -1), dim=-1)
        # [/maths:conv.pool]

    def p_h_given_v(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """P(h_kij = 1 | v) (B, K, Nh, Nh') and P(p_alpha = 1 | v) (B, K, Np, Np')."""
        probs = self.block_log_probs(v).exp()
        return self._unblocks(probs[..., 1:]), 1 - probs[..., 0]

    @torch.no_grad()
    def sample_h(
        self, v: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw (h, p) from P(h, p | v): one categorical draw per block."""
        probs = self.block_log_probs(v).exp()  # (B, K, Np, Np', n + 1)
        flat = probs.reshape(-1, probs.shape[-1])
        state = torch.multinomial(flat, 1, generator=generator)[:, 0]
        onehot = F.one_hot(state, flat.shape[-1]).to(probs.dtype).reshape(probs.shape)
        return self._unblocks(onehot[..., 1:]), 1 - onehot[..., 0]

    def visible_logits(self, h: Tensor) -> Tensor:
        """b + sum_k W_k (*) h_k, the transposed convolution; -> (B, 1, Nv, Nv')."""
        return F.conv_transpose2d(h, self.W, padding=self.pad) + self.b

    def p_v_given_h(self, h: Tensor) -> Tensor:
        return torch.sigmoid(self.visible_logits(h))

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) for an h that obeys the pooling constraint; -> (B,)."""
        I = self.detector_input(v)
        return -(h * I).sum((1, 2, 3)) - self.b * v.sum((1, 2, 3))

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -b sum v - sum_blocks log(1 + sum_block exp(I)); -> (B,)."""
        I = self._blocks(self.detector_input(v))  # (B, K, Np, Np', n)
        off = torch.zeros_like(I[..., :1])
        log_z_blocks = torch.logsumexp(torch.cat([off, I], -1), dim=-1)
        v_sum = v.to(self.W.dtype).sum((1, 2, 3))
        return -self.b * v_sum - log_z_blocks.sum((1, 2, 3))

    @torch.no_grad()
    def gibbs(
        self, v: Tensor, k: int = 1, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """k block-Gibbs sweeps v -> (h, p) -> v."""
        for _ in range(k):
            h, _ = self.sample_h(v, generator=generator)
            v = torch.bernoulli(self.p_v_given_h(h), generator=generator)
        return v


def pool_block_states(n: int, *, dtype=torch.float64) -> Tensor:
    """The n + 1 allowed states of one block of n detector units, (n + 1, n): all
    off, then each unit on alone."""
    return torch.cat([torch.zeros(1, n, dtype=dtype), torch.eye(n, dtype=dtype)])


def cd_loss_conv(
    model: ConvRBM,
    v: Tensor,
    *,
    k: int = 1,
    sparsity: float = 0.0,
    target: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """CD-k surrogate mean F(v) - F(v~), plus ``sparsity`` * (mean P(p=1|v) - target)^2
    over each filter (the sparsity regulariser of Lee et al. 2009)."""
    v = model.check_v(v)
    v_neg = model.gibbs(v, k, generator=generator)
    loss = (model.free_energy(v) - model.free_energy(v_neg)).mean()
    if sparsity > 0:
        _, p_pool = model.p_h_given_v(v)
        loss = loss + sparsity * ((p_pool.mean((0, 2, 3)) - target) ** 2).sum()
    return loss


def fit_conv_rbm(
    model: ConvRBM,
    v: Tensor,
    *,
    epochs: int = 5,
    lr: float = 0.01,
    batch_size: int = 50,
    k: int = 1,
    sparsity: float = 0.0,
    target: float = 0.05,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train by Adam on :func:`cd_loss_conv`; records the reconstruction error."""
    model.check_v(v)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(batch):
        loss = cd_loss_conv(
            model, batch, k=k, sparsity=sparsity, target=target, generator=generator
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            h, _ = model.p_h_given_v(batch)
            err = ((model.p_v_given_h(h) - batch) ** 2).mean()
        return {"recon": float(err)}

    return fit(
        step,
        v.to(model.W.dtype),
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="conv rbm",
        quiet=quiet,
    )
