"""Exact computations by enumerating binary states.

Notation: ``d`` binary units, ``2**d`` states ``x`` in {0,1}^d. An energy-based model
p(x) = exp(-E(x)) / Z has log Z = logsumexp_x(-E(x)) (Deep Learning eq. 16.7-16.8); for
d up to about 25 we can sum over every state in chunks and get the exact answer against
which samplers and estimators are tested.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

__all__ = [
    "all_states",
    "iter_states",
    "log_sum_exp_states",
    "log_partition_function",
    "exact_distribution",
    "log_partition",
    "dbm_log_partition",
    "grbm_log_partition",
    "states_from_codes",
]

MAX_UNITS = (
    30  # 2**30 states: about a billion; beyond that enumeration is hopeless here
)


def _check_units(d: int) -> None:
    if isinstance(d, bool) or not isinstance(d, int) or d < 0:
        raise ValueError(
            f"number of binary units must be a non-negative int; got {d!r}"
        )
    if d > MAX_UNITS:
        raise ValueError(
            f"enumerating 2**{d} states is infeasible (limit {MAX_UNITS} units). "
            "Enumerate the smaller layer of a bipartite model, or use an estimator "
            "such as AIS."
        )


def states_from_codes(
    codes: Tensor, d: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Binary states of ``d`` units from integer codes (n,) -> (n, d); bit j of the code
    is unit j.
    """
    bits = torch.arange(d, device=codes.device)  # (d,)
    return ((codes[:, None] >> bits[None, :]) & 1).to(dtype)  # (n, d)


def _states(start: int, stop: int, d: int, dtype: torch.dtype, device) -> Tensor:
    """States with integer codes start..stop-1 (unit 0 is the lowest bit)."""
    return states_from_codes(torch.arange(start, stop, device=device), d, dtype)


