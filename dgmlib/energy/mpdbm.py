"""The multi-prediction deep Boltzmann machine (Goodfellow et al. 2013; Deep Learning
§20.4.5, figure 20.5).

An MP-DBM is an ordinary :class:`dgmlib.energy.DBM` trained by another criterion:
pick a random subset S of the visible units as *inputs*, run mean field for ``n_iter``
steps with them clamped, and score the mean-field marginals of the *other* visible
units (the targets) by their log-likelihood; back-propagate through the unrolled
steps. Notation::

    x_0 = v (B, n_0) visible units      x_l = h^(l) (B, n_l), l = 1..L   hidden layers
    W[l]  (n_l, n_{l+1}) weights         b[l]  (n_l,) biases
    m     (B, n_0) in {0,1}: 1 where v_i is observed (i in S), 0 where it is a target

    E(x) = -sum_l b_l.x_l - sum_l x_l W_l x_{l+1}                (eq. 20.25 with biases)

Mean field with missing inputs treats the targets as latent, Q = prod of Bernoullis
over them and every hidden unit; its fixed-point updates (eq. 20.33-20.34 with biases,
and the same for a missing visible unit) are

    mu_l = sigmoid(b_l + mu_{l-1} W[l-1] + mu_{l+1} W[l]^T)      (a missing term is 0)
    mu_0 = m * v + (1 - m) * sigmoid(b_0 + mu_1 W[0]^T)

updated in figure 20.3's two blocks: the odd layers, then the even ones (with the
missing visible units). The logits are the model's own (``dbm.logits``), so a centered
DBM (offsets ``dbm.mu``, eq. 20.37) works unchanged. The multi-prediction loss of
one example is

    J(v, S) = -sum_{i not in S} [v_i log q_i + (1 - v_i) log(1 - q_i)],  q = mu_0,

a heuristic approximation of generalized pseudo-likelihood, not a bound on log P(v).
Filling in (:func:`fill_in`) and classifying (:func:`infer_labels`, labels as one-hot
visible units) are the same mean field with other units missing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_binary, check_shape
from ..train import History, fit

__all__ = [
    "masked_mean_field",
    "mp_loss",
    "sample_observed",
    "fit_mpdbm",
    "fill_in",
    "infer_labels",
]


def _layers(dbm) -> tuple[list[Tensor], list[Tensor]]:
    if not hasattr(dbm, "logits") or not hasattr(dbm, "W") or not hasattr(dbm, "b"):
        raise ValueError(
            "an MP-DBM is a DBM trained another way: pass a dgmlib.energy.DBM (a model "
            f"with W, b and logits(x, l)); got {type(dbm).__name__}"
        )
    return list(dbm.W), list(dbm.b)


def _check_inputs(W, v: Tensor, observed: Tensor) -> tuple[Tensor, Tensor]:
    n0 = W[0].shape[0]
    check_shape(v, 2, n0, name="v", model="MP-DBM")
    check_binary(v, name="v", model="MP-DBM")
    if observed.shape != v.shape:
        raise ValueError(
            f"observed must have v's shape {tuple(v.shape)} (1 = input, 0 = target); "
            f"got {tuple(observed.shape)}"
        )
    check_binary(observed, name="observed", model="MP-DBM")
    if v.device != W[0].device or observed.device != W[0].device:
        raise ValueError(
            f"the model lives on {W[0].device} but v is on {v.device} and observed on "
            f"{observed.device}; move them: v.to(dbm.W[0].device)"
        )
    return v.to(W[0].dtype), observed.to(W[0].dtype)


def _unroll(dbm, v: Tensor, m: Tensor, n_iter: int, trace: list | None = None):
    """``n_iter`` mean-field steps with v clamped where m = 1; returns the final means
    and the visible logits they came from. ``trace`` (a list) collects each step's
    means.
    """
    b, L = list(dbm.b), len(dbm.b) - 1
    # [maths:mpdbm.unroll]
    mu = [m * v + (1 - m) * torch.sigmoid(b[0])]  # a missing v_i starts at sigmoid(b_i)
    mu += [torch.sigmoid(b[l]).expand(len(v), -1) for l in range(1, L + 1)]
    a0 = b[0].expand_as(v)
    for _ in range(n_iter):
        for l in range(1, L + 1, 2):  # block 1: the odd layers, given the even ones
            mu[l] = torch.sigmoid(dbm.logits(mu, l))
        for l in range(0, L + 1, 2):  # block 2: the even layers and the missing v
            a = dbm.logits(mu, l)  # b_l + mu_{l-1} W_{l-1} + mu_{l+1} W_l^T
            if l == 0:
                a0, mu[0] = a, m * v + (1 - m) * torch.sigmoid(a)  # inputs clamped
            else:
                mu[l] = torch.sigmoid(a)
        if trace is not None:
            trace.append([t.detach() for t in mu])
    # [/maths:mpdbm.unroll]
    return mu, a0


def masked_mean_field(
    dbm,
    v: Tensor,
    observed: Tensor | None = None,
    *,
    n_iter: int = 10,
    trace: bool = False,
) -> list[Tensor] | tuple[list[Tensor], list[list[Tensor]]]:
    """Mean field over the hidden layers and the missing visible units, with ``v``
    clamped where ``observed`` is 1 (all of it when ``observed`` is None).

    Returns ``[q_0, mu_1, ..., mu_L]``: q_0 (B, n_0) is v where observed and Q(v_i = 1)
    elsewhere; mu_l (B, n_l) = Q(h^(l) = 1). Each of the ``n_iter`` steps updates the
    odd layers, then the even ones (eq. 20.33-20.34 with biases, figure 20.3's
    schedule), starting from sigmoid(b_l). Differentiable in ``dbm.W`` and ``dbm.b``
    when they require grad. With ``trace=True`` also returns every step's means.
    """
    W, _ = _layers(dbm)
    if observed is None:
        observed = torch.ones_like(v)
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0; got {n_iter}")
    v, m = _check_inputs(W, v, observed)
    steps: list | None = [] if trace else None
    mu, _ = _unroll(dbm, v, m, n_iter, steps)
    return (mu, steps) if trace else mu


def mp_loss(dbm, v: Tensor, observed: Tensor, *, n_iter: int = 10) -> Tensor:
    """The multi-prediction loss J(v, S) of each example: minus the log-likelihood of
    the targets (observed = 0) under the mean-field marginals after ``n_iter`` unrolled
    steps (Goodfellow et al. 2013, §20.4.5); (B, n_0), (B, n_0) -> (B,).

    Back-propagating through it gives the exact gradient of J in ``dbm.W`` and
    ``dbm.b`` (every step, not only the last).
    """
    W, _ = _layers(dbm)
    if n_iter < 1:
        raise ValueError(f"mp_loss needs n_iter >= 1 mean-field steps; got {n_iter}")
    v, m = _check_inputs(W, v, observed)
    _, a0 = _unroll(dbm, v, m, n_iter)
    # [maths:mpdbm.loss]
    nll = F.binary_cross_entropy_with_logits(a0, v, reduction="none")  # (B, n_0)
    return ((1 - m) * nll).sum(-1)  # only the targets count
    # [/maths:mpdbm.loss]


def sample_observed(
    shape: tuple[int, int],
    p_observed: float | Tensor = 0.5,
    *,
    generator: torch.Generator | None = None,
    device=None,
) -> Tensor:
    """A random subset S of inputs for each row: 1 with probability ``p_observed`` (a
    number, or one per unit (n_0,)), independently; (B, n_0) in {0, 1}.
    """
    p = torch.as_tensor(p_observed, dtype=torch.float32)
    if p.dim() > 1 or (p.dim() == 1 and p.shape[0] != shape[1]):
        raise ValueError(
            f"p_observed must be a number or one probability per unit ({shape[1]},); "
            f"got shape {tuple(p.shape)}"
        )
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"p_observed must lie in [0, 1]; got {p_observed}")
    gen_device = generator.device if generator is not None else "cpu"
    u = torch.rand(shape, generator=generator, device=gen_device)
    out = (u < p.to(gen_device)).float()
    return out.to(device) if device is not None else out


def fit_mpdbm(
    dbm,
    data: Tensor,
    *,
    epochs: int = 1,
    n_iter: int = 5,
    p_observed: float | Tensor = 0.5,
    lr: float = 1e-3,
    batch_size: int = 100,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Train ``dbm`` in place by multi-prediction (Goodfellow et al. 2013): for every
    minibatch draw a random subset of inputs per example (:func:`sample_observed`),
    unroll ``n_iter`` mean-field steps and take an Adam step on the mean of
    :func:`mp_loss`. No sampling and no partition function: the gradient is exact
    back-propagation, and the DBM needs no layer-wise pretraining.

    Records ``loss`` (the minibatch's mean J) per step. ``dbm.W`` and ``dbm.b`` are
    updated in place; their ``requires_grad`` flags are restored afterwards.
    """
    W, b = _layers(dbm)
    if n_iter < 1:
        raise ValueError(f"fit_mpdbm needs n_iter >= 1; got {n_iter}")
    check_shape(data, 2, W[0].shape[0], name="data", model="MP-DBM")
    check_binary(data, name="data", model="MP-DBM")
    data = data.to(W[0].device, W[0].dtype)
    params = W + b
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)

    def step(v: Tensor) -> dict[str, float]:
        m = sample_observed(tuple(v.shape), p_observed, generator=generator)
        loss = mp_loss(dbm, v, m.to(v.device, v.dtype), n_iter=n_iter).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    try:
        hist = fit(
            step,
            data,
            epochs=epochs,
            batch_size=batch_size,
            generator=generator,
            desc="MP-DBM",
            quiet=quiet,
        )
    finally:
        for p, flag in zip(params, flags):
            p.grad = None
            p.requires_grad_(flag)
    return hist


