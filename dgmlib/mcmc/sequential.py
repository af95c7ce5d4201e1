"""Sequential (single-site) Gibbs sampling of a Boltzmann machine (§17.4, §20.1).

One *sweep* visits the units in order i = 0, 1, ..., d-1 and resamples each from its
conditional given the current values of all the others,

    x_i ~ P_T(x_i = 1 | x_-i) = sigmoid((b_i + 2 sum_j U_ij x_j) / T),

which leaves P_T(x) = exp(-E(x)/T) / Z_T invariant (each single-site update does, and so
does their composition). In a general Boltzmann machine every unit is connected to every
other, so units cannot be updated as a block as in an RBM (§20.2): the sweep is a Python
loop over units, with the chains as the batch.

For small machines the same sweep is also computed *exactly*, as an operator on
distributions over the 2**d states: :func:`evolve_distribution` (p -> p T^n without
forming T) and :func:`gibbs_transition_matrix` (T itself, d <= 12). States are indexed
as in :func:`dgmlib.exact.all_states`: bit j of the index is unit j.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..exact import all_states

__all__ = ["sequential_gibbs", "evolve_distribution", "gibbs_transition_matrix"]

MAX_MATRIX_UNITS = 12  # a dense (4096, 4096) transition matrix


def _check_sweep_args(bm, n_sweeps: int, temperature: float) -> None:
    if isinstance(n_sweeps, bool) or not isinstance(n_sweeps, int) or n_sweeps < 0:
        raise ValueError(f"n_sweeps must be an int >= 0; got {n_sweeps!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")


@torch.no_grad()
def sequential_gibbs(
    bm,
    x: Tensor,
    n_sweeps: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    record_every: int | None = None,
):
    """Run ``n_sweeps`` sequential Gibbs sweeps of ``bm`` from ``x`` (B, d), one chain
    per row.

    Parameters
    ----------
    bm : BoltzmannMachine
    x : Tensor (B, d)
        Binary initial states of all units (visible then hidden); not modified.
    n_sweeps : int
        Number of sweeps; each updates units 0, ..., d-1 once, in order.
    temperature : float
        Sample P_T(x) proportional to exp(-E(x) / T).
    generator : torch.Generator, optional
    record_every : int, optional
        Also return the states after sweeps 0, r, 2r, ... (sweep 0 is ``x``).

    Returns
    -------
    x : Tensor (B, d), or ``(x, frames)`` when ``record_every`` is set.
    """
    _check_sweep_args(bm, n_sweeps, temperature)
    if record_every is not None and (
        isinstance(record_every, bool)
        or not isinstance(record_every, int)
        or record_every < 1
    ):
        raise ValueError(
            f"record_every must be an int >= 1 or None; got {record_every!r}"
        )
    x = bm._check_x(x).clone()
    U, b = bm.U, bm.b
    frames = [x.clone()] if record_every else None
    # [maths:sequential_gibbs.sweep]
    for t in range(1, n_sweeps + 1):
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        for i in range(bm.n_units):  # one sweep: unit i sees the freshest x_-i
            logit = 2 * (x @ U[:, i]) + b[i]  # (B,) b_i + 2 sum_j U_ij x_j
            p_i = torch.sigmoid(logit / temperature)  # (B,) P_T(x_i = 1 | x_-i)
            x[:, i] = (u[:, i] < p_i).to(x.dtype)
        if record_every and t % record_every == 0:
            frames.append(x.clone())
    # [/maths:sequential_gibbs.sweep]
    return (x, frames) if record_every else x


def _order(bm, order: Sequence[int] | None) -> list[int]:
    d = bm.n_units
    if order is None:
        return list(range(d))
    order = [int(i) for i in order]
    bad = [i for i in order if not 0 <= i < d]
    if bad:
        raise ValueError(f"order must list unit indices in [0, {d}); got {bad}")
    return order


@torch.no_grad()
def evolve_distribution(
    bm,
    p: Tensor,
    n_sweeps: int = 1,
    *,
    temperature: float = 1.0,
    order: Sequence[int] | None = None,
) -> Tensor:
    """Exact distribution over the 2**d joint states after ``n_sweeps`` sequential Gibbs
    sweeps.

    ``p`` (2**d,) or (B, 2**d): distributions (rows) over states indexed as in
    :func:`dgmlib.exact.all_states`. Returns p T^n, computed site by site in O(d 2**d)
    per sweep without forming T. ``order`` (default 0, ..., d-1) is the order of the
    site updates in a sweep; ``order=[i]`` is the single-site kernel of unit i.
    """
    _check_sweep_args(bm, n_sweeps, temperature)
    d = bm.n_units
    bm._check_enumerable(d, "evolve_distribution")
    order = _order(bm, order)
    p = torch.as_tensor(p, dtype=bm.U.dtype, device=bm.U.device)
    if p.shape[-1] != 2**d or p.ndim not in (1, 2):
        raise ValueError(
            f"p must have shape (2**{d},) = ({2**d},) or (B, {2**d}); got "
            f"{tuple(p.shape)}"
        )
    squeeze = p.ndim == 1
    p = p.reshape(-1, 2**d)
    x = all_states(d, dtype=bm.U.dtype, device=bm.U.device)  # (2**d, d)
    q = torch.sigmoid(bm.unit_logits(x) / temperature)  # (2**d, d) P(x_i=1 | x_-i)
    for _ in range(n_sweeps):
        for i in order:
            shape = (2 ** (d - 1 - i), 2, 2**i)  # middle axis: bit i
            q_i = q[:, i].reshape(shape)[:, 0, :]  # independent of x_i
            mass = p.reshape(-1, *shape).sum(-2)  # (B, 2**(d-1-i), 2**i)
            p = torch.stack([mass * (1 - q_i), mass * q_i], dim=-2).reshape(-1, 2**d)
    return p[0] if squeeze else p


@torch.no_grad()
def gibbs_transition_matrix(
    bm, *, temperature: float = 1.0, order: Sequence[int] | None = None
) -> Tensor:
    """The exact transition matrix T (2**d, 2**d) of one sequential Gibbs sweep, d <=
    12.

    ``T[s, s']`` is the probability that a sweep started in state s ends in s'
    (rows sum to 1), so a distribution (row vector) evolves as p -> p @ T, and P_T is
    invariant: P @ T = P.
    """
    if bm.n_units > MAX_MATRIX_UNITS:
        raise ValueError(
            f"a dense transition matrix over 2**{bm.n_units} states is too large "
            f"(limit {MAX_MATRIX_UNITS} units); use evolve_distribution instead"
        )
    eye = torch.eye(2**bm.n_units, dtype=bm.U.dtype, device=bm.U.device)
    return evolve_distribution(bm, eye, 1, temperature=temperature, order=order)