def all_states(d: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Every binary state of ``d`` units, shape (2**d, d); row ``i`` is the binary code
    of ``i``.
    """
    _check_units(d)
    if d > 24:
        raise ValueError(
            f"all_states({d}) would hold {2**d} rows; use iter_states({d}, "
            "chunk_size=...) instead"
        )
    return _states(0, 2**d, d, dtype, device)


def iter_states(
    d: int,
    *,
    chunk_size: int = 2**16,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Iterator[Tensor]:
    """Yield all 2**d states in chunks of at most ``chunk_size`` rows, in the order of
    :func:`all_states`.
    """
    _check_units(d)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    n = 2**d
    for start in range(0, n, chunk_size):
        yield _states(start, min(start + chunk_size, n), d, dtype, device)


def log_sum_exp_states(
    log_f: Callable[[Tensor], Tensor],
    d: int,
    *,
    chunk_size: int = 2**16,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> Tensor:
    """log sum_x exp(log_f(x)) over all x in {0,1}^d, computed chunk by chunk.

    ``log_f`` maps states (n, d) to log-weights (n,), or to (n, ...) for a batch of sums
    at once (e.g. (n, B): one per data point; the result is then (...)). The running
    total is combined with ``logaddexp`` so no chunk's sum ever leaves log space.
    """
    total = None
    for x in iter_states(d, chunk_size=chunk_size, dtype=dtype, device=device):
        log_w = log_f(x)
        if log_w.dim() == 0 or log_w.shape[0] != x.shape[0]:
            raise ValueError(
                f"log_f must map states ({x.shape[0]}, {d}) to ({x.shape[0]}, ...); "
                f"got {tuple(log_w.shape)}"
            )
        chunk = torch.logsumexp(log_w, dim=0)
        total = chunk if total is None else torch.logaddexp(total, chunk)
    return total


def log_partition_function(
    energy: Callable[[Tensor], Tensor],
    d: int,
    *,
    chunk_size: int = 2**16,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> Tensor:
    """Exact log Z = log sum_x exp(-E(x)) of an energy of d binary units (eq. 16.7)."""
    return log_sum_exp_states(
        lambda x: -energy(x), d, chunk_size=chunk_size, dtype=dtype, device=device
    )


def exact_distribution(
    energy: Callable[[Tensor], Tensor],
    d: int,
    *,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> tuple[Tensor, Tensor]:
    """All states (2**d, d) and their exact probabilities (2**d,) under p(x) =
    exp(-E(x)) / Z.
    """
    x = all_states(d, dtype=dtype, device=device)
    log_p = -energy(x)
    return x, torch.softmax(log_p, dim=0)


def log_partition(
    model, *, chunk_size: int = 2**14, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Exact log Z of a :class:`~dgmlib.energy.BernoulliRBM` (its smaller layer
    enumerated) or of a small :class:`~dgmlib.energy.DBM` (:func:`dbm_log_partition`).

    With H <= D hidden units, Z = sum_h exp(c.h) prod_i (1 + exp(b_i + W[i].h)), so
    log Z = logsumexp_h [c.h + sum_i softplus(b_i + W[i].h)] over 2**H states (and the
    mirror image when D < H). Computed in ``dtype`` (float64 by default) in chunks;
    differentiable in ``W, b, c`` when they require grad.
    """
    from .energy.dbm import DBM

    if isinstance(model, DBM):
        return dbm_log_partition(model, chunk_size=chunk_size, dtype=dtype)
    from .energy.grbm import GaussianBernoulliRBM

    if isinstance(model, GaussianBernoulliRBM):
        return grbm_log_partition(model, chunk_size=chunk_size, dtype=dtype)
    rbm = model
    n_enum = min(rbm.W.shape)  # the smaller layer is enumerated
    if n_enum > 26:
        raise ValueError(
            f"exact log Z needs 2**{n_enum} terms (smaller layer has {n_enum} units); "
            "use dgmlib.mcmc.ais for RBMs whose layers both exceed about 25 units"
        )
    # [maths:exact.log_partition]
    W = rbm.W.to(dtype)
    b, c = rbm.b.to(dtype), rbm.c.to(dtype)
    if W.shape[1] > W.shape[0]:  # enumerate the visible layer instead
        W, b, c = W.T, c, b

    def log_f(h: Tensor) -> Tensor:  # (n, H) -> (n,)
        return h @ c + torch.nn.functional.softplus(h @ W.T + b).sum(-1)

    return log_sum_exp_states(
        log_f, n_enum, chunk_size=chunk_size, dtype=dtype, device=W.device
    )
    # [/maths:exact.log_partition]


def dbm_log_partition(
    dbm, *, chunk_size: int = 2**14, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Exact log Z of a small DBM: the smaller of its two sides, the even layers
    (v, h2, ...) or the odd ones (h1, h3, ...), enumerated, the other summed out
    (``dbm.log_p_star``, the DBM's free energy), as for the RBM above.
    """
    sizes = dbm.sizes
    n_side = {side: sum(sizes[side::2]) for side in (0, 1)}
    enum = 0 if n_side[0] <= n_side[1] else 1
    if n_side[enum] > 26:
        raise ValueError(
            f"exact log Z of DBM{sizes} needs 2**{n_side[enum]} terms (its smaller "
            f"side, layers {list(range(enum, len(sizes), 2))}, has {n_side[enum]} "
            "units); use dgmlib.mcmc.ais for larger DBMs"
        )
    layers = list(range(enum, len(sizes), 2))
    model = dbm
    if dbm.W[0].dtype != dtype:  # a converted copy (Module.to works in place)
        model = copy.deepcopy(dbm).to(dtype)
    sum_out = "odd" if enum == 0 else "even"

    def log_f(s: Tensor) -> Tensor:  # (n, n_side) -> (n,)
        x = [None] * len(sizes)
        for l, part in zip(layers, s.split([sizes[l] for l in layers], dim=1)):
            x[l] = part
        return model.log_p_star(x, sum_out=sum_out)

    return log_sum_exp_states(
        log_f, n_side[enum], chunk_size=chunk_size, dtype=dtype, device=dbm.W[0].device
    )


def grbm_log_partition(
    grbm, *, chunk_size: int = 2**14, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Exact log Z of a :class:`~dgmlib.energy.GaussianBernoulliRBM` with at most 20
    hidden units: the 2**H hidden states enumerated, v integrated in closed form (a
    Gaussian integral per state, ``grbm.log_f_hidden``):

    log Z = logsumexp_h [D/2 log 2pi - 1/2 sum_i log beta_i + (c - t).h
                         + sum_i beta_i (b_i (Wh)_i + 1/2 (Wh)_i^2)].
    """
    H = grbm.n_hidden
    if H > 20:
        raise ValueError(
            f"exact log Z of a GaussianBernoulliRBM sums 2**H hidden states; H = {H} "
            "> 20 is too many here. Use dgmlib.mcmc.ais(GRBMPath(grbm), ...) instead"
        )
    model = grbm if grbm.W.dtype == dtype else copy.deepcopy(grbm).to(dtype)
    return log_sum_exp_states(
        model.log_f_hidden, H, chunk_size=chunk_size, dtype=dtype, device=grbm.W.device
    )
