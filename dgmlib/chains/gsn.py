"""Generative stochastic networks (book §20.12; Bengio et al., 2014).

A GSN generalises the denoising autoencoder's chain (§20.11) with a latent state
``h`` carried from step to step. One step of its Markov chain is the pair of
conditionals of §20.12,

* p(h^(k) | h^(k-1), x^(k-1)): corrupt x^(k-1) by salt-and-pepper noise (probability
  ``corruption`` of replacing a pixel by a fair coin), then

      h^(k) = tanh(x~ W + h^(k-1) U + c + sigma_pre eps_pre) + sigma_post eps_post,

  with eps_pre, eps_post ~ N(0, I): a differentiable function of the Gaussian noise
  (the reparametrization trick, §20.9), so gradients flow back through the chain;
* p(x^(k) | h^(k)) = prod_d Bernoulli(x_d; sigmoid(h^(k) V + b)_d), the reconstruction
  distribution.

Training (§20.12, :func:`walkback_loss`) starts the chain at a training example,
x^(0) = x, h^(0) = 0, runs it for ``walkback`` steps and maximises the log-probability
of reconstructing the *same* x at every step, sum_k log p(x^(k) = x | h^(k)): the
walk-back protocol of §20.11.3 applied to the GSN. The visible states x^(k) between
steps are binary samples (no gradient through them); the Gaussian noise is
reparametrized, so the gradient reaches every step's parameters through h.

This is one hidden layer with a recurrent connection ``U``; Bengio et al. (2014) used
two or three layers updated odd/even, with tied weights. The discriminant/hybrid GSN
(§20.12.1; Zöhrer & Pernkopf, 2014) is :class:`HybridGSN`: labels y enter the latent
update and are reconstructed by a softmax, and the training cost adds the label's
reconstruction log-probability to ``alpha`` times the image's.

Notation
--------
==============  ==========  ========  =============================================
maths           name        shape     meaning
==============  ==========  ========  =============================================
x, x~           x, x_tilde  (B, D)    visible state, its corrupted copy
h               h           (B, H)    latent state
W, U, c         W, U, c     (D,H),    latent update p(h | h_prev, x_prev)
                            (H,H),(H,)
V, b            V, b        (H,D),(D,)  reconstruction p(x | h) (logits h V + b)
eps             eps_pre...  (B, H)    N(0, I) noise of the latent update
y               y           (B, C)    one-hot labels (HybridGSN), A, Vy, by their
                                      weights in and out of h
==============  ==========  ========  =============================================
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_binary, check_shape
from dgmlib.train import History, fit

__all__ = [
    "GSN",
    "HybridGSN",
    "GSNChain",
    "walkback_loss",
    "hybrid_loss",
    "gsn_chain",
    "fit_gsn",
    "predict_labels",
]


def _randn(shape, like: Tensor, generator) -> Tensor:
    where = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=where, dtype=like.dtype).to(
        like.device
    )


def _rand(shape, like: Tensor, generator) -> Tensor:
    where = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=where, dtype=like.dtype).to(
        like.device
    )


class GSN(nn.Module):
    """A one-layer generative stochastic network with latent state (§20.12).

    Parameters
    ----------
    n_visible, n_hidden : int
        D binary visible units, H real latent units.
    corruption : float
        Salt-and-pepper probability: each visible unit is replaced by a fair coin with
        this probability before entering the latent update (Bengio et al. 2014 use a
        fraction of pixels set to 0 or 1).
    sigma_pre, sigma_post : float
        Standard deviations of the Gaussian noise added before and after the tanh.
    init_std : float
        Standard deviation of the initial weights (default 1/sqrt(D)).
    generator : torch.Generator, optional
        For the initial weights.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        corruption: float = 0.3,
        sigma_pre: float = 1.0,
        sigma_post: float = 0.5,
        init_std: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                f"GSN needs n_visible >= 1 and n_hidden >= 1; got {n_visible}, "
                f"{n_hidden}"
            )
        if not 0.0 <= corruption < 1.0:
            raise ValueError(f"corruption must lie in [0, 1); got {corruption}")
        if sigma_pre < 0 or sigma_post < 0:
            raise ValueError(
                f"noise levels must be >= 0; got sigma_pre={sigma_pre}, "
                f"sigma_post={sigma_post}"
            )
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.corruption, self.sigma_pre, self.sigma_post = (
            corruption,
            sigma_pre,
            sigma_post,
        )
        std = init_std if init_std is not None else n_visible**-0.5

        def init(*shape):
            return nn.Parameter(
                torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)
                * std
            )

        self.W = init(n_visible, n_hidden)
        self.U = init(n_hidden, n_hidden)
        self.V = init(n_hidden, n_visible)
        self.c = nn.Parameter(torch.zeros(n_hidden, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_visible, dtype=dtype))

    # ------------------------------------------------------------------ checks
    def _check_x(self, x: Tensor, name: str = "x") -> Tensor:
        check_shape(x, ndim=2, last_dim=self.n_visible, name=name, model="GSN")
        check_binary(x, name=name, model="GSN")
        return x.to(self.W.dtype)

    # ------------------------------------------------------------------ the maths
    def corrupt(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Salt-and-pepper corruption C(x~ | x): each unit becomes a fair coin with
        probability ``corruption``; (B, D) -> (B, D).
        """
        replace = _rand(x.shape, x, generator) < self.corruption
        coin = (_rand(x.shape, x, generator) < 0.5).to(x.dtype)
        return torch.where(replace, coin, x)

    def pre_activation(self, h_prev: Tensor, x_tilde: Tensor) -> Tensor:
        """x~ W + h_prev U + c, (B, H): the input of the latent update."""
        return x_tilde @ self.W + h_prev @ self.U + self.c

    def hidden(
        self, h_prev: Tensor, x_tilde: Tensor, eps_pre: Tensor, eps_post: Tensor
    ) -> Tensor:
        """h ~ p(h | h_prev, x_prev) written as a function of its noise (§20.9):
        (B, H) -> (B, H).
        """
        # [maths:gsn.hidden]
        a = self.pre_activation(h_prev, x_tilde) + self.sigma_pre * eps_pre  # (B, H)
        return torch.tanh(a) + self.sigma_post * eps_post  # (B, H)
        # [/maths:gsn.hidden]

    def x_logits(self, h: Tensor) -> Tensor:
        """Logits of p(x | h), (B, H) -> (B, D)."""
        return h @ self.V + self.b

    def log_p_x_given_h(self, x: Tensor, h: Tensor) -> Tensor:
        """log p(x | h) in nats, (B, D), (B, H) -> (B,)."""
        logits = self.x_logits(h)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def noise(self, like: Tensor, generator: torch.Generator | None = None):
        """The step's Gaussian noise (eps_pre, eps_post), each (B, H)."""
        shape = (like.shape[0], self.n_hidden)
        return _randn(shape, like, generator), _randn(shape, like, generator)


class HybridGSN(GSN):
    """A discriminant/hybrid GSN (§20.12.1; Zöhrer & Pernkopf, 2014).

    The labels y (one-hot, C classes) are a second visible group: they enter the latent
    update through ``A`` and are reconstructed by p(y | h) = softmax(h Vy + by). The
    chain starts with y^(0) = 0 (label unknown). :func:`hybrid_loss` adds the label's
    reconstruction log-probability to ``alpha`` times the image's.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        n_classes: int,
        *,
        generator: torch.Generator | None = None,
        **kwargs,
    ):
        super().__init__(n_visible, n_hidden, generator=generator, **kwargs)
        if n_classes < 2:
            raise ValueError(f"HybridGSN needs n_classes >= 2; got {n_classes}")
        self.n_classes = n_classes
        dtype = self.W.dtype
        self.A = nn.Parameter(torch.zeros(n_classes, n_hidden, dtype=dtype))
        std = n_hidden**-0.5
        self.Vy = nn.Parameter(
            torch.randn(n_hidden, n_classes, generator=generator, dtype=torch.float64)
            .to(dtype)
            .mul(std)
        )
        self.by = nn.Parameter(torch.zeros(n_classes, dtype=dtype))

    def hidden_with_label(
        self,
        h_prev: Tensor,
        x_tilde: Tensor,
        y_prev: Tensor,
        eps_pre: Tensor,
        eps_post: Tensor,
    ) -> Tensor:
        """h ~ p(h | h_prev, x_prev, y_prev), reparametrized; (B, H)."""
        a = self.pre_activation(h_prev, x_tilde) + y_prev @ self.A
        return torch.tanh(a + self.sigma_pre * eps_pre) + self.sigma_post * eps_post

    def y_logits(self, h: Tensor) -> Tensor:
        """Logits of p(y | h), (B, H) -> (B, C)."""
        return h @ self.Vy + self.by


# ---------------------------------------------------------------------- training
def walkback_loss(
    gsn: GSN,
    x: Tensor,
    *,
    walkback: int = 4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The GSN's training cost: -(1/K) sum_{k=1..K} log p(x^(k) = x | h^(k)) in nats,
    (B, D) -> (B,), with K = ``walkback`` steps of the chain started at x^(0) = x,
    h^(0) = 0 (§20.12, §20.11.3). Differentiable through the Gaussian noise.
    """
    if walkback < 1:
        raise ValueError(
            f"walkback (chain steps per example) must be >= 1; got {walkback}"
        )
    x = gsn._check_x(x)
    # [maths:gsn.walkback]
    h = x.new_zeros(x.shape[0], gsn.n_hidden)  # h^(0) = 0
    x_k, cost = x, x.new_zeros(x.shape[0])
    for _ in range(walkback):
        x_tilde = gsn.corrupt(x_k, generator=generator)  # discrete noise
        h = gsn.hidden(h, x_tilde, *gsn.noise(x, generator))  # reparametrized
        logits = gsn.x_logits(h)  # (B, D)
        cost = cost + F.binary_cross_entropy_with_logits(
            logits, x, reduction="none"
        ).sum(-1)  # -log p(x^(k) = x | h^(k)): always the *training* x
        x_k = torch.bernoulli(torch.sigmoid(logits.detach()), generator=generator)
    return cost / walkback
    # [/maths:gsn.walkback]


def _one_hot(y: Tensor, n_classes: int, like: Tensor) -> Tensor:
    if y.ndim != 1 or y.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"labels must be a 1-d integer tensor (B,); got dtype {y.dtype}, shape "
            f"{tuple(y.shape)}"
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}; got [{int(y.min())}, "
            f"{int(y.max())}]"
        )
    return F.one_hot(y.long(), n_classes).to(like)


