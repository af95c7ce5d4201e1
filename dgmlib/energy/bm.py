"""The Boltzmann machine (Deep Learning §20.1), with exact enumeration and exact
learning.

Notation (eq. 20.1-20.3)::

    x  (B, d)  all units in {0,1}: x = (v, h), d = n_visible + n_hidden
    v  (B, D)  visible units x[:, :D]       h  (B, H)  hidden units x[:, D:]
    U  (d, d)  symmetric weights, zero diagonal
    b  (d,)    biases (the textbook's b for v and c for h, stacked)

    P(x) = exp(-E(x)) / Z                                           (eq. 20.1)
    E(x) = -x^T U x - b^T x                                         (eq. 20.2)
         = -v^T R v - v^T W h - h^T S h - b^T v - c^T h             (eq. 20.3)
           with R = U[:D, :D], W = 2 U[:D, D:], S = U[D:, D:]

Because U is symmetric, the pair (i, j) appears twice in x^T U x (as U_ij x_i x_j and
U_ji x_j x_i), so flipping unit i changes the energy by b_i + 2 sum_j U_ij x_j and

    P(x_i = 1 | x_-i) = sigmoid(b_i + 2 sum_j U_ij x_j)   (logistic regression, §20.1)

(Texts that write E = -sum_{i<j} w_ij x_i x_j - b.x have w_ij = 2 U_ij.)

Exact quantities enumerate states: the joint over all d <= 20 units for log Z and the
model's moments; the 2**H hidden states of each v for free energies and the clamped
(positive-phase) moments. Learning by the exact gradient (§18.1-18.2),

    d log P(v) / d U_ij = <x_i x_j>_{P_data(v) P(h|v)} - <x_i x_j>_{P(x)}
    d log P(v) / d b_i  = <x_i>_{P_data(v) P(h|v)}     - <x_i>_{P(x)}

(positive minus negative phase) is :func:`exact_gradient`; :func:`fit_bm_exact` follows
it. Sampling is sequential (single-site) Gibbs: :mod:`dgmlib.mcmc.sequential`.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..exact import all_states, iter_states
from ..train import History, fit

__all__ = [
    "BoltzmannMachine",
    "exact_gradient",
    "hebbian_update",
    "fit_bm_exact",
    "MAX_ENUMERATED_UNITS",
]

MAX_ENUMERATED_UNITS = (
    20  # 2**20 (about a million) states: enumeration in seconds on a CPU
)
_CHUNK = 2**15  # rows of states per chunk


@functools.lru_cache(maxsize=16)
def _cached_states(n: int, dtype: torch.dtype, device) -> Tensor:
    return all_states(n, dtype=dtype, device=device)  # (2**n, n), read only


class BoltzmannMachine(nn.Module):
    """A binary Boltzmann machine with ``n_visible`` visible and ``n_hidden`` hidden
    units.

    Parameters
    ----------
    n_visible : int
        Number of visible units D >= 1.
    n_hidden : int, default 0
        Number of hidden units H >= 0 (0: the fully visible Boltzmann machine of eq.
        20.2).
    generator : torch.Generator, optional
        If given, the off-diagonal weights start at ``U_ij = U_ji ~ N(0, init_std^2)``
        (hidden units need this to break their symmetry); otherwise ``U`` starts at
        zero. Biases start at zero.
    init_std : float, default 0.01
    dtype : torch.dtype, optional
        Default: ``torch.get_default_dtype()``.

    Buffers ``U (d, d)`` and ``b (d,)`` can be read, assigned, or given
    ``requires_grad_()`` for autograd; keep ``U`` symmetric with a zero diagonal
    (:meth:`set_weights` checks it).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int = 0,
        *,
        generator: torch.Generator | None = None,
        init_std: float = 0.01,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        for name, n, low in (("n_visible", n_visible, 1), ("n_hidden", n_hidden, 0)):
            if isinstance(n, bool) or not isinstance(n, int) or n < low:
                raise ValueError(
                    f"BoltzmannMachine needs an int {name} >= {low}; got {n!r}"
                )
        if init_std < 0:
            raise ValueError(
                f"init_std is a standard deviation and must be >= 0; got {init_std}"
            )
        dtype = dtype or torch.get_default_dtype()
        d = n_visible + n_hidden
        U = torch.zeros(d, d, dtype=dtype)
        if generator is not None:
            A = init_std * torch.randn(
                d, d, generator=generator, dtype=dtype, device=generator.device
            ).to("cpu")
            U = torch.triu(A, diagonal=1)
            U = U + U.T  # symmetric, zero diagonal
        self._n_visible = n_visible
        self.register_buffer("U", U)  # (d, d)
        self.register_buffer("b", torch.zeros(d, dtype=dtype))  # (d,)

    # --- sizes and blocks (eq. 20.3) --------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self._n_visible

    @property
    def n_hidden(self) -> int:
        return self.U.shape[0] - self._n_visible

    @property
    def n_units(self) -> int:
        """d = n_visible + n_hidden."""
        return self.U.shape[0]

    @property
    def R(self) -> Tensor:
        """Visible-visible weights of eq. 20.3: U[:D, :D], (D, D)."""
        return self.U[: self.n_visible, : self.n_visible]

    @property
    def W(self) -> Tensor:
        """Visible-hidden weights of eq. 20.3: U[:D, D:] + U[D:, :D]^T = 2 U[:D, D:],
        (D, H).

        Each visible-hidden pair appears twice in x^T U x; both entries are used so that
        autograd through eq. 20.3 agrees with autograd through eq. 20.2.
        """
        D = self.n_visible
        return self.U[:D, D:] + self.U[D:, :D].T

    @property
    def S(self) -> Tensor:
        """Hidden-hidden weights of eq. 20.3: U[D:, D:], (H, H)."""
        return self.U[self.n_visible :, self.n_visible :]

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    @torch.no_grad()
    def set_weights(self, U: Tensor, b: Tensor | None = None) -> None:
        """Assign ``U (d, d)`` (must be symmetric with a zero diagonal) and optionally
        ``b (d,)``.
        """
        d = self.n_units
        U = torch.as_tensor(U, dtype=self.U.dtype, device=self.U.device)
        if U.shape != (d, d):
            raise ValueError(f"U must have shape ({d}, {d}); got {tuple(U.shape)}")
        if not torch.allclose(U, U.T):
            raise ValueError(
                "U must be symmetric (U = U^T): each pair i, j has one weight. Use (A "
                "+ A.T) / 2."
            )
        if bool(U.diagonal().ne(0).any()):
            raise ValueError(
                "U must have a zero diagonal (x_i^2 = x_i would duplicate the bias "
                "b_i). Move it into b and zero it: U.fill_diagonal_(0)."
            )
        self.U = U.clone()
        if b is not None:
            b = torch.as_tensor(b, dtype=self.b.dtype, device=self.b.device)
            if b.shape != (d,):
                raise ValueError(f"b must have shape ({d},); got {tuple(b.shape)}")
            self.b = b.clone()

    # --- input checks -----------------------------------------------------------------
    def _check(self, x: Tensor, width: int, name: str) -> Tensor:
        check_shape(x, 2, width, name=name, model="BoltzmannMachine")
        check_binary(x, name=name, model="BoltzmannMachine")
        if x.device != self.U.device:
            raise ValueError(
                f"BoltzmannMachine lives on {self.U.device} but {name} is on "
                f"{x.device}; move one: {name}.to(bm.U.device)"
            )
        return x.to(self.U.dtype)

    def _check_x(self, x: Tensor) -> Tensor:
        return self._check(x, self.n_units, "x")

    def _check_v(self, v: Tensor) -> Tensor:
        return self._check(v, self.n_visible, "v")

    def _check_enumerable(self, n: int, what: str) -> None:
        if n > MAX_ENUMERATED_UNITS:
            raise ValueError(
                f"{what} enumerates 2**{n} states; exact enumeration is limited to "
                f"{MAX_ENUMERATED_UNITS} units here. Use a sampler "
                "(dgmlib.mcmc.sequential) or an estimator for larger Boltzmann "
                "machines."
            )

    @staticmethod
    def _check_temperature(temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")

    # --- energies and conditionals ----------------------------------------------------
    def _energy(self, x: Tensor) -> Tensor:  # no checks (internal)
        return -((x @ self.U) * x).sum(-1) - x @ self.b

    def energy(self, x: Tensor) -> Tensor:
        """E(x) = -x^T U x - b^T x (eq. 20.2); (B, d) -> (B,)."""
        return self._energy(self._check_x(x))

    def unit_logits(self, x: Tensor) -> Tensor:
        """b_i + 2 sum_j U_ij x_j for every unit i: E(x_i=0) - E(x_i=1) given the rest;
        (B, d) -> (B, d).

        The zero diagonal of U makes unit i's own value drop out.
        """
        return 2 * (x @ self.U) + self.b

    def p_unit_given_rest(self, x: Tensor) -> Tensor:
        """P(x_i = 1 | x_-i) = sigmoid(b_i + 2 sum_j U_ij x_j) for every unit i; (B, d)
        -> (B, d).

        Each unit's conditional is a logistic regression on the other units (§20.1).
        """
        return torch.sigmoid(self.unit_logits(self._check_x(x)))

    def conditional(self, x: Tensor, i: int) -> Tensor:
        """P(x_i = 1 | x_-i) for one unit ``i``; (B, d) -> (B,)."""
        if not -self.n_units <= i < self.n_units:
            raise ValueError(f"unit index i must lie in [0, {self.n_units}); got {i}")
        x = self._check_x(x)
        return torch.sigmoid(2 * (x @ self.U[:, i]) + self.b[i])

    def free_energy(self, v: Tensor, *, temperature: float = 1.0) -> Tensor:
        """F(v) = -T log sum_h exp(-E(v, h) / T), by enumerating the 2**H hidden states;
        (B, D) -> (B,).

        P_T(v) = exp(-F(v) / T) / Z_T. With no hidden units F(v) = E(v).
        """
        self._check_temperature(temperature)
        v = self._check_v(v)
        return -temperature * self._log_sum_hidden_chunked(v, temperature)

    def _log_sum_hidden_chunked(self, v: Tensor, temperature: float = 1.0) -> Tensor:
        rows = max(1, _CHUNK >> self.n_hidden)
        if len(v) <= rows:
            return self._log_sum_hidden(v, temperature)[0]
        return torch.cat(
            [self._log_sum_hidden(c, temperature)[0] for c in v.split(rows)]
        )

    def log_unnormalized(self, v: Tensor) -> Tensor:
        """log P*(v) = -F(v) = log sum_h exp(-E(v, h)); add -log Z for log P(v); (B, D)
        -> (B,).
        """
        return -self.free_energy(v)

    def _log_sum_hidden(
        self, v: Tensor, temperature: float = 1.0, moments: bool = False
    ):
        """log sum_h exp(-E(v,h)/T) for each row of v (B,), and optionally the clamped
        moments.

        With ``moments``, also returns E_{h ~ P(h|v)}[x] (B, d) and E_{h ~ P(h|v)}[x
        x^T] (B, d, d) for x = (v, h): the positive-phase statistics of each example.
        Callers keep B * 2**H moderate by passing v in chunks.
        """
        D, H = self.n_visible, self.n_hidden
        if H == 0:
            log_s = -self._energy(v) / temperature
            if not moments:
                return log_s, None, None
            return log_s, v, v[:, :, None] * v[:, None, :]
        self._check_enumerable(H, "marginalising the hidden units")
        hs = self._all_states(H)  # (2**H, H)
        # -E(v, h) = v.R.v + b_v.v + h.(c + W^T v) + h.S.h   (eq. 20.3); the first two
        # are shared by all h
        base = ((v @ self.R) * v).sum(-1) + v @ self.b[:D]  # (B,)
        field = v @ self.W + self.b[D:]  # (B, H)
        log_w = (
            base[:, None] + field @ hs.T + ((hs @ self.S) * hs).sum(-1)
        ) / temperature  # (B, 2**H)
        log_s = torch.logsumexp(log_w, 1)  # (B,)
        if not moments:
            return log_s, None, None
        q = torch.softmax(log_w, 1)  # (B, 2**H) P(h | v)
        Eh = q @ hs  # (B, H)
        Ehh = (hs.T[None] * q[:, None, :]) @ hs  # (B, H, H)
        B = v.shape[0]
        Exx = torch.empty(B, D + H, D + H, dtype=v.dtype, device=v.device)  # (B, d, d)
        Exx[:, :D, :D] = v[:, :, None] * v[:, None, :]
        Exx[:, :D, D:] = v[:, :, None] * Eh[:, None, :]
        Exx[:, D:, :D] = Exx[:, :D, D:].transpose(1, 2)
        Exx[:, D:, D:] = Ehh
        return log_s, torch.cat([v, Eh], 1), Exx

    def _chunks(self, n: int):
        """All 2**n binary states, in chunks of at most 2**15 rows (cached when there is
        one chunk).
        """
        if n <= 15:
            return [_cached_states(n, self.U.dtype, self.U.device)]
        return iter_states(
            n, chunk_size=_CHUNK, dtype=self.U.dtype, device=self.U.device
        )

    def _all_states(self, n: int) -> Tensor:
        return torch.cat(list(self._chunks(n))) if n > 15 else self._chunks(n)[0]

    # --- exact quantities by enumeration ----------------------------------------------
    def log_partition(self, *, temperature: float = 1.0) -> Tensor:
        """Exact log Z_T = log sum_x exp(-E(x) / T) over all 2**d states (eq. 16.7), d
        <= 20. Scalar.
        """
        return self.model_moments(temperature=temperature, moments=False)[0]

    def log_prob(self, v: Tensor) -> Tensor:
        """Exact log P(v) = -F(v) - log Z (hidden units summed out); (B, D) -> (B,)."""
        return self.log_unnormalized(v) - self.log_partition()

    def model_moments(self, *, temperature: float = 1.0, moments: bool = True):
        """Exact (log Z, E[x] (d,), E[x x^T] (d, d)) under P_T(x) = exp(-E(x)/T) / Z_T,
        by enumeration.

        These are the negative-phase statistics of §18.1: E[x] holds the unit marginals
        P(x_i = 1), the diagonal of E[x x^T] repeats them. One pass over the states in
        chunks; each chunk's sums are taken relative to its largest log-weight and
        rescaled to a common reference, so nothing leaves the floating-point range.
        """
        self._check_temperature(temperature)
        self._check_enumerable(self.n_units, "exact enumeration of the joint")
        ref = None
        for x in self._chunks(self.n_units):
            log_w = -self._energy(x) / temperature  # (n,)
            top = log_w.max()
            w = torch.exp(log_w - top)  # (n,) in (0, 1]
            sums = [w.sum()] + ([w @ x, (x * w[:, None]).T @ x] if moments else [])
            if ref is None:
                ref, acc = top, sums
            else:
                new = torch.maximum(ref, top)
                a, c = torch.exp(ref - new), torch.exp(top - new)
                ref, acc = (
                    new,
                    [a * s_old + c * s_new for s_old, s_new in zip(acc, sums)],
                )
        z = acc[0]
        if not moments:
            return ref + torch.log(z), None, None
        return ref + torch.log(z), acc[1] / z, acc[2] / z

    def marginals(self, *, temperature: float = 1.0) -> Tensor:
        """Exact P(x_i = 1) for every unit, visible then hidden; (d,)."""
        return self.model_moments(temperature=temperature)[1]

    def state_distribution(self, *, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
        """All joint states (2**d, d) and their exact probabilities P_T(x) (2**d,).

        States are in the order of :func:`dgmlib.exact.all_states` (bit j of the row
        index is unit j).
        """
        self._check_temperature(temperature)
        self._check_enumerable(self.n_units, "state_distribution")
        x = self._all_states(self.n_units)
        return x, torch.softmax(-self._energy(x) / temperature, 0)

    def visible_distribution(
        self, *, temperature: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """All visible states (2**D, D) and their exact marginal probabilities P_T(v)
        (2**D,).
        """
        self._check_temperature(temperature)
        self._check_enumerable(self.n_units, "visible_distribution")
        v = self._all_states(self.n_visible)
        return v, torch.softmax(self._log_sum_hidden_chunked(v, temperature), 0)


# --- learning -------------------------------------------------------------------------
def _distinct(v: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct rows of v (n, D) and their frequencies (n,): repeated examples are
    summed once.
    """
    uniq, counts = torch.unique(v, dim=0, return_counts=True)
    return uniq, counts.to(v.dtype) / len(v)


def _data_moments(
    bm: BoltzmannMachine, uniq: Tensor, w: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Data means of log P*(v) (scalar), E[x] (d,), E[x x^T] (d, d), with h ~ P(h | v)
    exact.
    """
    rows = max(1, _CHUNK >> bm.n_hidden)
    log_s, m1, m2 = 0.0, 0.0, 0.0
    for v, wv in zip(uniq.split(rows), w.split(rows)):
        ls, Ex, Exx = bm._log_sum_hidden(v, moments=True)  # (B,), (B, d), (B, d, d)
        log_s = log_s + wv @ ls
        m1 = m1 + wv @ Ex
        m2 = m2 + (wv[:, None, None] * Exx).sum(0)
    return log_s, m1, m2


def _exact_gradient(bm: BoltzmannMachine, uniq: Tensor, w: Tensor):
    # [maths:bm.exact_gradient]
    log_s, m1_pos, m2_pos = _data_moments(bm, uniq, w)  # positive phase
    log_z, m1_neg, m2_neg = bm.model_moments()  # negative phase
    dU, db = _update(m1_pos, m2_pos, m1_neg, m2_neg)
    return dU, db, log_s - log_z  # mean log P(v) = mean log P*(v) - log Z
    # [/maths:bm.exact_gradient]


def _update(
    m1_pos: Tensor, m2_pos: Tensor, m1_neg: Tensor, m2_neg: Tensor
) -> tuple[Tensor, Tensor]:
    # [maths:bm.update]
    dU = m2_pos - m2_neg  # <x_i x_j>_pos - <x_i x_j>_neg
    dU = (dU + dU.T) / 2  # exactly symmetric (the sums are, up to rounding)
    dU.fill_diagonal_(0)  # U has no diagonal: x_i^2 = x_i is the bias's job
    return dU, m1_pos - m1_neg  # db_i = <x_i>_pos - <x_i>_neg
    # [/maths:bm.update]


@torch.no_grad()
def exact_gradient(
    bm: BoltzmannMachine, v_data: Tensor, *, return_log_likelihood: bool = False
):
    """The exact gradient of the mean log-likelihood (1/m) sum log P(v) w.r.t. U and b
    (§18.1-18.2).

    Positive phase (data clamped, hidden units from the exact posterior P(h | v)) minus
    negative phase (the model's exact expectations)::

        dU_ij = <x_i x_j>_{P_data(v) P(h|v)} - <x_i x_j>_{P(x)}   (i != j; dU_ii = 0)
        db_i  = <x_i>_{P_data(v) P(h|v)}     - <x_i>_{P(x)}

    ``dU`` is the derivative w.r.t. each entry of the symmetric matrix U (what autograd
    gives for E(x) = -x^T U x - b^T x); it is symmetric, so ``U += lr * dU`` keeps U
    symmetric.

    Parameters
    ----------
    bm : BoltzmannMachine with d <= 20 units.
    v_data : Tensor (m, D) of binary visible vectors.
    return_log_likelihood : bool
        Also return the exact mean log P(v) (nats) at the current parameters.

    Returns
    -------
    dU : (d, d), db : (d,)[, log_likelihood : scalar tensor]
    """
    v = bm._check_v(v_data)
    if len(v) == 0:
        raise ValueError("exact_gradient needs at least one data vector")
    dU, db, log_likelihood = _exact_gradient(bm, *_distinct(v))
    return (dU, db, log_likelihood) if return_log_likelihood else (dU, db)


@torch.no_grad()
def hebbian_update(x_pos: Tensor, x_neg: Tensor) -> tuple[Tensor, Tensor]:
    """The sampled BM learning rule from full states of the two phases (end of §20.1).

    ``x_pos`` (N, d): data with hidden units sampled from P(h | v) (positive phase);
    ``x_neg`` (M, d): samples of the model (negative phase)::

        dU_ij = mean_pos[x_i x_j] - mean_neg[x_i x_j]   (Hebbian minus anti-Hebbian;
        dU_ii = 0) db_i  = mean_pos[x_i]     - mean_neg[x_i]

    Entry (i, j) uses columns i and j only: the rule is local.
    """
    for name, x in (("x_pos", x_pos), ("x_neg", x_neg)):
        check_shape(x, 2, None, name=name, model="hebbian_update")
        check_binary(x, name=name, model="hebbian_update")
        if len(x) == 0:
            raise ValueError(f"hebbian_update needs at least one row in {name}")
    if x_pos.shape[1] != x_neg.shape[1]:
        raise ValueError(
            "x_pos and x_neg must have the same number of units; got "
            f"{x_pos.shape[1]} and {x_neg.shape[1]}"
        )
    dtype = x_pos.dtype if x_pos.is_floating_point() else torch.get_default_dtype()
    # [maths:bm.hebbian_update]
    xp, xn = x_pos.to(dtype), x_neg.to(dtype)  # (N, d), (M, d)
    return _update(xp.mean(0), xp.T @ xp / len(xp), xn.mean(0), xn.T @ xn / len(xn))
    # [/maths:bm.hebbian_update]


def fit_bm_exact(
    bm: BoltzmannMachine,
    data: Tensor,
    *,
    lr: float,
    n_steps: int,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    quiet: bool | None = None,
) -> History:
    """Maximum likelihood by full-batch gradient ascent on the exact gradient
    (small BMs, d <= 20).

    Each step computes :func:`exact_gradient` on all of ``data`` (m, D) and moves
    ``U += lr * dU`` and ``b += lr * db`` (with optional momentum and L2 weight decay on
    U). Returns a :class:`~dgmlib.train.History` whose ``"log_likelihood"`` is the exact
    mean log P(v) in nats *before* each step's update (``len == n_steps``).
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0; got {n_steps!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1); got {momentum}")
    v = bm._check_v(data)
    if len(v) == 0:
        raise ValueError("fit_bm_exact needs at least one data vector")
    bm._check_enumerable(bm.n_units, "fit_bm_exact")
    uniq, w = _distinct(v)
    vel = [torch.zeros_like(bm.U), torch.zeros_like(bm.b)]

    # [maths:bm.fit_exact_step]
    @torch.no_grad()
    def step():
        dU, db, ll = _exact_gradient(bm, uniq, w)
        if weight_decay:
            dU = dU - weight_decay * bm.U
        for p, grad, vl in zip((bm.U, bm.b), (dU, db), vel):
            vl.mul_(momentum).add_(grad, alpha=lr)  # vel <- momentum vel + lr grad
            p.add_(vl)  # theta <- theta + vel: ascent on the mean log-likelihood
        return {"log_likelihood": float(ll)}

    # [/maths:bm.fit_exact_step]

    return fit(step, n_steps=n_steps, desc="BM exact ML", quiet=quiet)
