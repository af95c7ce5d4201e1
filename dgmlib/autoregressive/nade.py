"""The neural autoregressive distribution estimator, NADE (§20.10.10, eq. 20.83;
Larochelle & Murray 2011).

Notation
--------
x : (B, D) binary         visible vectors, generated in the order ``o`` (a permutation)
W : (H, D)                input weights; column ``W[:, i]`` is what ``x_i`` adds to
every later hidden group
c : (H,)                  hidden bias
V : (D, H), b : (D,)      output weights and biases of the D conditionals
a_t : (B, H)              pre-activation of hidden group t:  a_t = c + sum_{s<t} W[:,
o_s] x_{o_s} h_t = sigmoid(a_t)        hidden group t (it sees only x_{o_<t})
p(x_{o_t} = 1 | x_{o_<t}) = sigmoid(b_{o_t} + V[o_t] . h_t)

Eq. 20.83 is the weight sharing ``W'_{j,k,i} = W_{k,i}``: the weight from input ``x_i``
to unit ``k`` of hidden group ``j`` is the same for every later group ``j``. Because of
it, ``a_{t+1} = a_t + W[:, o_t] x_{o_t}``: all D pre-activations are one *cumulative
sum*, and evaluating ``log p(x)`` costs O(DH) instead of the O(D^2 H) of independent
groups (:func:`nade_logits_loop`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    _uniform,
    bernoulli_log_prob,
    check_binary_input,
    check_order,
    check_orders,
    inverse_order,
    marginal_log_odds,
    random_orders,
)

__all__ = [
    "NADE",
    "prefix_preactivations",
    "nade_logits_loop",
    "nade_backward",
    "order_agnostic_log_prob",
    "ensemble_log_prob",
]


def prefix_preactivations(x_o: Tensor, W_o: Tensor, c: Tensor) -> Tensor:
    """All hidden pre-activations at once: ``a[:, :, t] = c + sum_{s<t} x_o[:, s]
    W_o[..., s]`` (B, H, D).

    ``x_o`` (B, D) is in generation order and ``W_o`` (H, D) or (B, H, D) holds the
    matching columns of ``W``. The inputs are shifted by one place, with ``c`` entering
    as the weight of a constant input 1 in column 0, and then one elementwise product
    and one cumulative sum over ``t`` give every ``a_t``: O(DH) per example (eq. 20.83).
    The layout (B, H, D) puts ``t`` on the last, contiguous axis, where a CPU sums about
    three times faster than along a middle one.
    """
    ones = torch.ones_like(x_o[:, :1])
    x_shift = torch.cat([ones, x_o[:, :-1]], 1)  # (B, D): 1, x_{o_0}, ..., x_{o_(D-2)}
    c_col = c[:, None] if W_o.ndim == 2 else c[:, None].expand(len(W_o), -1, 1)
    W_shift = torch.cat(
        [c_col, W_o[..., :-1]], -1
    )  # (H, D) or (B, H, D): c, W[:, o_0], ...
    return torch.cumsum(
        x_shift[:, None, :] * W_shift, dim=2
    )  # (B, H, D): column t is a_t


class NADE(nn.Module):
    """NADE for binary vectors: exact ``log p(x)`` in O(DH) by a cumulative sum
    (eq. 20.83).

    Parameters
    ----------
    n_visible : int
        ``D``, the number of binary variables.
    n_hidden : int
        ``H``, the size of each hidden group (all groups share ``W``, eq. 20.83).
    order : permutation of ``0..D-1``, optional
        The default generation order (natural when omitted). Every method also accepts
        an ``order=`` of its own: one (D,) order, or one per example (B, D) for
        order-agnostic training and ensembles (eq. 20.84).
    generator : torch.Generator, optional
        Draws the initial weights (``W ~ N(0, 1/D)``, ``V ~ N(0, 1/H)``; biases 0).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        order=None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(
                f"NADE needs n_visible >= 1 and n_hidden >= 1; got {n_visible}, "
                f"{n_hidden}"
            )
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.W = nn.Parameter(
            torch.randn(n_hidden, n_visible, generator=generator) / math.sqrt(n_visible)
        )  # (H, D)
        self.c = nn.Parameter(torch.zeros(n_hidden))  # (H,)
        self.V = nn.Parameter(
            torch.randn(n_visible, n_hidden, generator=generator) / math.sqrt(n_hidden)
        )  # (D, H)
        self.b = nn.Parameter(torch.zeros(n_visible))  # (D,)
        self.register_buffer(
            "order",
            check_order(torch.arange(n_visible) if order is None else order, n_visible),
        )

    @torch.no_grad()
    def init_bias_from_data(self, x: Tensor) -> None:
        """Start as independent pixels: ``b`` = the data's log-odds."""
        self.b.copy_(marginal_log_odds(x.to(self.b)))

    # ------------------------------------------------------------------ evaluation
    def _gather(
        self, x: Tensor, order
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The order and x, W, V^T, b permuted into it: x_o (B, D), W_o and V^T_o (H, D)
        or (B, H, D), b_o.
        """
        o = (
            self.order
            if order is None
            else check_orders(order, self.n_visible, x.shape[0]).to(x.device)
        )
        # contiguous copies: a broadcast product with a transposed view is several times
        # slower
        if o.ndim == 1:
            return o, x[:, o], self.W[:, o], self.V[o].T.contiguous(), self.b[o]
        return (
            o,
            x.gather(1, o),
            self.W.T[o].transpose(1, 2).contiguous(),
            self.V[o].transpose(1, 2).contiguous(),
            self.b[o],
        )

    def ordered_logits(self, x: Tensor, *, order=None) -> tuple[Tensor, Tensor, Tensor]:
        """``(o, x_o, l_o)``: the order, ``x`` in that order (B, D) and ``l_o[:, t] =
        logit p(x_{o_t}=1 | x_{o_<t})``.

        The O(DH) path of eq. 20.83: ``a_t = c + sum_{s<t} x_{o_s} W[:,
        o_s]`` for every ``t`` at once, as a cumulative sum shifted by one place
        (:func:`prefix_preactivations`).
        """
        check_binary_input(x, self.n_visible, "NADE")
        o, x_o, W_o, Vt_o, b_o = self._gather(x, order)
        a = prefix_preactivations(x_o, W_o, self.c)  # (B, H, D): column t is a_t
        h = torch.sigmoid(a)  # (B, H, D): hidden group t
        return o, x_o, (h * Vt_o).sum(1) + b_o  # (B, D): b_{o_t} + V[o_t] . h_t

    def logits(self, x: Tensor, *, order=None) -> Tensor:
        """``logits[:, d] = logit p(x_d = 1 | x_before_d)`` (B, D), in the natural
        layout.
        """
        o, _, l_o = self.ordered_logits(x, order=order)
        if o.ndim == 1:
            return l_o[:, inverse_order(o)]
        return l_o.gather(1, inverse_order(o))

    def log_prob(self, x: Tensor, *, order=None) -> Tensor:
        """Exact ``log p(x) = sum_t log p(x_{o_t} | x_{o_<t})`` in nats, (B, D) -> (B,).

        ``order``: None (the model's), one (D,) permutation, or one per example (B, D).
        """
        _, x_o, l_o = self.ordered_logits(x, order=order)
        return bernoulli_log_prob(l_o, x_o).sum(1)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        order=None,
        x: Tensor | None = None,
        n_known: int = 0,
        record_every: int | None = None,
    ):
        """Ancestral samples, one dimension at a time, updating ``a`` in O(H) per step
        (O(DH) in all).

        Parameters
        ----------
        n : int
            Number of samples.
        generator : torch.Generator, optional
            All randomness.
        order : (D,) permutation, optional
            Generation order (default: the model's).
        x : (n, D), optional
            Known values of the first ``n_known`` dimensions of ``order``: the rest is
            drawn exactly from ``p(x_rest | x_known)`` (conditional completion; choose
            the order with :func:`~dgmlib.autoregressive.base.order_known_first`).
        n_known : int
            How many leading dimensions of ``order`` are given.
        record_every : int, optional
            Also return the partial samples every ``record_every`` steps
            (for animations).

        Returns
        -------
        x : (n, D) in {0, 1}, or ``(x, frames)`` with ``record_every``.
        """
        o = (
            self.order
            if order is None
            else check_order(order, self.n_visible).to(self.W.device)
        )
        D = self.n_visible
        if not 0 <= n_known <= D:
            raise ValueError(f"n_known must lie in [0, {D}]; got {n_known}")
        out = torch.zeros(n, D, device=self.W.device, dtype=self.W.dtype)
        a = self.c.expand(n, -1).clone()  # (n, H): a_0 = c
        if n_known:
            if x is None or x.shape != (n, D):
                raise ValueError(f"n_known={n_known} needs x of shape ({n}, {D})")
            known = o[:n_known]
            check_binary_input(x[:, known], n_known, "NADE.sample")
            out[:, known] = x[:, known].to(out)
            a = a + out[:, known] @ self.W[:, known].T  # all known inputs at once
        frames = [out.clone()] if record_every else None
        for t in range(n_known, D):
            i = int(o[t])
            p = torch.sigmoid(
                self.b[i] + torch.sigmoid(a) @ self.V[i]
            )  # (n,) p(x_i = 1 | x_{o_<t})
            out[:, i] = (_uniform(n, generator, out.device) < p).to(out)
            a = a + out[:, i, None] * self.W[:, i]  # a_{t+1} = a_t + W[:, i] x_i
            if record_every and ((t + 1 - n_known) % record_every == 0 or t == D - 1):
                frames.append(out.clone())
        return (out, frames) if record_every else out


def nade_logits_loop(nade: NADE, x: Tensor, *, order=None) -> Tensor:
    """The same conditionals as :meth:`NADE.logits`, one hidden group at a time:
    O(D^2 H).

    Group ``t`` recomputes ``a_t = c + x_{o_<t} W[:, o_<t]^T`` from scratch, as a neural
    autoregressive network without the sharing of eq. 20.83 must. The reference that the
    cumulative-sum path is tested against, and timed against.
    """
    check_binary_input(x, nade.n_visible, "NADE")
    o = nade.order if order is None else check_order(order, nade.n_visible).to(x.device)
    x_o, W_o = x[:, o], nade.W[:, o]  # (B, D), (H, D)
    logits = torch.empty_like(x)
    for t in range(nade.n_visible):
        h = torch.sigmoid(nade.c + x_o[:, :t] @ W_o[:, :t].T)  # (B, H): O(tH)
        logits[:, o[t]] = nade.b[o[t]] + h @ nade.V[o[t]]
    return logits


def _work_buffers(nade: NADE, shape: tuple, like: Tensor) -> tuple[Tensor, Tensor]:
    """Two uninitialised (B, H, D) tensors, cached on the model: allocating
    (and first touching) hundreds of megabytes at every step would cost as much as a
    pass over them.
    """
    key = (shape, like.dtype, like.device)
    cached = nade.__dict__.get("_work")
    if cached is None or cached[0] != key:
        cached = (
            key,
            torch.empty(shape, dtype=like.dtype, device=like.device),
            torch.empty(shape, dtype=like.dtype, device=like.device),
        )
        nade.__dict__["_work"] = cached
    return cached[1], cached[2]


@torch.no_grad()
def nade_backward(nade: NADE, x: Tensor, *, order=None) -> Tensor:
    """Mean NLL of ``x`` and its gradient, written into ``.grad``: the fast training
    step (same O(DH)).

    The same numbers as ``(-nade.log_prob(x).mean()).backward()``, computed by hand with
    two (B, H, D) work buffers and in-place operations, at about a third of autograd's
    memory traffic (what limits NADE on a CPU; on one core it is three times faster than
    autograd). With ``delta_t = sigmoid(l_t) - x_{o_t}`` (the gradient of the NLL with
    respect to logit ``t``), ``da_t = delta_t V[o_t] * h_t (1 - h_t)`` and ``a_t = c +
    sum_{s<t} W[:, o_s] x_{o_s}``::

        dV[o_t] = sum_b delta_t h_t
        db_{o_t} = sum_b delta_t
        dc = sum_{b,t} da_t
        dW[:, o_s] = sum_b x_{o_s} sum_{t>s} da_t
                   = sum_b x_{o_s} (total - inclusive_cumsum(da)_s)

    Gradients are accumulated into ``.grad`` (call ``optimizer.zero_grad()`` first). The
    two work buffers stay attached to ``nade`` for the next call with the same batch
    shape.

    Parameters
    ----------
    nade : NADE
    x : (B, D) binary
    order : (D,) permutation, optional (default: the model's; one order for the whole
    batch)

    Returns
    -------
    nll : scalar tensor, the mean of ``-log p(x)`` in nats.
    """
    check_binary_input(x, nade.n_visible, "NADE")
    o = nade.order if order is None else check_order(order, nade.n_visible).to(x.device)
    B, D = x.shape
    x_o, W_o, Vt_o, b_o = (
        x[:, o],
        nade.W[:, o],
        nade.V[o].T.contiguous(),
        nade.b[o],
    )  # (B, D), (H, D), (H, D), (D,)
    a, u = _work_buffers(
        nade, (B, nade.n_hidden, D), x
    )  # two (B, H, D) buffers, kept between calls
    # shifted by one place, with c in column 0: x' = (1, x_{o_0}, ..., x_{o_(D-2)}), W'
    # = (c, W[:, o_0], ...)
    x_s = torch.cat([torch.ones_like(x_o[:, :1]), x_o[:, :-1]], 1)  # (B, D)
    W_s = torch.cat([nade.c[:, None], W_o[:, :-1]], 1)  # (H, D)
    torch.mul(x_s[:, None, :], W_s, out=u)
    h = torch.cumsum(
        u, 2, out=a
    ).sigmoid_()  # a_t = c + sum_{s<t} x_{o_s} W[:, o_s], then h_t
    hV = torch.mul(h, Vt_o, out=u)  # (B, H, D): h_t * V[o_t]
    logits = hV.sum(1).add_(b_o)  # (B, D)
    nll = F.binary_cross_entropy_with_logits(logits, x_o, reduction="sum") / B
    delta = torch.sigmoid(logits).sub_(x_o)  # (B, D): d NLL / d logit
    db_o = delta.sum(0)  # (D,)
    da = torch.addcmul(hV, hV, h, value=-1.0, out=u).mul_(
        delta[:, None, :]
    )  # delta V h (1 - h): d NLL / d a_t
    dVt_o = h.mul_(delta[:, None, :]).sum(
        0
    )  # (H, D): sum_b delta_t h_t (h is not needed after)
    dc = da.sum((0, 2))  # (H,)
    cum = torch.cumsum(da, 2, out=a)  # inclusive cumsum of da over t
    dW_o = cum[:, :, -1].T @ x_o  # (H, D): total da, times x_{o_s}
    dW_o -= cum.mul_(x_o[:, None, :]).sum(0)  # minus the part with t <= s
    inv = inverse_order(o)
    for p, grad in (
        (nade.W, dW_o[:, inv]),
        (nade.c, dc),
        (nade.V, dVt_o[:, inv].T),
        (nade.b, db_o[inv]),
    ):
        grad = grad / B
        p.grad = grad.contiguous() if p.grad is None else p.grad + grad
    return nll


def order_agnostic_log_prob(
    model, x: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """``log p(x | o)`` with a fresh uniformly random order ``o`` per example (B,).

    Its mean is an unbiased estimate of ``E_o log p(x | o)``, the order-agnostic
    objective (Uria et al. 2014): one set of weights learns all D! orderings at once, so
    any of them, or an ensemble of several (eq. 20.84), can be used afterwards.
    ``model`` must accept per-example orders ``log_prob(x, order=(B, D))``
    (NADE and RNADE do).
    """
    orders = random_orders(x.shape[0], x.shape[1], generator=generator, device=x.device)
    return model.log_prob(x, order=orders)


def ensemble_log_prob(model, x: Tensor, orders) -> Tensor:
    """Eq. 20.84: ``log p_ens(x) = log (1/k) sum_i p(x | o^(i))`` over ``k`` orders
    (k, D), (B, D) -> (B,).

    Each ``p(. | o^(i))`` is normalised, so their mean is too. By Jensen's inequality
    ``log p_ens(x) >= (1/k) sum_i log p(x | o^(i))`` for every ``x``.
    """
    orders = torch.as_tensor(orders, dtype=torch.long)
    if orders.ndim != 2:
        raise ValueError(
            "orders must be (k, D), one ordering per row; got shape "
            f"{tuple(orders.shape)}"
        )
    logs = torch.stack([model.log_prob(x, order=o) for o in orders])  # (k, B)
    return torch.logsumexp(logs, 0) - math.log(len(orders))
