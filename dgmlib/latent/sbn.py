"""Sigmoid belief nets and the Helmholtz machine (Deep Learning §20.10.1; Neal 1992;
Hinton et al. 1995).

A sigmoid belief net (SBN) is a directed graphical model of binary units whose
conditionals are logistic regressions (eq. 20.70). Here it is layered: the top layer has
a factorial Bernoulli prior and every layer below depends on the one above it.

Notation (layer 0 is the visible layer; ``L = len(layer_sizes) - 1`` hidden layers)::

    x = h^(0)   (B, n_0)     visible units              W[k]  (n_k, n_{k+1})  weights
    h^(k+1) -> h^(k) h^(l)       (B, n_l)     hidden layer, l = 1..L     b[k]  (n_k,)
    biases of layer k; b[L] is the prior

    p(h^(L)_j = 1)             = sigmoid(b[L]_j)                                 top
    prior p(h^(k)_i = 1 | h^(k+1))   = sigmoid(b[k]_i + W[k][i, :] . h^(k+1))
    eq. 20.70, k = L-1..0 p(x, h) = p(h^(L)) prod_{k<L} p(h^(k) | h^(k+1))
    ancestral order

    q(h^(l+1)_j = 1 | h^(l))   = sigmoid(c[l]_j + h^(l) . R[l][:, j])
    recognition net, R[l] (n_l, n_{l+1})

Sampling goes down the layers (ancestral sampling) and is easy; the posterior p(h | x)
is not factorial (explaining away), so exact inference costs 2**(n_1 + ... + n_L) terms.
For tiny nets :meth:`SigmoidBeliefNet.log_prob` and
:meth:`SigmoidBeliefNet.posterior_exact` enumerate them; otherwise a recognition network
q(h | x) (:class:`RecognitionNet`) is learned beside the model and used as an
importance-sampling proposal (:meth:`SigmoidBeliefNet.is_log_likelihood`).

Objectives (each returns a loss to minimise with one optimizer over all parameters, and
a dict of numbers to record):

* :func:`wake_sleep_loss`: wake-sleep / Helmholtz machine (Hinton et al. 1995; Dayan et
al. 1995).
* :func:`nvil_loss`: neural variational inference and learning (Mnih & Gregor 2014):
REINFORCE
  for q with a learned input-dependent baseline, centering and variance normalisation.
* :func:`rws_loss`: reweighted wake-sleep (Bornschein & Bengio 2015): self-normalised
  importance weights over ``k`` samples of q.

:func:`fit_sbn` trains with any of them through :func:`dgmlib.train.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..exact import iter_states, log_sum_exp_states
from ..train import History, fit

__all__ = [
    "SigmoidBeliefNet",
    "SBNSample",
    "RecognitionNet",
    "ExactPosterior",
    "NVILBaseline",
    "wake_sleep_loss",
    "nvil_loss",
    "rws_loss",
    "fit_sbn",
    "mean_field_exact",
    "elbo_exact",
    "bernoulli_log_prob",
]

MAX_HIDDEN_ENUM = 22  # 2**22 hidden states per visible vector: a few seconds at most


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """sum_i log Bernoulli(x_i; sigmoid(a_i)) = sum_i [x_i a_i - softplus(a_i)], over
    the last dim.

    ``x`` and ``logits`` broadcast against each other, e.g. (B, D) with (K, B, D) ->
    (K, B). Stable for any logit (``softplus`` never overflows), unlike
    ``log(sigmoid(a))``.
    """
    return (x * logits - F.softplus(logits)).sum(-1)


def _check_sizes(layer_sizes, who: str) -> list[int]:
    sizes = list(layer_sizes)
    if len(sizes) < 2 or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes
    ):
        raise ValueError(
            f"{who} needs layer_sizes = (n_visible, n_hidden_1, ..., n_hidden_L) of "
            f"positive ints, at least two of them; got {layer_sizes!r}"
        )
    return sizes


def _normal(shape, std, generator, dtype) -> Tensor:
    dtype = dtype or torch.get_default_dtype()
    if std == 0:
        return torch.zeros(shape, dtype=dtype)
    where = generator.device if generator is not None else "cpu"
    return (
        torch.randn(shape, generator=generator, device=where, dtype=dtype) * std
    ).cpu()


def _as(p: Tensor, like: Tensor) -> Tensor:
    """``p`` in the dtype of ``like`` (a no-op, without a call, when they already
    agree).
    """
    return p if p.dtype == like.dtype else p.to(like.dtype)


def _bernoulli(p: Tensor, generator) -> Tensor:
    where = generator.device if generator is not None else p.device
    u = torch.rand(p.shape, generator=generator, device=where, dtype=p.dtype).to(
        p.device
    )
    return (u < p).to(p.dtype)


class SBNSample(NamedTuple):
    """An ancestral sample: ``x`` (n, n_0), ``h`` = [h^(1) (n, n_1), ..., h^(L)
    (n, n_L)], and ``x_mean`` = p(x = 1 | h^(1)) (n, n_0), the means of the last
    downward step.
    """

    x: Tensor
    h: list[Tensor]
    x_mean: Tensor


# ------------------------------------------------------------------------------------
# model
class SigmoidBeliefNet(nn.Module):
    """A layered sigmoid belief net (eq. 20.70) with a factorial Bernoulli prior on the
    top layer.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_0, n_1, ..., n_L)``: visible units first, then the hidden layers from the
        bottom up.
    init_std : float
        Standard deviation of the initial weights (biases start at 0); 0 without
        randomness.
    generator : torch.Generator, optional
        Randomness for the initial weights.
    dtype : torch.dtype, optional
        dtype of the parameters (default: torch's default dtype).

    Attributes
    ----------
    W : nn.ParameterList
        ``W[k]`` (n_k, n_{k+1}), the weights from layer k+1 down to layer k, k = 0..L-1.
    b : nn.ParameterList
        ``b[k]`` (n_k,), the biases of layer k, k = 0..L; ``b[L]`` holds the prior
        logits.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        sizes = _check_sizes(layer_sizes, "SigmoidBeliefNet")
        self.W = nn.ParameterList(
            nn.Parameter(_normal((n_k, n_up), init_std, generator, dtype))
            for n_k, n_up in zip(sizes[:-1], sizes[1:])
        )
        self.b = nn.ParameterList(
            nn.Parameter(torch.zeros(n, dtype=dtype or torch.get_default_dtype()))
            for n in sizes
        )

    @classmethod
    def from_parameters(
        cls, W: Sequence[Tensor], b: Sequence[Tensor]
    ) -> SigmoidBeliefNet:
        """An SBN with given weights ``W[k]`` (n_k, n_{k+1}) and biases ``b[k]`` (n_k,),
        k = 0..L.
        """
        if len(b) != len(W) + 1:
            raise ValueError(
                f"an SBN with {len(W)} weight matrices needs {len(W) + 1} bias "
                f"vectors; got {len(b)}"
            )
        sizes = [int(t.shape[0]) for t in b]
        for k, w in enumerate(W):
            if tuple(w.shape) != (sizes[k], sizes[k + 1]):
                raise ValueError(
                    f"W[{k}] must have shape (n_{k}, n_{k + 1}) = "
                    f"{(sizes[k], sizes[k + 1])}; got {tuple(w.shape)}"
                )
        sbn = cls(sizes, init_std=0.0, dtype=b[0].dtype)
        with torch.no_grad():
            for p, t in zip(list(sbn.W) + list(sbn.b), list(W) + list(b)):
                p.copy_(torch.as_tensor(t))
        return sbn

    @property
    def layer_sizes(self) -> list[int]:
        return [int(b.shape[0]) for b in self.b]

    @property
    def n_layers(self) -> int:
        """L, the number of hidden layers."""
        return len(self.W)

    @property
    def n_hidden(self) -> int:
        """Total number of hidden units n_1 + ... + n_L (exact inference costs
        2**n_hidden).
        """
        return sum(self.layer_sizes[1:])

    def extra_repr(self) -> str:
        return "layer_sizes=" + "-".join(map(str, self.layer_sizes))

    # -- conditionals ------------------------------------------------------------------
    def logits(self, k: int, h_above: Tensor) -> Tensor:
        """Logits of p(h^(k) = 1 | h^(k+1)): b[k] + W[k] h^(k+1) (eq. 20.70);
        (..., n_{k+1}) -> (..., n_k).
        """
        if not 0 <= k < self.n_layers:
            raise ValueError(
                f"logits: layer k must be in 0..{self.n_layers - 1}; got {k}"
            )
        W, b = _as(self.W[k], h_above), _as(self.b[k], h_above)
        return h_above @ W.T + b

    def log_prior(self, h_top: Tensor) -> Tensor:
        """log p(h^(L)) of the factorial top layer; (..., n_L) -> (...,)."""
        return bernoulli_log_prob(h_top, _as(self.b[-1], h_top))

    def log_joint(self, x: Tensor, *h: Tensor) -> Tensor:
        """log p(x, h^(1), ..., h^(L)) = log p(h^(L)) + sum_k log p(h^(k) | h^(k+1))
        (eq. 20.70).

        Parameters
        ----------
        x : Tensor, shape (..., n_0)
            Binary visible vectors.
        *h : Tensor
            One binary tensor per hidden layer, ``h[l-1]`` of shape (..., n_l). Leading
            dimensions broadcast, e.g. x (B, n_0) with h (K, B, n_l) for K samples per
            example.

        Returns
        -------
        log_p : Tensor, shape (...,)
            In the dtype of ``x`` (parameters are cast to it), differentiable in W and
            b.
        """
        if len(h) != self.n_layers:
            raise ValueError(
                f"log_joint needs one tensor per hidden layer ({self.n_layers}); got "
                f"{len(h)}"
            )
        layers = [x, *h]
        for l, (t, n) in enumerate(zip(layers, self.layer_sizes)):
            name = "x" if l == 0 else f"h^({l})"
            if t.ndim < 1 or t.shape[-1] != n:
                raise ValueError(
                    f"SigmoidBeliefNet.log_joint: {name} must have last dimension "
                    f"{n}; got shape {tuple(t.shape)}"
                )
            check_binary(t, name, "SigmoidBeliefNet")
        return self._log_joint([t.to(x.dtype) for t in layers])

    def _log_joint(self, layers: list[Tensor]) -> Tensor:
        """log p(x, h) = log p(h^(L)) + sum_k log p(h^(k) | h^(k+1)) (eq. 20.70), for
        ``layers`` = [x, h^(1), ..., h^(L)] of one dtype; :meth:`log_joint` checks its
        inputs, then calls this.
        """
        log_p = self.log_prior(layers[-1])
        for k in range(self.n_layers):
            log_p = log_p + bernoulli_log_prob(layers[k], self.logits(k, layers[k + 1]))
        return log_p

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> SBNSample:
        """Ancestral sampling: h^(L) from the prior, then each layer given the one above
        (eq. 20.70).

        Returns an :class:`SBNSample` (x (n, n_0), [h^(1), ..., h^(L)], p(x = 1 |
        h^(1))).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"sample: n must be a non-negative int; got {n!r}")
        b_top = self.b[-1]
        h = _bernoulli(torch.sigmoid(b_top).expand(n, -1), generator)  # (n, n_L)
        layers = [h]
        for k in reversed(range(self.n_layers)):
            p = torch.sigmoid(self.logits(k, layers[0]))  # (n, n_k)
            layers.insert(0, _bernoulli(p, generator))
        return SBNSample(layers[0], layers[1:], p)

    # -- exact inference by enumeration ------------------------------------------------
    def split_hidden(self, h_flat: Tensor) -> list[Tensor]:
        """Split concatenated hidden states (..., n_1 + ... + n_L) into [h^(1), ...,
        h^(L)].
        """
        return list(torch.split(h_flat, self.layer_sizes[1:], dim=-1))

    def _check_x(self, x: Tensor) -> Tensor:
        """x must be binary with shape (B, n_0); a clear error otherwise."""
        check_shape(x, 2, self.layer_sizes[0], name="x", model="SigmoidBeliefNet")
        check_binary(x, "x", "SigmoidBeliefNet")
        return x

    def _check_enumerable(self, who: str) -> None:
        if self.n_hidden > MAX_HIDDEN_ENUM:
            raise ValueError(
                f"{who} enumerates all 2**{self.n_hidden} hidden states, too many "
                f"(limit 2**{MAX_HIDDEN_ENUM}); use is_log_likelihood(x, q, k) with a "
                "recognition network instead"
            )

    def _log_joint_states(self, x: Tensor, h_flat: Tensor) -> Tensor:
        """log p(x, h) for every x (B, n_0) against every hidden state (S, H): (B, S).

        log p(x, h) = log p(h) + x . a(h) - sum_i softplus(a_i(h)) with a(h) = b[0] +
        W[0] h^(1): the hidden part is computed once per state and the visible part is
        one (B, n_0) x (n_0, S) product, instead of a (B, S, n_0) tensor.
        """
        hs = self.split_hidden(h_flat)  # each (S, n_l)
        log_p_h = self.log_prior(hs[-1])  # (S,)
        for k in range(1, self.n_layers):
            log_p_h = log_p_h + bernoulli_log_prob(hs[k - 1], self.logits(k, hs[k]))
        a = self.logits(0, hs[0])  # (S, n_0)
        return x @ a.T - F.softplus(a).sum(-1) + log_p_h  # (B, S)

    def log_prob(
        self, x: Tensor, *, chunk_size: int = 2**12, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Exact log p(x) = log sum_h p(x, h), enumerating all 2**n_hidden hidden
        states.

        Parameters
        ----------
        x : Tensor, shape (B, n_0)
            Binary visible vectors.
        chunk_size : int
            Hidden states per chunk (memory is B * chunk_size).
        dtype : torch.dtype
            Computation dtype (float64 by default, so sums over many states stay exact).

        Returns
        -------
        log_p : Tensor, shape (B,)
        """
        self._check_enumerable("log_prob")
        self._check_x(x)
        x = x.to(dtype)
        # [maths:sbn.log_prob]
        # log p(x) = log sum_h p(x, h), one sum per example: log-joints (S, B) per chunk
        # of states
        return log_sum_exp_states(
            lambda h: self._log_joint_states(x, h).T,
            self.n_hidden,
            chunk_size=chunk_size,
            dtype=dtype,
            device=x.device,
        )
        # [/maths:sbn.log_prob]

    @torch.no_grad()
    def posterior_exact(
        self, x: Tensor, *, dtype: torch.dtype = torch.float64
    ) -> tuple[Tensor, Tensor]:
        """The exact posterior p(h | x) over every joint hidden state.

        Returns
        -------
        h_states : Tensor, shape (S, n_1 + ... + n_L), S = 2**n_hidden
            All hidden states, layers concatenated (split with :meth:`split_hidden`).
        post : Tensor, shape (B, S)
            p(h | x) = p(x, h) / p(x); each row sums to 1.
        """
        self._check_enumerable("posterior_exact")
        self._check_x(x)
        from ..exact import all_states

        h_states = all_states(self.n_hidden, dtype=dtype, device=x.device)  # (S, H)
        log_joint = self._log_joint_states(x.to(dtype), h_states)  # (B, S)
        return h_states, torch.softmax(log_joint, dim=1)

    # -- importance sampling -----------------------------------------------------------
    def is_log_likelihood(
        self,
        x: Tensor,
        q,
        k: int,
        *,
        generator: torch.Generator | None = None,
        chunk: int = 1000,
    ) -> Tensor:
        """Importance-sampled estimate of log p(x) with proposal q(h | x) and ``k``
        samples.

        log p_hat(x) = log (1/k) sum_{s=1}^k p(x, h_s) / q(h_s | x),  h_s ~ q(h | x).

        p_hat is unbiased for p(x), so by Jensen E[log p_hat] <= log p(x); the gap
        shrinks as k grows (Burda et al. 2015), and is zero for every k when q is the
        exact posterior.

        Parameters
        ----------
        x : Tensor, shape (B, n_0)
        q : proposal
            Any object with ``q.sample(x, k, generator=)`` -> list of (k, B, n_l) and
            ``q.log_prob(h, x)`` -> (k, B): a :class:`RecognitionNet` or
            :class:`ExactPosterior`.
        k : int
            Number of importance samples per example.
        chunk : int
            Samples drawn at a time (memory is chunk * B * n_hidden).

        Returns
        -------
        log_p_hat : Tensor, shape (B,)
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"is_log_likelihood: k must be a positive int; got {k!r}")
        self._check_x(x)
        # [maths:sbn.is_log_likelihood]
        total = None  # log sum_s p(x, h_s) / q(h_s | x), accumulated over chunks
        with torch.no_grad():
            for start in range(0, k, chunk):
                m = min(chunk, k - start)
                h = q.sample(x, m, generator=generator)  # each (m, B, n_l)
                log_w = self.log_joint(x, *h) - q.log_prob(h, x)  # (m, B)
                part = torch.logsumexp(log_w, dim=0)
                total = part if total is None else torch.logaddexp(total, part)
        return total - math.log(k)
        # [/maths:sbn.is_log_likelihood]


# ------------------------------------------------------------------------------------
# inference
class RecognitionNet(nn.Module):
    """A factorial sigmoid recognition (inference) network q(h | x), one stochastic
    layer per SBN layer.

    q(h^(1), ..., h^(L) | x) = prod_l q(h^(l) | h^(l-1)),
    q(h^(l)_j = 1 | h^(l-1)) = sigmoid(c[l-1]_j + h^(l-1) . R[l-1][:, j]),  h^(0) = x.

    Each layer is factorial given the one below, the form the Helmholtz machine uses
    (Dayan et al. 1995); with L > 1 the joint q is not factorial.

    Parameters
    ----------
    layer_sizes : sequence of int
        The SBN's ``(n_0, n_1, ..., n_L)``.
    init_std : float
        Standard deviation of the initial weights.
    generator : torch.Generator, optional
    dtype : torch.dtype, optional
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        sizes = _check_sizes(layer_sizes, "RecognitionNet")
        self.R = nn.ParameterList(
            nn.Parameter(_normal((n_in, n_out), init_std, generator, dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        self.c = nn.ParameterList(
            nn.Parameter(torch.zeros(n, dtype=dtype or torch.get_default_dtype()))
            for n in sizes[1:]
        )

    @property
    def layer_sizes(self) -> list[int]:
        return [int(self.R[0].shape[0])] + [int(c.shape[0]) for c in self.c]

    def extra_repr(self) -> str:
        return "layer_sizes=" + "-".join(map(str, self.layer_sizes))

    def logits(self, l: int, h_below: Tensor) -> Tensor:
        """Logits of q(h^(l+1) = 1 | h^(l)); (..., n_l) -> (..., n_{l+1})."""
        return h_below @ _as(self.R[l], h_below) + _as(self.c[l], h_below)

    def _check_x(self, x: Tensor) -> None:
        check_shape(x, 2, self.layer_sizes[0], name="x", model="RecognitionNet")
        check_binary(x, "x", "RecognitionNet")

    @torch.no_grad()
    def sample(
        self,
        x: Tensor,
        k: int | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> list[Tensor]:
        """Draw h ~ q(h | x) layer by layer upwards.

        Parameters
        ----------
        x : Tensor, shape (B, n_0)
        k : int, optional
            Samples per example; ``None`` gives one without a sample dimension.

        Returns
        -------
        h : list of Tensor
            ``[h^(1), ..., h^(L)]``, each (B, n_l), or (k, B, n_l) when ``k`` is given.
        """
        self._check_x(x)
        return self._sample(x, k, generator)

    @torch.no_grad()
    def _sample(self, x: Tensor, k: int | None, generator) -> list[Tensor]:
        below = x if k is None else x.expand(k, *x.shape)  # (k, B, n_0)
        out = []
        for l in range(len(self.R)):
            below = _bernoulli(torch.sigmoid(self.logits(l, below)), generator)
            out.append(below)
        return out

    def log_prob(self, h: Sequence[Tensor], x: Tensor) -> Tensor:
        """log q(h | x) = sum_l log q(h^(l) | h^(l-1)); shapes broadcast as in sample:
        -> (...,) or (k, B).
        """
        if len(h) != len(self.R):
            raise ValueError(
                f"RecognitionNet.log_prob needs {len(self.R)} hidden layers; got "
                f"{len(h)}"
            )
        below, log_q = x, 0.0
        for l, hl in enumerate(h):
            log_q = log_q + bernoulli_log_prob(hl, self.logits(l, below))
            below = hl
        return log_q

    @torch.no_grad()
    def mean(self, x: Tensor) -> list[Tensor]:
        """The deterministic upward pass of probabilities, [q(h^(1) = 1 | x), ...]
        passed up as means.
        """
        self._check_x(x)
        out, below = [], x
        for l in range(len(self.R)):
            below = torch.sigmoid(self.logits(l, below))
            out.append(below)
        return out


class ExactPosterior:
    """The exact posterior p(h | x) of a tiny SBN, with the proposal interface of
    :class:`RecognitionNet`.

    Used as the importance-sampling proposal it gives a zero-variance estimate: every
    weight p(x, h) / p(h | x) equals p(x).
    """

    def __init__(self, sbn: SigmoidBeliefNet):
        sbn._check_enumerable("ExactPosterior")
        self.sbn = sbn

    @torch.no_grad()
    def sample(
        self,
        x: Tensor,
        k: int | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> list[Tensor]:
        """h ~ p(h | x): [h^(1), ..., h^(L)], each (k, B, n_l) (or (B, n_l) without
        ``k``).
        """
        h_states, post = self.sbn.posterior_exact(x)  # (S, H), (B, S)
        m = 1 if k is None else k
        where = generator.device if generator is not None else "cpu"
        idx = torch.multinomial(
            post.to(where), m, replacement=True, generator=generator
        ).to(x.device)  # (B, m)
        h = h_states[idx.T].to(x.dtype)  # (m, B, H)
        h = h[0] if k is None else h
        return self.sbn.split_hidden(h)

    def log_prob(self, h: Sequence[Tensor], x: Tensor) -> Tensor:
        """log p(h | x) = log p(x, h) - log p(x)."""
        return self.sbn.log_joint(x, *h) - self.sbn.log_prob(x).to(x.dtype)


def elbo_exact(
    sbn: SigmoidBeliefNet,
    q,
    x: Tensor,
    *,
    chunk_size: int = 2**12,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """The evidence lower bound E_q[log p(x, h) - log q(h | x)] exactly, by enumerating
    every hidden state.

    ELBO(x) = log p(x) - KL(q(h | x) || p(h | x)) <= log p(x) (§19.1); it is the mean of
    the one-sample importance estimate (``is_log_likelihood`` with k = 1). Only for tiny
    nets (2**n_hidden states); differentiable in both networks.

    Parameters
    ----------
    sbn : SigmoidBeliefNet
    q : RecognitionNet
        Any proposal whose ``log_prob(h, x)`` broadcasts h (S, 1, n_l) against x
        (B, n_0) to (S, B).
    x : Tensor, shape (B, n_0)

    Returns
    -------
    elbo : Tensor, shape (B,)
    """
    sbn._check_enumerable("elbo_exact")
    sbn._check_x(x)
    x = x.to(dtype)
    total = 0.0
    for h in iter_states(
        sbn.n_hidden, chunk_size=chunk_size, dtype=dtype, device=x.device
    ):  # (S, H)
        log_p = sbn._log_joint_states(x, h).T  # (S, B)
        log_q = q.log_prob(sbn.split_hidden(h[:, None, :]), x)  # (S, B)
        total = total + (log_q.exp() * (log_p - log_q)).sum(0)
    return total


@torch.no_grad()
def mean_field_exact(
    sbn: SigmoidBeliefNet, x: Tensor, *, n_iter: int = 50, init: Tensor | None = None
) -> Tensor:
    """Fully factorised q(h | x) = prod_j Bernoulli(mu_j) minimising KL(q || p(h | x)),
    by coordinate ascent.

    Mean-field inference for SBNs (Saul, Jaakkola & Jordan 1996) needs extra bounds
    because E_q[log sigmoid(.)] has no closed form; on a *tiny* net we can take that
    expectation exactly by enumerating every hidden state, which shows what the best
    factorial q looks like. Each update sets mu_j = sigmoid(E_{q_{-j}}[log
    p(x, h_j=1, h_-j) - log p(x, h_j=0, h_-j)]).

    Parameters
    ----------
    x : Tensor, shape (B, n_0)
    n_iter : int
        Sweeps over the hidden units.
    init : Tensor, shape (B, H), optional
        Starting means (default 0.5, which a symmetric posterior never leaves; pass an
        asymmetric start to break the tie).

    Returns
    -------
    mu : Tensor, shape (B, n_1 + ... + n_L)
    """
    h_states, post = sbn.posterior_exact(x)  # (S, H), (B, S)
    log_joint = post.clamp_min(1e-300).log()  # log p(h|x) + const
    H = h_states.shape[1]
    mu = (
        torch.full((x.shape[0], H), 0.5, dtype=post.dtype)
        if init is None
        else init.to(post.dtype).clone()
    )
    for _ in range(n_iter):
        for j in range(H):
            others = [i for i in range(H) if i != j]
            q_w = torch.where(
                h_states[None, :, others] == 1,
                mu[:, None, others],
                1 - mu[:, None, others],
            ).prod(-1)  # (B, S)
            on = h_states[:, j] == 1
            delta = (q_w[:, on] * log_joint[:, on]).sum(1) - (
                q_w[:, ~on] * log_joint[:, ~on]
            ).sum(1)
            # q_w sums to 1 over the states with h_j = 1 (and over those with h_j = 0):
            # exact expectations
            mu[:, j] = torch.sigmoid(delta)
    return mu


# ------------------------------------------------------------------------------------
# objectives
def _check_pair(sbn: SigmoidBeliefNet, q: RecognitionNet, x: Tensor) -> None:
    if q.layer_sizes != sbn.layer_sizes:
        raise ValueError(
            f"q has layer sizes {q.layer_sizes} but the SBN has {sbn.layer_sizes}"
        )
    sbn._check_x(x)


def wake_sleep_loss(
    sbn: SigmoidBeliefNet,
    q: RecognitionNet,
    x: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The wake-sleep algorithm of the Helmholtz machine (Hinton et al. 1995), as one
    surrogate loss.

    * **wake**: h ~ q(h | x) for the data; raise log p(x, h) in the generative
      weights. Its gradient for a layer is the local delta rule
      (h^(k) - sigmoid(a^(k))) h^(k+1)^T.
    * **sleep**: (x, h) ~ p by ancestral sampling ("dreams"); raise log q(h | x) in the
      recognition weights, i.e. fit q to the model's own samples.

    The samples are constants, so the wake term only moves the SBN and the sleep term
    only moves q. Sleep minimises KL(p || q) averaged over the model's x, not the
    KL(q || p) a variational bound needs, so wake-sleep follows no single objective.

    Returns
    -------
    loss : Tensor, scalar
        -(mean wake log p(x, h) + mean sleep log q(h | x)).
    info : dict
        ``wake`` (mean log p(x, h), nats), ``sleep`` (mean log q on dreams), ``elbo``
        (the one-sample estimate of E_q[log p(x, h) - log q(h | x)]).
    """
    _check_pair(sbn, q, x)
    # [maths:sbn.wake_sleep_loss]
    h = q._sample(x, None, generator)  # wake samples, (B, n_l)
    log_p = sbn._log_joint([x, *h])  # (B,)
    dream = sbn.sample(x.shape[0], generator=generator)  # sleep samples
    log_q_dream = q.log_prob(dream.h, dream.x.to(x.dtype))  # (B,)
    with torch.no_grad():
        elbo = (log_p - q.log_prob(h, x)).mean()
    loss = -(log_p.mean() + log_q_dream.mean())
    # [/maths:sbn.wake_sleep_loss]
    return loss, {
        "wake": float(log_p.detach().mean()),
        "sleep": float(log_q_dream.detach().mean()),
        "elbo": float(elbo),
    }


class NVILBaseline(nn.Module):
    """The variance-reduction state of NVIL (Mnih & Gregor 2014, Algorithm 1).

    An input-dependent baseline C_psi(x) (an MLP with one tanh hidden layer) and running
    estimates ``mean`` and ``var`` of the centred learning signal l(x, h) - C_psi(x),
    updated with decay ``alpha``.

    Parameters
    ----------
    n_visible : int
    n_hidden : int
        Width of the baseline's hidden layer (0: a linear baseline).
    alpha : float
        Decay of the running mean and variance, in [0, 1).
    generator : torch.Generator, optional
    dtype : torch.dtype, optional
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int = 100,
        *,
        alpha: float = 0.8,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if not 0 <= alpha < 1:
            raise ValueError(f"NVILBaseline: alpha must be in [0, 1); got {alpha}")
        self.alpha = alpha
        dt = dtype or torch.get_default_dtype()
        if n_hidden > 0:
            self.A = nn.Parameter(
                _normal((n_visible, n_hidden), 1 / math.sqrt(n_visible), generator, dt)
            )
            self.a = nn.Parameter(torch.zeros(n_hidden, dtype=dt))
            self.v = nn.Parameter(torch.zeros(n_hidden, dtype=dt))
        else:
            self.A = None
            self.v = nn.Parameter(torch.zeros(n_visible, dtype=dt))
        self.v0 = nn.Parameter(torch.zeros((), dtype=dt))
        self.register_buffer("mean", torch.zeros((), dtype=dt))
        self.register_buffer("var", torch.ones((), dtype=dt))

    def forward(self, x: Tensor) -> Tensor:
        """C_psi(x); (B, n_0) -> (B,)."""
        x = x.to(self.v.dtype)
        hid = torch.tanh(x @ self.A + self.a) if self.A is not None else x
        return hid @ self.v + self.v0


def nvil_loss(
    sbn: SigmoidBeliefNet,
    q: RecognitionNet,
    baseline: NVILBaseline,
    x: Tensor,
    *,
    generator: torch.Generator | None = None,
    centre: bool = True,
    normalise: bool = True,
) -> tuple[Tensor, dict[str, float]]:
    """Neural variational inference and learning (Mnih & Gregor 2014), one sample per
    example.

    With h ~ q(h | x) and the learning signal l(x, h) = log p(x, h) - log q(h | x)
    (its mean is the ELBO), the gradients of the ELBO are

    * SBN: E_q[grad_theta log p(x, h)];
    * q (REINFORCE / score function, eq. 20.62; baselines eq. 20.68):
      E_q[(l - b) grad_phi log q(h | x)] for any b not depending on h. NVIL uses
      b = C_psi(x) + c and divides by max(1, sqrt(v)), with c and v running mean and
      variance of l - C_psi(x) (``centre``, ``normalise``);
    * baseline: psi moves C_psi(x) towards l - c (the same normalised signal times
      grad C).

    This call updates ``baseline.mean`` and ``baseline.var`` (without gradient).

    Returns
    -------
    loss : Tensor, scalar
        A surrogate whose gradient is minus the three updates above.
    info : dict
        ``elbo`` (mean l, nats), ``signal_sd`` (standard deviation of the centred,
        normalised signal that multiplies grad log q).
    """
    _check_pair(sbn, q, x)
    # [maths:sbn.nvil_loss]
    h = q._sample(x, None, generator)
    log_p = sbn._log_joint([x, *h])  # (B,)
    log_q = q.log_prob(h, x)  # (B,)
    l = (log_p - log_q).detach()  # learning signal
    C = baseline(x).to(l.dtype)  # (B,)
    with torch.no_grad():
        centred = l - C.detach() if centre else l.clone()
        a = baseline.alpha  # running mean and variance
        baseline.mean.mul_(a).add_((1 - a) * centred.mean())
        baseline.var.mul_(a).add_((1 - a) * centred.var(unbiased=False))
        if centre:
            centred = centred - baseline.mean
        if normalise:
            centred = centred / baseline.var.sqrt().clamp_min(1.0)
    loss = -(log_p + centred * log_q).mean()
    if centre:
        loss = loss - (centred * C).mean()  # baseline: psi += signal * grad C
    # [/maths:sbn.nvil_loss]
    return loss, {"elbo": float(l.mean()), "signal_sd": float(centred.std())}


def rws_loss(
    sbn: SigmoidBeliefNet,
    q: RecognitionNet,
    x: Tensor,
    *,
    k: int = 5,
    generator: torch.Generator | None = None,
    sleep: bool = False,
) -> tuple[Tensor, dict[str, float]]:
    """Reweighted wake-sleep (Bornschein & Bengio 2015) with ``k`` samples of q per
    example.

    With h_s ~ q(h | x) and normalised importance weights w_s ∝ p(x, h_s) / q(h_s | x),

    * SBN (wake-phase p update): sum_s w_s grad_theta log p(x, h_s), the gradient of the
      importance-sampled log p_hat(x): a self-normalised estimate of grad log p(x),
      biased for finite k and exact as k -> infinity;
    * q (wake-phase q update): sum_s w_s grad_phi log q(h_s | x), a step towards the
      *posterior* p(h | x), i.e. down KL(p(h | x) || q(h | x)), on real data;
    * ``sleep=True`` adds the wake-sleep sleep-phase q update on dreams as well.

    Returns
    -------
    loss : Tensor, scalar
    info : dict
        ``log_p_hat`` (mean k-sample estimate of log p(x), nats), ``ess`` (mean
        effective sample size 1 / sum_s w_s^2, between 1 and k).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"rws_loss: k must be a positive int; got {k!r}")
    _check_pair(sbn, q, x)
    # [maths:sbn.rws_loss]
    h = q._sample(x, k, generator)  # each (k, B, n_l)
    log_p = sbn._log_joint([x, *h])  # (k, B)
    log_q = q.log_prob(h, x)  # (k, B)
    log_w = (log_p - log_q).detach()
    w = torch.softmax(log_w, dim=0)  # (k, B)
    loss = -(w * (log_p + log_q)).sum(0).mean()
    info = {
        "log_p_hat": float((torch.logsumexp(log_w, 0) - math.log(k)).mean()),
        "ess": float((1 / (w**2).sum(0)).mean()),
    }
    if sleep:
        dream = sbn.sample(x.shape[0], generator=generator)
        loss = loss - q.log_prob(dream.h, dream.x.to(x.dtype)).mean()
    # [/maths:sbn.rws_loss]
    return loss, info


# ------------------------------------------------------------------------------------
# training
METHODS = ("wake-sleep", "nvil", "rws")


def fit_sbn(
    sbn: SigmoidBeliefNet,
    q: RecognitionNet,
    data: Tensor,
    *,
    method: str = "rws",
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    k: int = 5,
    baseline: NVILBaseline | None = None,
    generator: torch.Generator | None = None,
    evaluate: Callable[[], float] | None = None,
    eval_every: int = 1,
    quiet: bool | None = None,
) -> History:
    """Train an SBN and its recognition network together with Adam.

    Parameters
    ----------
    sbn, q : SigmoidBeliefNet, RecognitionNet
    data : Tensor, shape (N, n_0)
        Binary training vectors.
    method : {"wake-sleep", "nvil", "rws"}
        :func:`wake_sleep_loss`, :func:`nvil_loss` or :func:`rws_loss`.
    epochs, batch_size, lr : training length, minibatch size and Adam's step size.
    k : int
        Samples per example for ``"rws"``.
    baseline : NVILBaseline, optional
        For ``"nvil"``; a fresh one (100 tanh units) if not given.
    generator : torch.Generator, optional
        Randomness for minibatches and samples.
    evaluate : callable, optional
        ``evaluate()`` -> float, e.g. an exact or importance-sampled log-likelihood;
        called before training and after every ``eval_every`` epochs.

    Returns
    -------
    History
        Per step, the ``info`` of the loss; ``history["eval"]`` and
        ``history["eval_epoch"]`` hold the evaluations (epoch 0 = before training).
    """
    if method not in METHODS:
        raise ValueError(f"fit_sbn: method must be one of {METHODS}; got {method!r}")
    check_shape(data, 2, sbn.layer_sizes[0], name="data", model="fit_sbn")
    check_binary(data, "data", "fit_sbn")
    if q.layer_sizes != sbn.layer_sizes:
        raise ValueError(
            f"fit_sbn: q has layer sizes {q.layer_sizes} but the SBN has "
            f"{sbn.layer_sizes}"
        )
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1; got {eval_every}")
    params = list(sbn.parameters()) + list(q.parameters())
    if method == "nvil":
        if baseline is None:
            baseline = NVILBaseline(
                sbn.layer_sizes[0], generator=generator, dtype=sbn.b[0].dtype
            ).to(data.device)
        params += list(baseline.parameters())
    opt = torch.optim.Adam(params, lr=lr, foreach=True)

    def step(x: Tensor) -> dict[str, float]:
        if method == "wake-sleep":
            loss, info = wake_sleep_loss(sbn, q, x, generator=generator)
        elif method == "nvil":
            loss, info = nvil_loss(sbn, q, baseline, x, generator=generator)
        else:
            loss, info = rws_loss(sbn, q, x, k=k, generator=generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return info

    evals, eval_epochs = [], []
    if evaluate is not None:
        evals.append(float(evaluate()))
        eval_epochs.append(0)
    history = History()
    for start in range(0, epochs, eval_every):
        n_ep = min(eval_every, epochs - start)
        part = fit(
            step,
            data,
            epochs=n_ep,
            batch_size=batch_size,
            generator=generator,
            desc=f"{method} {start + n_ep}/{epochs}",
            quiet=quiet,
        )
        offset = len(history)
        for name, values in part.values.items():
            history.values.setdefault(name, []).extend(values)
        history.epoch_ends.extend(offset + e for e in part.epoch_ends)
        if evaluate is not None:
            evals.append(float(evaluate()))
            eval_epochs.append(start + n_ep)
    if evaluate is not None:
        history.values["eval"], history.values["eval_epoch"] = (
            evals,
            [float(e) for e in eval_epochs],
        )
    return history