@torch.no_grad()
def fill_in(dbm, v: Tensor, observed: Tensor, *, n_iter: int = 10) -> Tensor:
    """Q(v_i = 1 | v_S) for every visible unit by mean field (v itself where
    observed); (B, n_0), (B, n_0) -> (B, n_0). Unobserved entries of ``v`` are ignored
    (any binary value will do).
    """
    return masked_mean_field(dbm, v, observed, n_iter=n_iter)[0]


@torch.no_grad()
def infer_labels(dbm, x: Tensor, n_classes: int, *, n_iter: int = 10) -> Tensor:
    """Mean-field Q(y_k = 1 | x) when the last ``n_classes`` visible units are a
    one-hot label and ``x`` (B, n_0 - n_classes) holds the rest; returns
    (B, n_classes), normalised over k. Classify with ``.argmax(1)``.
    """
    W, _ = _layers(dbm)
    n0 = W[0].shape[0]
    if not 1 <= n_classes < n0:
        raise ValueError(f"n_classes must be in [1, {n0 - 1}]; got {n_classes}")
    check_shape(x, 2, n0 - n_classes, name="x", model="MP-DBM (labels appended)")
    v = torch.cat([x, x.new_zeros(len(x), n_classes)], 1)
    observed = torch.ones_like(v)
    observed[:, -n_classes:] = 0
    q = masked_mean_field(dbm, v, observed, n_iter=n_iter)[0][:, -n_classes:]
    return q / q.sum(1, keepdim=True).clamp_min(1e-30)
