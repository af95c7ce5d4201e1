"""Tools for checking AIS against the truth on RBMs small enough to enumerate
(§18.7, §20.14).

Notation (as in :mod:`dgmlib.mcmc.ais` and :mod:`dgmlib.energy.rbm`)::

    v (B, D), h (B, H)      visible / hidden states;  W (D, H), b (D,), c (H,)
    -F(v) = b.v + sum_j softplus(c_j + v.W[:, j])    log P*(v), h summed out
    -F(h) = c.h + sum_i softplus(b_i + W[i, :].h)    log P*(h), v summed out
    log_w (N,)              log importance weights of N chains

When the smaller layer has at most about 24 units, its exact marginal can be tabulated
(:func:`smaller_layer_marginal`): that gives log Z exactly and, by ancestral sampling (h
~ P(h) from the table, then v ~ P(v | h), eq. 20.16), *exact* independent samples of the
RBM (:func:`exact_samples`) -- the starting states that make reverse AIS a stochastic
upper bound on log Z. :func:`ais_sweep` runs AIS over several schedules and
:func:`effective_sample_size` measures how unequal the importance weights are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..exact import iter_states, states_from_codes
from .ais import AISResult, ais

__all__ = [
    "SmallerLayerMarginal",
    "smaller_layer_marginal",
    "exact_samples",
    "effective_sample_size",
    "ais_sweep",
]

MAX_TABLE_UNITS = 24  # 2**24 float64 log-probabilities = 128 MiB


@dataclass
class SmallerLayerMarginal:
    """The exact marginal of an RBM's smaller layer, tabulated over all its 2**m states.

    Attributes
    ----------
    layer : {"hidden", "visible"}
        Which layer was enumerated (the smaller one; "hidden" on a tie).
    log_p : (2**m,) float64 tensor
        Normalised log-probabilities log P(h) (or log P(v)); entry ``k`` belongs to the
        state whose unit ``j`` is bit ``j`` of ``k``, the order of
        :func:`dgmlib.exact.all_states`.
    log_z : float
        The exact log partition function, log sum over the table of P*.
    """

    layer: str
    log_p: Tensor
    log_z: float

    @property
    def n_units(self) -> int:
        return int(round(math.log2(len(self.log_p))))


def _params64(rbm) -> tuple[Tensor, Tensor, Tensor]:
    return rbm.W.detach().double(), rbm.b.detach().double(), rbm.c.detach().double()


@torch.no_grad()
def smaller_layer_marginal(rbm, *, chunk_size: int = 2**14) -> SmallerLayerMarginal:
    """Tabulate log P(h) (or log P(v) when D < H) of a BernoulliRBM over every state, in
    float64.

    log P*(h) = -F(h) = c.h + sum_i softplus(b_i + W[i].h) (the visible units summed
    out, as in :func:`dgmlib.exact.log_partition`); log Z = logsumexp_h log P*(h). Costs
    one pass over the 2**m states, as much as computing log Z.

    Raises
    ------
    ValueError
        If the smaller layer has more than 24 units (the table would not fit in memory).
    """
    W, b, c = _params64(rbm)
    layer = "hidden"
    if W.shape[1] > W.shape[0]:  # enumerate the visible layer
        W, b, c, layer = W.T, c, b, "visible"
    m = W.shape[1]
    if m > MAX_TABLE_UNITS:
        raise ValueError(
            f"the smaller layer of this RBM has {m} units: a table of 2**{m} "
            f"probabilities does not fit (limit {MAX_TABLE_UNITS}). Use "
            "dgmlib.exact.log_partition for log Z alone (up to 26 units), or long "
            "Gibbs chains (dgmlib.mcmc.gibbs_chain) for approximate samples."
        )
    chunks = [
        h @ c + F.softplus(h @ W.T + b).sum(-1)  # (n,) log P*(h), eq. above
        for h in iter_states(
            m, chunk_size=chunk_size, dtype=torch.float64, device=W.device
        )
    ]
    log_p_star = torch.cat(chunks)  # (2**m,)
    log_z = torch.logsumexp(log_p_star, 0)
    return SmallerLayerMarginal(layer, log_p_star - log_z, float(log_z))


@torch.no_grad()
def exact_samples(
    rbm,
    n: int,
    *,
    generator: torch.Generator | None = None,
    marginal: SmallerLayerMarginal | None = None,
) -> Tensor:
    """``n`` independent exact samples v ~ P(v) of a BernoulliRBM; returns (n, D) in the
    RBM's dtype.

    Ancestral sampling through the enumerated smaller layer: draw h from its exact
    marginal P(h) by inverting its cumulative distribution, then v ~ P(v | h)
    (eq. 20.16). When the visible layer is the smaller one, v is drawn from P(v)
    directly. Pass ``marginal`` (from :func:`smaller_layer_marginal`) to reuse one table
    for many calls.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(
            f"exact_samples needs a positive int number of samples n; got {n!r}"
        )
    if marginal is None:
        marginal = smaller_layer_marginal(rbm)
    W = rbm.W.detach()
    expected = "hidden" if W.shape[1] <= W.shape[0] else "visible"
    m = W.shape[1] if expected == "hidden" else W.shape[0]
    if marginal.layer != expected or len(marginal.log_p) != 2**m:
        raise ValueError(
            f"marginal tabulates the {marginal.layer} layer ({marginal.n_units} "
            f"units) but this RBM's smaller layer is the {expected} one ({m} units): "
            "compute it with smaller_layer_marginal(rbm)"
        )
    # [maths:ais_analysis.exact_samples]
    where = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, generator=generator, device=where, dtype=torch.float64).to(
        W.device
    )  # (n,)
    cdf = torch.cumsum(marginal.log_p.to(W.device).exp(), 0)  # (2**m,)
    codes = torch.searchsorted(cdf, u * cdf[-1], right=True).clamp_(
        max=len(cdf) - 1
    )  # (n,)
    s = states_from_codes(codes, m, W.dtype)  # (n, m)
    if expected == "visible":
        return s
    p_v = torch.sigmoid(s @ W.T + rbm.b.detach())  # (n, D)
    u_v = torch.rand(p_v.shape, generator=generator, device=where, dtype=p_v.dtype).to(
        W.device
    )
    return (u_v < p_v).to(W.dtype)
    # [/maths:ais_analysis.exact_samples]


