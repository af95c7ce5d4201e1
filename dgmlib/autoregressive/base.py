"""What every autoregressive model here shares: input checks, orderings, Bernoulli
terms, sampling.

Notation (§20.10.7, eq. 20.79 of *Deep Learning*)
-------------------------------------------------
x : (B, D)           a batch of ``B`` vectors of ``D`` variables, batch first
order : (D,) long    a permutation ``o`` of ``0..D-1``: ``x[o[0]]`` is generated first,
                     ``x[o[D-1]]`` last; ``p(x) = prod_t p(x_{o_t} | x_{o_<t})``
logits : (B, D)      ``logit p(x_d = 1 | x_before_d)`` for every ``d`` (natural layout)
log_p : (B,)         ``log p(x)`` in nats

A model in this package computes all ``D`` conditionals of a given ``x`` at once (one
pass: *evaluation* is parallel), but must draw a sample one variable at a time, each
draw feeding the next conditional (*sampling* is sequential): :func:`sample_sequential`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dgmlib.checks import check_binary, check_shape

__all__ = [
    "check_binary_input",
    "check_order",
    "check_orders",
    "random_orders",
    "order_known_first",
    "bernoulli_log_prob",
    "log_mean_exp",
    "sample_sequential",
    "inverse_order",
    "dependencies",
    "marginal_log_odds",
    "BinaryAutoregressive",
]


def check_binary_input(x: Tensor, d: int, model: str) -> None:
    """``x`` must be (B, d) with entries in {0, 1}; otherwise a ValueError that says
    what to do.
    """
    check_shape(x, 2, d, name="x", model=model)
    check_binary(x, name="x", model=model)


def check_order(order, d: int) -> Tensor:
    """``order`` as a (d,) long tensor, after checking it is a permutation of
    ``0..d-1``.
    """
    o = torch.as_tensor(order, dtype=torch.long)
    if (
        o.ndim != 1
        or o.numel() != d
        or not torch.equal(torch.sort(o.cpu()).values, torch.arange(d))
    ):
        shown = o.flatten().tolist()
        raise ValueError(
            f"order must be a permutation of 0..{d - 1} (the dimensions in the order "
            f"they are generated); got {shown[:12]}{'...' if len(shown) > 12 else ''} "
            f"with shape {tuple(o.shape)}"
        )
    return o


def check_orders(orders, d: int, batch: int) -> Tensor:
    """One order for the batch (d,) or one per example (batch, d); returns a long
    tensor.
    """
    o = torch.as_tensor(orders, dtype=torch.long)
    if o.ndim == 1:
        return check_order(o, d)
    if o.ndim != 2 or o.shape != (batch, d):
        raise ValueError(
            f"orders must have shape ({d},) or ({batch}, {d}) (one per example); got "
            f"{tuple(o.shape)}"
        )
    if not torch.equal(
        torch.sort(o, dim=1).values, torch.arange(d, device=o.device).expand(batch, d)
    ):
        bad = int(
            (torch.sort(o, dim=1).values != torch.arange(d, device=o.device))
            .any(1)
            .nonzero()[0]
        )
        raise ValueError(
            f"orders[{bad}] is not a permutation of 0..{d - 1}: {o[bad].tolist()[:12]}"
        )
    return o


def inverse_order(order: Tensor) -> Tensor:
    """``pos`` with ``pos[order[t]] = t`` (the step at which each dimension is
    generated); any leading dims.
    """
    pos = torch.empty_like(order)
    pos.scatter_(
        -1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order)
    )
    return pos


def random_orders(
    n: int, d: int, *, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """``n`` independent uniformly random orderings of ``d`` dimensions: (n, d)."""
    where = generator.device if generator is not None else (device or "cpu")
    keys = torch.rand(n, d, generator=generator, device=where)
    return keys.argsort(dim=1).to(device or where)


def order_known_first(known: Tensor, base_order=None) -> Tensor:
    """An order that generates the ``known`` dimensions first, the rest after, each in
    ``base_order``.

    With it, sampling the remaining dimensions one at a time draws *exactly* from
    ``p(x_rest | x_known)`` (the chain rule read from the known prefix): conditional
    completion.

    Parameters
    ----------
    known : (D,) bool
    base_order : (D,) permutation, optional (default natural)
    """
    known = torch.as_tensor(known, dtype=torch.bool).flatten()
    d = known.numel()
    base = torch.arange(d) if base_order is None else check_order(base_order, d).cpu()
    k = known.cpu()[base]
    return torch.cat([base[k], base[~k]])


def marginal_log_odds(x: Tensor, smoothing: float = 0.5) -> Tensor:
    """``log((n_1 + s) / (n_0 + s))`` per column of binary ``x`` (N, D) -> (D,): the
    pixels' log-odds.

    The starting value of every model's output biases (``init_bias_from_data``): a model
    that starts as independent pixels with the data's frequencies. Adam moves a
    parameter by about the learning rate per step, so a bias left at 0 would need
    hundreds of steps to reach the log-odds of a pixel that is almost never on
    (a corner: about -8).
    """
    check_shape(x, 2, name="x", model="marginal_log_odds")
    check_binary(x, name="x", model="marginal_log_odds")
    n1 = x.sum(0)
    return torch.log(n1 + smoothing) - torch.log(len(x) - n1 + smoothing)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """``log p(x_d | ...) = x_d log sigma(l_d) + (1 - x_d) log sigma(-l_d)``,
    elementwise and stable.
    """
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def log_mean_exp(a: Tensor, dim: int = 0) -> Tensor:
    """``log mean exp(a)`` along ``dim``, stably (the ensemble of eq. 20.84 in log
    space).
    """
    return torch.logsumexp(a, dim=dim) - torch.log(
        torch.tensor(float(a.shape[dim]), dtype=a.dtype, device=a.device)
    )


def _uniform(shape, generator, device) -> Tensor:
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where).to(device)


@torch.no_grad()
def sample_sequential(
    logits_fn: Callable[[Tensor], Tensor],
    n: int,
    order: Tensor,
    *,
    generator: torch.Generator | None = None,
    x: Tensor | None = None,
    n_known: int = 0,
    record_every: int | None = None,
    device=None,
    dtype=torch.float32,
):
    """Ancestral sampling one dimension at a time: ``D - n_known`` passes of
    ``logits_fn``.

    Step ``t`` computes every conditional of the current (partly filled) ``x`` in one
    pass, keeps only ``logit p(x_{o_t} = 1 | x_{o_<t})`` and draws ``x_{o_t}``; later
    dimensions are still zero then, and the autoregressive property guarantees they do
    not matter.

    Parameters
    ----------
    logits_fn : callable (n, D) -> (n, D)
        All conditionals' logits of a model for the given order.
    n : int
        Number of samples.
    order : (D,) long
        Generation order.
    x : (n, D), optional
        Values of the first ``n_known`` dimensions of ``order``
        (conditional completion); the other entries are ignored.
    n_known : int
        How many leading dimensions of ``order`` are given in ``x`` and kept.
    record_every : int, optional
        Also return the partial samples after every ``record_every`` steps
        (and the last).

    Returns
    -------
    x : (n, D) samples in {0, 1}; with ``record_every`` a pair ``(x, frames)``,
    ``frames`` a list of (n, D) tensors (unfilled dimensions are 0).
    """
    d = order.numel()
    if not 0 <= n_known <= d:
        raise ValueError(f"n_known must lie in [0, {d}]; got {n_known}")
    out = torch.zeros(n, d, device=device, dtype=dtype)
    if x is not None:
        if x.shape != (n, d):
            raise ValueError(f"x must have shape ({n}, {d}); got {tuple(x.shape)}")
        known = order[:n_known].to(out.device)
        out[:, known] = x[:, known].to(out)
    frames = [out.clone()] if record_every else None
    for t in range(n_known, d):
        # [maths:autoregressive.sample_sequential]
        i = int(order[t])
        p = torch.sigmoid(logits_fn(out)[:, i])  # (n,) p(x_i = 1 | x_before)
        out[:, i] = (_uniform(n, generator, out.device) < p).to(dtype)
        # [/maths:autoregressive.sample_sequential]
        if record_every and ((t + 1 - n_known) % record_every == 0 or t == d - 1):
            frames.append(out.clone())
    return (out, frames) if record_every else out


def dependencies(logits_fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``dep[i, j]``: whether output ``i`` of ``logits_fn`` depends on input ``j``,
    (D, D) bool, by autograd.

    The Jacobian of the (summed over the batch) outputs with respect to the inputs ``x``
    (B, D), evaluated at every row of ``x``: an entry that is non-zero at some row is a
    real dependence. For generic weights and several random inputs, the zero pattern is
    the network's connectivity (a dead ReLU can hide an edge, never invent one). The
    autoregressive property says ``dep[i, j]`` only for ``j`` before ``i`` in the order.
    """
    x = x.detach()
    jac = torch.autograd.functional.jacobian(
        lambda v: logits_fn(v).sum(0), x
    )  # (D, B, D)
    return jac.abs().sum(1) > 0


class BinaryAutoregressive(torch.nn.Module):
    """What a binary model that defines ``logits(x)`` gets for free: exact ``log_prob``
    and sampling.

    A subclass defines ``logits(x) -> (B, D)`` (natural layout) and ``n_in``; its
    generation order is ``self.order`` when it has one, else the natural order.
    """

    def generation_order(self) -> Tensor:
        order = getattr(self, "order", None)
        return torch.arange(self.n_in) if order is None else order

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, (B, D) -> (B,)."""
        return bernoulli_log_prob(self.logits(x), x).sum(1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        x: Tensor | None = None,
        n_known: int = 0,
        record_every: int | None = None,
    ):
        """Samples (n, D), one variable per pass of the model (see
        :func:`sample_sequential`).

        ``x`` and ``n_known`` clamp the first ``n_known`` variables of the order: the
        rest is drawn exactly from ``p(rest | those)``.
        """
        p = next(self.parameters())
        return sample_sequential(
            self.logits,
            n,
            self.generation_order(),
            generator=generator,
            x=x,
            n_known=n_known,
            record_every=record_every,
            device=p.device,
            dtype=p.dtype,
        )
