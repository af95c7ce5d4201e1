"""Deep belief networks (Deep Learning §20.3; greedy layer-wise pretraining §15.1;
lecture 17).

A DBN with L hidden layers is a stack of L RBMs, ``rbms[l-1]`` between layer l-1 and
layer l. Only the top two layers are undirected; every lower layer is a directed sigmoid
belief net pointing down (Hinton, Osindero & Teh 2006).

Notation (eq. 20.17-20.23; layer 0 is the visible layer)::

    h^(0) = v   (B, n_0)   visible units
    h^(l)       (B, n_l)   hidden layer, l = 1..L
    rbms[l-1]              the RBM between h^(l-1) and h^(l)
    W^(l)   = rbms[l-1].W  (n_{l-1}, n_l)
    b^(l-1) = rbms[l-1].b  (n_{l-1},)   generative bias
    c^(l)   = rbms[l-1].c  (n_l,)       recognition bias

    top RBM (eq. 20.17):
        P(h^(L-1), h^(L)) ∝ exp(b.h^(L-1) + c.h^(L) + h^(L-1) W^(L) h^(L))
    k < L-1 (eq. 20.18-20.19):
        P(h^(k)_i = 1 | h^(k+1)) = sigmoid(b^(k)_i + W^(k+1)[i, :] h^(k+1))
    upward pass (eq. 20.22-20.23):
        Q(h^(l)_j = 1 | h^(l-1)) = sigmoid(c^(l)_j + h^(l-1) W^(l)[:, j])

The generative model uses the top RBM's two biases and the *visible* bias ``b`` of every
lower RBM; a lower RBM's hidden bias ``c`` only serves the approximate upward
(recognition) pass.

Training (:func:`fit_dbn`), sampling (:func:`dbn_sample`), exact enumeration on tiny
nets (:func:`dbn_log_prob_exact`, :func:`dbn_posterior_exact`,
:func:`dbn_lower_bound_exact`) and the networks a DBN initialises (:func:`dbn_to_mlp`,
:func:`unroll_autoencoder`) are functions that take the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_shape
from ..exact import all_states, log_partition
from ..mcmc.gibbs import sample_h
from ..train import History, fit, minibatches
from .rbm import BernoulliRBM, RBMStep, fit_rbm

__all__ = [
    "DBN",
    "DBNSample",
    "fit_dbn",
    "dbn_sample",
    "dbn_prior_exact",
    "dbn_log_prob_exact",
    "dbn_posterior_exact",
    "dbn_lower_bound_exact",
    "mlp",
    "dbn_to_mlp",
    "unroll_autoencoder",
    "finetune_classifier",
    "finetune_autoencoder",
    "hamming_distance",
    "hamming_neighbours",
]


# ------------------------------------------------------------------------------------
# model
class DBN(nn.Module):
    """A deep belief network: a stack of :class:`BernoulliRBM` s in an
    ``nn.ModuleList``.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_0, n_1, ..., n_L)``: visible units first, then each hidden layer; at least
        two.
    init_std : float
        Standard deviation of the initial weights of each RBM (zero without
        ``generator``).
    generator : torch.Generator, optional
        Randomness for the initial weights.
    dtype : torch.dtype, optional
        dtype of every RBM (default: torch's default dtype).
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
        sizes = list(layer_sizes)
        if len(sizes) < 2 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes
        ):
            raise ValueError(
                "DBN needs layer_sizes = (n_visible, n_hidden_1, ..., n_hidden_L) of "
                f"positive ints, at least two of them; got {layer_sizes!r}"
            )
        # [maths:dbn.stack]
        self.rbms = nn.ModuleList(
            BernoulliRBM(
                n_in, n_out, init_std=init_std, generator=generator, dtype=dtype
            )
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        # [/maths:dbn.stack]

    @property
    def layer_sizes(self) -> list[int]:
        return [self.rbms[0].n_visible] + [r.n_hidden for r in self.rbms]

    @property
    def n_layers(self) -> int:
        """L, the number of hidden layers (= number of RBMs)."""
        return len(self.rbms)

    @property
    def top(self) -> BernoulliRBM:
        """The undirected top RBM, between h^(L-1) and h^(L) (eq. 20.17)."""
        return self.rbms[-1]

    def extra_repr(self) -> str:
        return "layer_sizes=" + "-".join(map(str, self.layer_sizes))

    def up(self, v: Tensor, *, n_layers: int | None = None) -> list[Tensor]:
        """Mean-field upward (recognition) pass, eq. 20.22-20.23; (B, n_0) -> [(B, n_1),
        ..., (B, n_L)].

        ``h^(l) = sigmoid(c^(l) + h^(l-1) W^(l))`` with probabilities, not samples,
        passed up. This is the approximate inference of a DBN: the true posterior
        P(h^(1) | v) is not factorial (explaining away; :func:`dbn_posterior_exact`).
        ``v`` may hold probabilities. ``n_layers`` stops after that many layers.
        """
        n = self.n_layers if n_layers is None else n_layers
        if not 0 <= n <= self.n_layers:
            raise ValueError(f"n_layers must be in 0..{self.n_layers}; got {n_layers}")
        check_shape(v, 2, self.layer_sizes[0], name="v", model="DBN")
        out, x = [], v
        for rbm in self.rbms[:n]:
            x = rbm.p_h_given_v(x)
            out.append(x)
        return out

    def p_down(self, k: int, h_above: Tensor) -> Tensor:
        """P(h^(k)_i = 1 | h^(k+1)) = sigmoid(b^(k) + W^(k+1) h^(k+1))
        (eq. 20.18-20.19); (B, n_{k+1}) -> (B, n_k).

        For ``k < L-1`` this is a directed (sigmoid belief net) layer; ``k = 0`` gives
        P(v | h^(1)).
        """
        if not 0 <= k < self.n_layers:
            raise ValueError(
                f"p_down: layer k must be in 0..{self.n_layers - 1}; got {k}"
            )
        rbm = self.rbms[k]
        check_shape(h_above, 2, rbm.n_hidden, name="h_above", model=f"DBN.p_down({k})")
        return torch.sigmoid(h_above.to(rbm.W.dtype) @ rbm.W.T + rbm.b)  # (B, n_k)


# ------------------------------------------------------------------------------------
# training
def _per_layer(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{name} has {len(value)} entries but the DBN has {n} layers"
            )
        return list(value)
    return [value] * n


def _logit_of_mean(x: Tensor, smoothing: float = 0.01) -> Tensor:
    p = (x.mean(0) + smoothing) / (1 + 2 * smoothing)
    return torch.log(p) - torch.log1p(-p)


def fit_dbn(
    dbn: DBN,
    data: Tensor,
    *,
    epochs: int | Sequence[int] = 10,
    lr: float | Sequence[float] = 0.05,
    method: str = "pcd",
    k: int = 1,
    batch_size: int = 100,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    upward: str = "mean",
    layers: Sequence[int] | None = None,
    init_bias: bool = True,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> list[History]:
    """Greedy layer-wise training (Hinton et al. 2006; Bengio et al. 2007; §20.3, eq.
    20.21).

    RBM 1 is fitted to ``data`` by :func:`fit_rbm`; then, with the layers below frozen,
    RBM l is fitted to the representation of the data at layer l-1 given by the upward
    pass.

    Parameters
    ----------
    dbn : DBN
        Trained in place.
    data : Tensor, shape (N, n_0)
        Binary training data on the DBN's device.
    epochs, lr : int/float or one per layer
        Passes over the data and learning rate of each RBM.
    method, k, batch_size, momentum, weight_decay :
        As in :func:`fit_rbm` (CD-k or PCD-k, with ``batch_size`` persistent chains).
    upward : {"mean", "sample"}
        What RBM l (l >= 2) is trained on. ``"mean"`` (default): the mean activations
        P(h^(l-1) = 1 | ...) of the upward pass, computed once (low variance; what
        Hinton & Salakhutdinov's published code does). ``"sample"``: a fresh binary
        sample h^(1) ~ Q(h^(1)|v), h^(2) ~ Q(h^(2)|h^(1)), ... for every minibatch, an
        unbiased Monte Carlo estimate of the objective E_v E_{h~Q(h|v)} log P^(l)(h) of
        eq. 20.21 that the variational-bound argument of Hinton et al. (2006) is about.
    layers : sequence of int, optional
        Which RBMs to train (0-based, in order); default all. Layers not listed are left
        as they are, e.g. ``layers=[1]`` trains RBM 2 on top of an already-trained RBM
        1.
    init_bias : bool
        Set each trained RBM's visible bias to the log-odds of its input's mean first
        (Hinton 2010, §8.1).
    generator : torch.Generator, optional
        All randomness (shuffling, chains, upward samples).

    Returns
    -------
    list of History
        One per trained layer (``recon_error`` per step).
    """
    if upward not in ("mean", "sample"):
        raise ValueError(f"upward must be 'mean' or 'sample'; got {upward!r}")
    if method not in ("cd", "pcd"):
        raise ValueError(f"method must be 'cd' or 'pcd'; got {method!r}")
    L = dbn.n_layers
    epochs_l, lr_l = _per_layer(epochs, L, "epochs"), _per_layer(lr, L, "lr")
    todo = list(range(L)) if layers is None else list(layers)
    if any(not 0 <= l < L for l in todo):
        raise ValueError(f"layers must be indices in 0..{L - 1}; got {list(layers)}")
    data = dbn.rbms[0]._check_v(data)  # binary, right device
    histories = []
    for l in todo:
        rbm = dbn.rbms[l]
        if l == 0:  # RBM 1: the data itself
            if init_bias:
                rbm.init_visible_bias_from_data(data)
            hist = fit_rbm(
                rbm,
                data,
                method=method,
                k=k,
                batch_size=batch_size,
                epochs=epochs_l[0],
                lr=lr_l[0],
                momentum=momentum,
                weight_decay=weight_decay,
                schedule="constant",  # every layer the same: RBMStep's constant rate
                init_visible_bias=False,  # init_bias above decides
                generator=generator,
                quiet=quiet,
            )
            histories.append(hist)
            continue
        # [maths:dbn.greedy_layer]
        with torch.no_grad():
            below = dbn.up(data, n_layers=l)[-1]  # (N, n_l) means at layer l
            if init_bias:
                rbm.b.copy_(_logit_of_mean(below))
        step = RBMStep(rbm, method, k, lr_l[l], momentum, weight_decay, generator)
        if upward == "mean":
            train_on, call = below, step
        else:  # fresh samples per batch

            def call(v, l=l, step=step):
                with torch.no_grad():
                    x = v
                    for r in dbn.rbms[:l]:
                        x = torch.bernoulli(r.p_h_given_v(x), generator=generator)
                return step(x)

            train_on = data
        # [/maths:dbn.greedy_layer]
        if method == "pcd":  # as fit_rbm: chains from data
            where = generator.device if generator is not None else "cpu"
            idx = torch.randint(
                len(data), (batch_size,), generator=generator, device=where
            ).to(data.device)
            step.chains = below[idx].clone()
        hist = fit(
            call,
            train_on,
            epochs=epochs_l[l],
            batch_size=batch_size,
            generator=generator,
            desc=f"DBN layer {l + 1}: {method.upper()}-{k}",
            quiet=quiet,
        )
        hist.chains = step.chains
        histories.append(hist)
    return histories


# ------------------------------------------------------------------------------------
# sampling
class DBNSample(NamedTuple):
    """What :func:`dbn_sample` returns."""

    v: Tensor  # (n, n_0) binary visible samples
    v_mean: Tensor  # (n, n_0) P(v = 1 | h^(1)) of the last downward step
    layers: list[Tensor]  # sampled states [h^(L-1), ..., h^(1), v], top first
    frames: (
        list[Tensor] | None
    )  # top-chain states projected down by probabilities (record_every)


@torch.no_grad()
def dbn_sample(
    dbn: DBN,
    n: int,
    *,
    gibbs_steps: int,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
    record_every: int | None = None,
) -> DBNSample:
    """Ancestral sampling from a DBN (§20.3): Gibbs in the top RBM, then one pass down.

    1. Run ``gibbs_steps`` block-Gibbs sweeps h^(L-1) -> h^(L) -> h^(L-1) in the top RBM
       (eq. 20.17), from ``init`` (n, n_{L-1}) or, by default, from uniform random bits.
    2. Draw h^(k) ~ P(h^(k) | h^(k+1)) (eq. 20.18-20.19) for k = L-2, ..., 0: one
       sample per directed layer, down to v.

    For a 1-layer DBN (one RBM) this is exactly :func:`~dgmlib.mcmc.gibbs_chain` (same
    generator, same samples). With ``record_every`` = r, ``frames`` holds the top
    chain's state after sweeps 0, r, 2r, ... projected down with probabilities instead
    of samples (h^(k) = P(h^(k) = 1 | h^(k+1)), no randomness), for animations;
    recording does not change the samples.

    Returns
    -------
    DBNSample
        ``v`` (n, n_0), ``v_mean`` (n, n_0), ``layers``, ``frames``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of samples) must be a positive int; got {n!r}")
    if gibbs_steps < 1:
        raise ValueError(
            "gibbs_steps must be >= 1 (at least one sweep of the top RBM); got "
            f"{gibbs_steps}"
        )
    if record_every is not None and record_every < 1:
        raise ValueError(f"record_every must be >= 1 or None; got {record_every}")
    top, L = dbn.top, dbn.n_layers
    W = top.W
    if init is None:
        where = generator.device if generator is not None else W.device
        x = torch.bernoulli(
            torch.full((n, top.n_visible), 0.5, dtype=W.dtype, device=where),
            generator=generator,
        ).to(W.device)  # (n, n_{L-1})
    else:
        check_shape(
            init,
            2,
            top.n_visible,
            name="init",
            model=f"dbn_sample (layer {L - 1} of the DBN)",
        )
        if len(init) != n:
            raise ValueError(
                f"init has {len(init)} rows but n = {n} chains were asked for"
            )
        x = init.to(W.dtype)

    # [maths:dbn.ancestral]
    def project(h):  # mean-field down
        for kk in range(L - 2, -1, -1):
            h = dbn.p_down(kk, h)
        return h

    frames = [project(x)] if record_every else None
    p = None
    for t in range(1, gibbs_steps + 1):  # block Gibbs, top RBM
        h_top = sample_h(top, x, generator=generator)  # (n, n_L)
        p = top.p_v_given_h(h_top)  # (n, n_{L-1})
        x = torch.bernoulli(p, generator=generator)
        if record_every and t % record_every == 0:
            frames.append(project(x))
    layers = [x]
    for kk in range(L - 2, -1, -1):  # directed layers, one pass
        p = dbn.p_down(kk, x)
        x = torch.bernoulli(p, generator=generator)
        layers.append(x)
    return DBNSample(v=x, v_mean=p, layers=layers, frames=frames)
    # [/maths:dbn.ancestral]


# ------------------------------------------------------------------------------------
# exact (tiny nets)
MAX_ENUM = 20  # hidden layers below the top are enumerated: 2**n states each


def _bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """log prod_i Bern(x_i; sigmoid(logits_i)), every pair: (A, n), (B, n) -> (A, B)."""
    return x @ F.logsigmoid(logits).T + (1 - x) @ F.logsigmoid(-logits).T


def _free_energy64(rbm: BernoulliRBM, v: Tensor) -> Tensor:
    """F(v) of an RBM computed in float64, whatever the RBM's dtype; (B, D) -> (B,)."""
    W, b, c = (t.to(torch.float64) for t in (rbm.W, rbm.b, rbm.c))
    v = v.to(torch.float64)
    return -(v @ b) - F.softplus(v @ W + c).sum(-1)


@torch.no_grad()
def dbn_prior_exact(dbn: DBN) -> tuple[Tensor, Tensor]:
    """The DBN's exact prior over h^(1): ``(states (2**n_1, n_1), log P(h^(1))
    (2**n_1,))``, float64.

    log P(h^(L-1)) = -F_top(h^(L-1)) - log Z_top is the top RBM's marginal (eq. 20.17),
    pushed down through the directed layers, P(h^(k)) = sum_{h^(k+1)} P(h^(k) | h^(k+1))
    P(h^(k+1)) (eq. 20.18). Every hidden layer below the top is enumerated
    (at most 20 units each). For the data distribution, P(v) = sum_h1 P(v | h1) P(h1)
    (:func:`dbn_log_prob_exact`).
    """
    if dbn.n_layers < 2:
        raise ValueError(
            "dbn_prior_exact needs a DBN with at least 2 hidden layers (below the top "
            "RBM)"
        )
    sizes = dbn.layer_sizes
    for l in range(1, dbn.n_layers):
        if sizes[l] > MAX_ENUM:
            raise ValueError(
                "exact DBN computations enumerate every hidden layer below the top; "
                f"layer {l} has {sizes[l]} units (limit {MAX_ENUM}). Use a smaller "
                "DBN."
            )
    top = dbn.top
    dt = torch.float64
    s = all_states(sizes[-2], dtype=dt, device=top.W.device)  # states of h^(L-1)
    log_p = -_free_energy64(top, s) - log_partition(top)  # top RBM marginal (eq. 20.17)
    for kk in range(dbn.n_layers - 2, 0, -1):  # down to h^(1)
        rbm = dbn.rbms[kk]
        below = all_states(sizes[kk], dtype=dt, device=s.device)
        logits = s @ rbm.W.T.to(dt) + rbm.b.to(dt)  # (2^n_{k+1}, n_k)
        log_t = _bernoulli_log_prob(below, logits)  # (2^n_k, 2^n_{k+1})
        log_p = torch.logsumexp(log_t + log_p[None, :], dim=1)
        s = below
    return s, log_p


def _log_joint_v_h1(dbn: DBN, v: Tensor) -> tuple[Tensor, Tensor]:
    if dbn.n_layers < 2:
        raise ValueError(
            "this exact computation needs a DBN with at least 2 hidden layers; a "
            "1-layer DBN is an RBM: use -rbm.free_energy(v) - "
            "dgmlib.exact.log_partition(rbm)"
        )
    check_shape(v, 2, dbn.layer_sizes[0], name="v", model="DBN")
    h1, log_prior = dbn_prior_exact(dbn)
    rbm = dbn.rbms[0]
    logits = h1 @ rbm.W.T.to(h1.dtype) + rbm.b.to(h1.dtype)  # (2^n_1, n_0)
    log_lik = _bernoulli_log_prob(v.to(h1.dtype), logits)  # (B, 2^n_1)
    return h1, log_lik + log_prior[None, :]


@torch.no_grad()
def dbn_log_prob_exact(dbn: DBN, v: Tensor) -> Tensor:
    """Exact log P(v) = log sum_{h1} P(v | h1) P(h1) of a small DBN, by enumeration;
    (B, n_0) -> (B,).

    P(h1) comes from the top RBM's marginal pushed down through the directed layers;
    every hidden layer below the top is enumerated (at most 20 units each). Computed in
    float64. For a 1-layer DBN (an RBM) it is -F(v) - log Z.
    """
    if dbn.n_layers == 1:
        rbm = dbn.rbms[0]
        check_shape(v, 2, rbm.n_visible, name="v", model="DBN")
        return -_free_energy64(rbm, v) - log_partition(rbm)
    _, log_joint = _log_joint_v_h1(dbn, v)
    return torch.logsumexp(log_joint, dim=1)


@torch.no_grad()
def dbn_posterior_exact(dbn: DBN, v: Tensor) -> tuple[Tensor, Tensor]:
    """The exact posterior P(h^(1) | v) of a small DBN over all 2**n_1 states of h^(1).

    Returns ``(states (2**n_1, n_1), post (B, 2**n_1))``. Unlike an RBM's, it is not
    factorial: the prior P(h^(1)) from the layers above couples the units
    (explaining away).
    """
    h1, log_joint = _log_joint_v_h1(dbn, v)
    return h1, torch.softmax(log_joint, dim=1)


@torch.no_grad()
def dbn_lower_bound_exact(
    dbn: DBN, v: Tensor, *, with_log_prob: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """The variational lower bound of Hinton et al. (2006) on log P(v), exactly;
    (B, n_0) -> (B,).

    ``log P(v) >= sum_h1 Q(h1|v) [log P(h1) + log P(v|h1)] + H(Q)`` with Q(h1|v) the
    factorial P(h1 | v) of RBM 1 (its upward conditional, eq. 20.22). The gap is KL(Q ||
    P(h1 | v)). Greedy training of the layers above raises the ``E_Q log P(h1)`` term
    (eq. 20.21) while Q and P(v | h1) stay fixed. ``with_log_prob=True`` returns
    ``(bound, log P(v))`` from the same enumeration (:func:`dbn_log_prob_exact` costs as
    much again).
    """
    h1, log_joint = _log_joint_v_h1(dbn, v)
    rbm = dbn.rbms[0]
    logits_q = v.to(h1.dtype) @ rbm.W.to(h1.dtype) + rbm.c.to(
        h1.dtype
    )  # (B, n_1), eq. 20.22
    log_q = _bernoulli_log_prob(h1, logits_q).T  # (B, 2^n_1)
    bound = (log_q.exp() * (log_joint - log_q)).sum(1)
    return (bound, torch.logsumexp(log_joint, dim=1)) if with_log_prob else bound


# ------------------------------------------------------------------------------------
# networks
def mlp(
    layer_sizes: Sequence[int],
    n_out: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    """Linear + Sigmoid per hidden layer, then a Linear output layer (logits); (B, n_0)
    -> (B, n_out).

    Weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the random initialisation of Erhan et
    al. 2010, also torch's default scale), biases 0; all randomness from ``generator``.
    """
    sizes = list(layer_sizes) + [n_out]
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ValueError(
            f"mlp needs positive layer sizes; got {list(layer_sizes)} and n_out={n_out}"
        )
    dtype = dtype or torch.get_default_dtype()
    where = generator.device if generator is not None else "cpu"
    mods = []
    for i, (n_in, n_o) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(n_in, n_o, dtype=dtype)
        with torch.no_grad():
            u = torch.rand(n_o, n_in, generator=generator, device=where, dtype=dtype)
            lin.weight.copy_((2 * u - 1) / math.sqrt(n_in))
            lin.bias.zero_()
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(nn.Sigmoid())
    return nn.Sequential(*mods)


def dbn_to_mlp(
    dbn: DBN, n_out: int, *, generator: torch.Generator | None = None
) -> nn.Sequential:
    """The MLP whose hidden layers are the DBN's upward pass (eq. 20.22-20.23), plus a
    fresh output layer.

    Layer l computes ``sigmoid(h^(l-1) W^(l) + c^(l))``: ``Linear.weight = W^(l).T``,
    ``Linear.bias = c^(l)``, so ``net[:-1](v) == dbn.up(v)[-1]``. The output layer
    (n_L -> n_out logits) is initialised as in :func:`mlp` (same generator, same weights
    as the randomly initialised MLP of the same architecture). Returned on the DBN's
    device.
    """
    W0 = dbn.rbms[0].W
    net = mlp(dbn.layer_sizes, n_out, generator=generator, dtype=W0.dtype).to(W0.device)
    with torch.no_grad():
        for lin, rbm in zip(net[0:-1:2], dbn.rbms):
            lin.weight.copy_(rbm.W.T)
            lin.bias.copy_(rbm.c)
    return net


def unroll_autoencoder(
    dbn: DBN, *, code: str = "logistic"
) -> tuple[nn.Sequential, nn.Sequential]:
    """Unroll a DBN into a deep autoencoder (Hinton & Salakhutdinov 2006):
    ``(encoder, decoder)``.

    Encoder: the upward pass, ``Linear(W^(l).T, c^(l))`` + Sigmoid per layer
    (eq. 20.22-20.23). Decoder: the same RBMs read downwards, ``Linear(W^(l), b^(l-1))``
    + Sigmoid, from the code layer to the visible probabilities: its weights are the
    encoder's transposed and its biases the RBMs' visible biases. Before fine-tuning,
    ``decoder(encoder(v))`` is one mean-field up-down pass through the stack.

    code : {"logistic", "linear"}
        ``"logistic"`` (default): the code is sigmoid(c^(L) + h^(L-1) W^(L)) in
        (0, 1)^n_L, the exact mean-field unrolling of Bernoulli RBMs, and what semantic
        hashing thresholds. ``"linear"``: the code is the code units' *input* c^(L) +
        h^(L-1) W^(L) in R^n_L and the decoder starts with the logistic. The network
        computes the same function; only where we read the code changes, so 2-D codes
        spread over the plane instead of piling into the corners of the unit square.
        (Hinton & Salakhutdinov's code units were linear with Gaussian noise, which
        needs an RBM with Gaussian hidden units; chapter 8.)
    """
    if code not in ("logistic", "linear"):
        raise ValueError(f"code must be 'logistic' or 'linear'; got {code!r}")
    W0 = dbn.rbms[0].W
    # [maths:dbn.unroll]
    enc, dec = [], []
    with torch.no_grad():
        for rbm in dbn.rbms:
            lin = nn.Linear(
                rbm.n_visible, rbm.n_hidden, dtype=W0.dtype, device=W0.device
            )
            lin.weight.copy_(rbm.W.T)
            lin.bias.copy_(rbm.c)
            enc += [lin, nn.Sigmoid()]
        for rbm in reversed(dbn.rbms):
            lin = nn.Linear(
                rbm.n_hidden, rbm.n_visible, dtype=W0.dtype, device=W0.device
            )
            lin.weight.copy_(rbm.W)
            lin.bias.copy_(rbm.b)
            dec += [lin, nn.Sigmoid()]
    if code == "linear":
        enc = enc[:-1]  # drop the code logistic ...
        dec = [nn.Sigmoid()] + dec  # ... and apply it in the decoder
    return nn.Sequential(*enc), nn.Sequential(*dec)
    # [/maths:dbn.unroll]


# ------------------------------------------------------------------------------------
# fine-tuning
def _error_rate(net: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) != y).double().mean())


def finetune_classifier(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 100,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    x_test: Tensor | None = None,
    y_test: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> History:
    """Train ``net`` (logits) by back-propagation on the cross-entropy of labels ``y``
    (§15.1's fine-tuning).

    Records, before training and after every epoch, ``train_error`` and ``test_error``
    (fractions misclassified) and ``train_loss`` (nats per example):
    ``hist["test_error"][e]`` is the error after ``e`` epochs.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have as many rows; got {len(x)} and {len(y)}")
    opt = (
        torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        if optimizer == "sgd"
        else torch.optim.Adam(net.parameters(), lr=lr)
    )
    hist = History()

    def record():
        with torch.no_grad():
            row = {
                "train_loss": float(F.cross_entropy(net(x), y)),
                "train_error": _error_rate(net, x, y),
            }
        if x_test is not None:
            row["test_error"] = _error_rate(net, x_test, y_test)
        hist.record(row)

    # [maths:dbn.finetune_classifier]
    record()
    for _ in range(epochs):
        for xb, yb in minibatches((x, y), batch_size, generator=generator):
            opt.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            opt.step()
        record()
    # [/maths:dbn.finetune_classifier]
    return hist


def finetune_autoencoder(
    encoder: nn.Sequential,
    decoder: nn.Sequential,
    x: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 100,
    code_noise: float = 0.0,
    x_test: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> History:
    """Fine-tune an unrolled autoencoder by back-propagation of the cross-entropy
    (Hinton & Salakhutdinov 2006).

    Minimises ``-sum_i [x_i log r_i + (1 - x_i) log(1 - r_i)]`` of the reconstruction
    ``r = decoder(encoder(x))`` with Adam. ``code_noise`` = sigma > 0 adds N(0, sigma^2)
    noise to the input of a logistic code layer during training, which pushes the code
    units to saturate, so that thresholding them loses little (semantic hashing;
    Salakhutdinov & Hinton 2009). Records per epoch (and before training) ``train_bce``
    (nats per example) and, with ``x_test``, ``test_sq_error`` (squared error summed
    over pixels, mean over examples).
    """
    if code_noise and not isinstance(encoder[-1], nn.Sigmoid):
        raise ValueError(
            "code_noise needs a logistic code layer: unroll_autoencoder(dbn, "
            "code='logistic')"
        )
    if not isinstance(decoder[-1], nn.Sigmoid):
        raise ValueError(
            "the decoder must end with a Sigmoid (probabilities), as "
            "unroll_autoencoder builds it"
        )
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    hist = History()
    where = generator.device if generator is not None else x.device

    def record():
        with torch.no_grad():
            row = {
                "train_bce": float(
                    F.binary_cross_entropy(decoder(encoder(x)), x, reduction="sum")
                    / len(x)
                )
            }
            if x_test is not None:
                row["test_sq_error"] = float(
                    ((decoder(encoder(x_test)) - x_test) ** 2).sum(1).mean()
                )
        hist.record(row)

    # [maths:dbn.finetune_autoencoder]
    record()
    for _ in range(epochs):
        for xb in minibatches(x, batch_size, generator=generator):
            if code_noise:
                pre = encoder[:-1](xb)
                noise = torch.randn(
                    pre.shape, generator=generator, device=where, dtype=pre.dtype
                ).to(pre.device)
                z = torch.sigmoid(pre + code_noise * noise)
            else:
                z = encoder(xb)
            logits = decoder[:-1](z)  # stable BCE on logits
            loss = F.binary_cross_entropy_with_logits(
                logits, xb, reduction="sum"
            ) / len(xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        record()
    # [/maths:dbn.finetune_autoencoder]
    return hist


# ------------------------------------------------------------------------------------
# semantic hashing
def hamming_distance(a: Tensor, b: Tensor) -> Tensor:
    """Number of differing bits between every row of ``a`` (A, n) and of ``b`` (B, n);
    -> (A, B).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"hamming_distance needs codes (A, n) and (B, n); got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    a, b = a.double(), b.double()
    return (a @ (1 - b).T + (1 - a) @ b.T).round().long()


def hamming_neighbours(
    query: Tensor, database: Tensor, k: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The ``k`` database codes nearest to each query code in Hamming distance
    (Salakhutdinov & Hinton 2009).

    Ties (common: distances are integers) are broken at random with ``generator``.
    Returns ``(distances (Q, k), indices (Q, k))``, nearest first.
    """
    if not 1 <= k <= len(database):
        raise ValueError(
            f"k must be in 1..{len(database)} (the database size); got {k}"
        )
    d = hamming_distance(query, database)  # (Q, N)
    where = generator.device if generator is not None else d.device
    jitter = torch.rand(
        d.shape, generator=generator, device=where, dtype=torch.float64
    ).to(d.device)
    _, idx = torch.topk(-(d.double() + 0.5 * jitter), k, dim=1)
    return torch.gather(d, 1, idx), idx