def hybrid_loss(
    gsn: HybridGSN,
    x: Tensor,
    y: Tensor,
    *,
    walkback: int = 4,
    alpha: float = 1.0,
    clamp_x: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Hybrid GSN cost (Zöhrer & Pernkopf 2014), (B,) nats:
    (1/K) sum_k [-log p(y^(k) = y | h^(k)) - alpha log p(x^(k) = x | h^(k))].

    ``alpha = 0`` is the purely discriminant GSN (only the label's reconstruction is
    back-propagated); the chain starts at x^(0) = x, y^(0) = 0. With ``clamp_x``
    (default) the image stays clamped at x through the chain, as when labels are
    predicted (:func:`predict_labels`; Zhou & Troyanskaya 2014 keep the inputs fixed);
    otherwise x^(k) is resampled as in the unsupervised GSN.
    """
    if not isinstance(gsn, HybridGSN):
        raise ValueError(
            f"hybrid_loss needs a HybridGSN (labels in the chain); got "
            f"{type(gsn).__name__}"
        )
    if walkback < 1:
        raise ValueError(
            f"walkback (chain steps per example) must be >= 1; got {walkback}"
        )
    x = gsn._check_x(x)
    y1 = _one_hot(y, gsn.n_classes, x)
    if y1.shape[0] != x.shape[0]:
        raise ValueError(
            "x and y must have the same number of rows; got "
            f"{x.shape[0]}, {y1.shape[0]}"
        )
    # [maths:gsn.hybrid]
    h, y_k = x.new_zeros(x.shape[0], gsn.n_hidden), torch.zeros_like(y1)
    x_k, cost = x, x.new_zeros(x.shape[0])
    for _ in range(walkback):
        x_tilde = gsn.corrupt(x_k, generator=generator)
        h = gsn.hidden_with_label(h, x_tilde, y_k, *gsn.noise(x, generator))
        logits_x, logits_y = gsn.x_logits(h), gsn.y_logits(h)
        nll_x = F.binary_cross_entropy_with_logits(logits_x, x, reduction="none")
        nll_y = F.cross_entropy(logits_y, y, reduction="none")  # -log p(y | h)
        cost = cost + nll_y + alpha * nll_x.sum(-1)
        if not clamp_x:
            x_k = torch.bernoulli(torch.sigmoid(logits_x.detach()), generator=generator)
        y_k = _sample_one_hot(logits_y.detach(), generator)
    return cost / walkback
    # [/maths:gsn.hybrid]


def _sample_one_hot(logits: Tensor, generator) -> Tensor:
    probs = torch.softmax(logits, -1)
    idx = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return F.one_hot(idx, logits.shape[-1]).to(logits)


def fit_gsn(
    gsn: GSN,
    data: Tensor,
    *,
    walkback: int = 4,
    labels: Tensor | None = None,
    alpha: float = 1.0,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train ``gsn`` in place by Adam on :func:`walkback_loss` (or, with ``labels``, on
    :func:`hybrid_loss` with weight ``alpha`` on the image's term); records ``loss``
    (nats per example and step) at every update.
    """
    if walkback < 1:
        raise ValueError(
            f"walkback (chain steps per example) must be >= 1; got {walkback}"
        )
    data = gsn._check_x(data, "data")
    if labels is not None and labels.shape[0] != data.shape[0]:
        raise ValueError(
            f"data and labels must have the same number of rows; got {data.shape[0]} "
            f"and {labels.shape[0]}"
        )
    opt = torch.optim.Adam(gsn.parameters(), lr=lr)

    def step(batch):
        if labels is None:
            loss = walkback_loss(gsn, batch, walkback=walkback, generator=generator)
        else:
            x, y = batch
            loss = hybrid_loss(
                gsn, x, y, walkback=walkback, alpha=alpha, generator=generator
            )
        loss = loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    train_data = data if labels is None else (data, labels.to(data.device))
    return fit(
        step,
        train_data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="fit_gsn",
        quiet=quiet,
    )


# ---------------------------------------------------------------------- sampling
class GSNChain(NamedTuple):
    """States of :func:`gsn_chain`: ``x`` the binary visible states and ``p`` the
    reconstruction probabilities p(x^(k) = 1 | h^(k)), both (n_steps + 1, B, D), step 0
    being ``x0``; ``h`` the final latent state (B, H).
    """

    x: Tensor
    p: Tensor
    h: Tensor


def _check_clamp(clamp: Tensor | None, D: int, device) -> Tensor | None:
    if clamp is None:
        return None
    if clamp.dtype != torch.bool or clamp.shape != (D,):
        raise ValueError(
            f"clamp must be a boolean mask of shape ({D},), True where a unit is kept "
            f"fixed; got dtype {clamp.dtype}, shape {tuple(clamp.shape)}"
        )
    return clamp.to(device)


@torch.no_grad()
def gsn_chain(
    gsn: GSN,
    x0: Tensor,
    n_steps: int,
    *,
    clamp: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> GSNChain:
    """Run the GSN's Markov chain (§20.12) for ``n_steps`` from x^(0) = ``x0`` (B, D),
    h^(0) = 0, one chain per row.

    ``clamp``, a (D,) boolean mask, keeps those visible units at their values in
    ``x0`` at every step and resamples only the others (§20.11.2, figure 20.12): a
    sample of the free units given the clamped ones.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0; got {n_steps}")
    x = gsn._check_x(x0, "x0")
    clamp = _check_clamp(clamp, gsn.n_visible, x.device)
    h, x_fixed = x.new_zeros(x.shape[0], gsn.n_hidden), x
    xs, ps = [x], [x]
    # [maths:gsn.chain]
    for _ in range(n_steps):
        h = gsn.hidden(h, gsn.corrupt(x, generator=generator), *gsn.noise(x, generator))
        p = torch.sigmoid(gsn.x_logits(h))  # p(x^(k) = 1 | h^(k))
        x = torch.bernoulli(p, generator=generator)
        if clamp is not None:  # clamped units keep their values
            x, p = torch.where(clamp, x_fixed, x), torch.where(clamp, x_fixed, p)
        xs.append(x)
        ps.append(p)
    # [/maths:gsn.chain]
    return GSNChain(torch.stack(xs), torch.stack(ps), h)


@torch.no_grad()
def predict_labels(
    gsn: HybridGSN,
    x: Tensor,
    *,
    n_steps: int = 10,
    generator: torch.Generator | None = None,
) -> Tensor:
    """p(y | x) of a hybrid GSN: its chain run with the image clamped, y^(0) = 0, and
    p(y | h^(k)) averaged over the ``n_steps`` steps; (B, D) -> (B, C).
    """
    if not isinstance(gsn, HybridGSN):
        raise ValueError(f"predict_labels needs a HybridGSN; got {type(gsn).__name__}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1; got {n_steps}")
    x = gsn._check_x(x)
    h = x.new_zeros(x.shape[0], gsn.n_hidden)
    y_k = x.new_zeros(x.shape[0], gsn.n_classes)
    probs = x.new_zeros(x.shape[0], gsn.n_classes)
    for _ in range(n_steps):
        x_tilde = gsn.corrupt(x, generator=generator)  # the image stays clamped
        h = gsn.hidden_with_label(h, x_tilde, y_k, *gsn.noise(x, generator))
        logits_y = gsn.y_logits(h)
        probs += torch.softmax(logits_y, -1)
        y_k = _sample_one_hot(logits_y, generator)
    return probs / n_steps