def effective_sample_size(log_w: Tensor) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of importance weights given as
    log w.

    Between 1 (one weight dominates) and N (all weights equal); computed in log space.
    """
    log_w = torch.as_tensor(log_w).double().flatten()
    if log_w.numel() == 0:
        raise ValueError("effective_sample_size needs at least one log weight")
    return float(
        torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
    )


def ais_sweep(
    rbm,
    schedules: Iterable[int | Tensor],
    *,
    n_chains: int = 100,
    base: Tensor | str = "uniform",
    reverse: bool = False,
    marginal: SmallerLayerMarginal | None = None,
    generator: torch.Generator | None = None,
) -> list[AISResult]:
    """Run :func:`dgmlib.mcmc.ais` once per schedule; returns one :class:`AISResult` per
    entry.

    Parameters
    ----------
    schedules : iterable of int or (K,) tensor
        An int K means K evenly spaced values of beta from 0 to 1; a tensor is used as
        given (e.g. :func:`dgmlib.mcmc.sm_betas`).
    reverse : bool
        Reverse AIS, each run started from ``n_chains`` fresh exact samples of the RBM
        (:func:`exact_samples`), so every estimate is a stochastic upper bound on log Z.
    marginal : SmallerLayerMarginal, optional
        The table the exact samples are drawn from (computed once here if omitted).
    """
    results = []
    if reverse and marginal is None:
        marginal = smaller_layer_marginal(rbm)
    for schedule in schedules:
        kwargs = (
            {"betas": schedule}
            if isinstance(schedule, Tensor)
            else {"n_betas": int(schedule)}
        )
        init_v = (
            exact_samples(rbm, n_chains, generator=generator, marginal=marginal)
            if reverse
            else None
        )
        results.append(
            ais(
                rbm,
                n_chains=n_chains,
                base=base,
                reverse=reverse,
                init_v=init_v,
                generator=generator,
                **kwargs,
            )
        )
    return results
