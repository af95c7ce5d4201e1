"""The deep Boltzmann machine (Deep Learning §20.4; Salakhutdinov & Hinton 2009).

Notation (eq. 20.24-20.37, with biases)::

    x[0] = v  (B, n_0)   visible units in {0,1}       W[l]  (n_l, n_{l+1})  weights
    x[l]      (B, n_l)   hidden layer l = 1..L        b[l]  (n_l,)          biases
                                                      mu[l] (n_l,)          offsets

    E(x) = -sum_l (x_l - mu_l).b_l - sum_l (x_l - mu_l) W_l (x_{l+1} - mu_{l+1})
                                                       (eq. 20.25; centered, eq. 20.37)
    P(x_l = 1 | x_{l-1}, x_{l+1})
        = sigmoid(b_l + (x_{l-1} - mu_{l-1}) W_{l-1} + (x_{l+1} - mu_{l+1}) W_l^T)
                                                       (eq. 20.26-20.28)

The offsets ``mu`` are zero unless the DBM is centered (Montavon & Müller 2012): they
change the parametrisation, not the family of distributions. Layers connect only to
their neighbours, so the even layers (v, h2, ...) and the odd layers (h1, h3, ...) form
the two sides of a bipartite graph (figure 20.3): given one side, the other is
factorial. Block Gibbs therefore needs two blocks, and one side can be summed out
analytically, as in the RBM's free energy:

    log sum_{odd} exp(-E) = sum_{l even} b_l.(x_l - mu_l)
                            + sum_{l odd} sum_j [softplus(a_lj) - mu_lj a_lj]

with ``a_l`` the logits above. Mean field (eq. 20.29-20.34) iterates the same logits
with the means in place of the states.

The model computes; learning (:func:`fit_dbm`, :func:`pretrain_dbm`), sampling
(:func:`gibbs_sweep`) and estimation (:func:`dgmlib.mcmc.ais`,
:func:`dgmlib.exact.log_partition`) are functions that take it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape
from ..draws import bernoulli, reuse
from ..train import History, fit
from .recipe import (
    MomentumSGD,
    Progress,
    fit_on_budget,
    linear_decay,
    momentum_ramp,
    resolve_momentum,
    resolve_schedule,
    visible_bias_from_data,
)

__all__ = [
    "DBM",
    "DBMStep",
    "fit_dbm",
    "gibbs_sweep",
    "pretrain_dbm",
    "sample_dbm",
    "variational_sml_step",
]


class _LayerTensors(Sequence):
    """``dbm.W`` / ``dbm.b`` / ``dbm.mu``: a list view of the DBM's buffers.

    ``dbm.W[l]`` is the buffer itself (``dbm.W[0].copy_(...)`` writes into the model);
    ``dbm.W[l] = t`` replaces it after checking the shape.
    """

    def __init__(self, module: nn.Module, prefix: str, n: int):
        self._module, self._prefix, self._n = module, prefix, n

    def __len__(self) -> int:
        return self._n

    def _name(self, index: int) -> str:
        if not -self._n <= index < self._n:
            raise IndexError(
                f"{self._prefix}[{index}]: the DBM has {self._n} of them "
                f"(indices 0..{self._n - 1})"
            )
        return f"{self._prefix}{index % self._n}"

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(self._n)[index]]
        return getattr(self._module, self._name(index))

    def __setitem__(self, index: int, value: Tensor) -> None:
        name = self._name(index)
        old = getattr(self._module, name)
        if not isinstance(value, Tensor) or value.shape != old.shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value)
            raise ValueError(
                f"DBM.{self._prefix}[{index}] must be a tensor of shape "
                f"{tuple(old.shape)}; got {got}"
            )
        setattr(self._module, name, value.to(dtype=old.dtype, device=old.device))

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self)
        return f"[{shapes}]"


class DBM(nn.Module):
    """A binary deep Boltzmann machine with layer sizes ``sizes = [n_0, ..., n_L]``
    (layer 0 visible, ``L >= 1`` hidden layers; ``len(sizes) >= 2``).

    ``W[l]`` (n_l, n_{l+1}) connects layer l to l+1, ``b[l]`` (n_l,) is layer l's bias
    and ``mu[l]`` (n_l,) its offset (zero: the ordinary DBM; see :meth:`recenter`).
    They are buffers: read them, write them in place, assign new ones. Weights start
    at N(0, init_std^2) from ``generator`` (the global RNG when None, as ``torch.nn``
    layers do); ``init_std=0`` starts at zero. Biases and offsets start at zero.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(
                "DBM needs at least 2 layers (visible and one hidden), e.g. "
                f"DBM([784, 500, 1000]); got sizes={sizes}"
            )
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(
                f"DBM layer sizes must be positive ints; got sizes={sizes}"
            )
        dtype = dtype or torch.get_default_dtype()
        self._n_layers = len(sizes)
        for l in range(len(sizes) - 1):
            W = torch.randn(
                sizes[l],
                sizes[l + 1],
                generator=generator,
                dtype=dtype,
                device=generator.device if generator is not None else "cpu",
            ).to("cpu")
            self.register_buffer(f"W{l}", init_std * W)  # (n_l, n_{l+1})
        for l, n in enumerate(sizes):
            self.register_buffer(f"b{l}", torch.zeros(n, dtype=dtype))  # (n_l,)
            self.register_buffer(f"mu{l}", torch.zeros(n, dtype=dtype))  # (n_l,)

    # --- structure ------------------------------------------------------------------
    @property
    def W(self) -> _LayerTensors:
        """Weights: ``W[l]`` (n_l, n_{l+1}) between layer l and l+1."""
        return _LayerTensors(self, "W", self.n_layers - 1)

    @property
    def b(self) -> _LayerTensors:
        """Biases: ``b[l]`` (n_l,) of layer l (layer 0 = visible)."""
        return _LayerTensors(self, "b", self.n_layers)

    @property
    def mu(self) -> _LayerTensors:
        """Offsets: ``mu[l]`` (n_l,) subtracted from layer l's states (eq. 20.37)."""
        return _LayerTensors(self, "mu", self.n_layers)

    @property
    def n_layers(self) -> int:
        """Number of layers including the visible one, L + 1."""
        return self._n_layers

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.b]

    @property
    def centered(self) -> bool:
        return any(bool((m != 0).any()) for m in self.mu)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}" + (", centered" if self.centered else "")

    # --- input checks ---------------------------------------------------------------
    def _check_x(self, x: Sequence[Tensor], *, binary: bool = True) -> list[Tensor]:
        """Check a full state [x_0, ..., x_L]; returns it in the model's dtype."""
        if isinstance(x, Tensor) or len(x) != self.n_layers:
            n = 1 if isinstance(x, Tensor) else len(x)
            raise ValueError(
                f"DBM{self.sizes} expects a list of {self.n_layers} layer states "
                f"[v, h1, ...], each (B, n_l); got {n} "
                f"{'tensor' if isinstance(x, Tensor) else 'entries'}"
            )
        return [self._check_layer(t, l, binary=binary) for l, t in enumerate(x)]

    def _check_layer(self, t: Tensor, l: int, *, binary: bool = True) -> Tensor:
        name = "v" if l == 0 else f"h{l}"
        check_shape(t, 2, self.sizes[l], name=name, model=f"DBM{self.sizes}")
        if binary:
            check_binary(t, name=name, model=f"DBM{self.sizes}")
        if t.device != self.W0.device:
            raise ValueError(
                f"DBM lives on {self.W0.device} but {name} is on {t.device}; move "
                f"one: {name}.to(dbm.W[0].device)"
            )
        return t.to(self.W0.dtype)

    # --- exact quantities -----------------------------------------------------------
    def energy(self, x: Sequence[Tensor]) -> Tensor:
        """E(x) = -sum_l (x_l - mu_l).b_l - sum_l (x_l - mu_l) W_l (x_{l+1} - mu_{l+1})
        (eq. 20.25 with biases; 20.37 with offsets); [(B, n_l)] -> (B,).
        """
        return self._energy(self._check_x(x))

    def _energy(self, x: Sequence[Tensor]) -> Tensor:
        """The energy without checks; also at means in [0, 1] (eq. 20.35)."""
        s = [xl - ml for xl, ml in zip(x, self.mu)]  # centered states
        E = -sum(sl @ bl for sl, bl in zip(s, self.b))
        for l, Wl in enumerate(self.W):
            E = E - ((s[l] @ Wl) * s[l + 1]).sum(-1)
        return E

    def logits(self, x: Sequence[Tensor | None], l: int) -> Tensor:
        """a_l = b_l + (x_{l-1} - mu_{l-1}) W_{l-1} + (x_{l+1} - mu_{l+1}) W_l^T, the
        pre-sigmoid of P(x_l = 1 | neighbours) (eq. 20.26-20.28); (B, n_l).

        Only the neighbours of layer l are read (the other entries may be None);
        they may be means in [0, 1] as well as states (eq. 20.33-20.34).
        """
        a = self.b[l]
        if l > 0:
            a = a + (x[l - 1] - self.mu[l - 1]) @ self.W[l - 1]
        if l < self.n_layers - 1:
            a = a + (x[l + 1] - self.mu[l + 1]) @ self.W[l].T
        return a

    def conditional(self, x: Sequence[Tensor | None], l: int) -> Tensor:
        """P(x_l = 1 | x_{l-1}, x_{l+1}) for every unit of layer l: factorial
        (eq. 20.26-20.28); (B, n_l).
        """
        return torch.sigmoid(self.logits(x, l))

    def log_p_star(
        self,
        x: Sequence[Tensor | None],
        *,
        sum_out: str = "odd",
        beta: float | Tensor = 1.0,
    ) -> Tensor:
        """log sum_{x_side} exp(-beta E(x)): the unnormalised log marginal of one
        side of the bipartite graph, the other side (``sum_out``) summed out; (B,).

        = beta sum_{kept l} b_l.(x_l - mu_l)
          + sum_{summed l} sum_j [softplus(beta a_lj) - beta mu_lj a_lj],
        the DBM's analogue of the RBM's -F(v) (eq. 20.9). Entries of ``x`` on the
        summed side are ignored (pass None). ``beta`` tempers the whole energy.
        """
        summed = _parity(sum_out)
        kept = 1 - summed
        out = 0.0
        for l in range(kept, self.n_layers, 2):
            out = out + beta * ((x[l] - self.mu[l]) @ self.b[l])
        for l in range(summed, self.n_layers, 2):
            a = self.logits(x, l)  # (B, n_l)
            out = out + (F.softplus(beta * a) - beta * self.mu[l] * a).sum(-1)
        return out

    def free_energy(self, x: Sequence[Tensor | None], *, sum_out="odd") -> Tensor:
        """-log_p_star(x, sum_out=...) at beta = 1; (B,)."""
        return -self.log_p_star(x, sum_out=sum_out)

    # --- mean field (eq. 20.29-20.35) -----------------------------------------------
    def mean_field(
        self,
        v: Tensor,
        *,
        n_iter: int = 10,
        init: Sequence[Tensor] | None = None,
        tol: float | None = None,
    ) -> list[Tensor]:
        """The mean-field posterior Q(h | v) = prod_l prod_j Bernoulli(mu_lj)
        (eq. 20.29-20.32): ``[mu_1, ..., mu_L]``, each (B, n_l).

        Each iteration updates the odd hidden layers from their neighbours' means,
        then the even ones (eq. 20.33, then 20.34, with biases): every half-step
        maximises L(Q) over one side exactly, so the bound never decreases. ``init``
        defaults to one bottom-up pass with doubled input to every layer but the top
        (Salakhutdinov & Hinton 2009). Stops after ``n_iter`` iterations, or once no
        mean moves by more than ``tol``.
        """
        v = self._check_layer(v, 0, binary=False)
        if n_iter < 0:
            raise ValueError(f"mean_field needs n_iter >= 0; got {n_iter}")
        if init is None:
            mu = self._bottom_up(v)
        else:
            if len(init) != self.n_layers - 1:
                raise ValueError(
                    f"init must hold {self.n_layers - 1} hidden means [mu_1, ...]; "
                    f"got {len(init)}"
                )
            mu = [self._check_layer(m, l + 1, binary=False) for l, m in enumerate(init)]
        q = [v, *mu]
        for _ in range(n_iter):
            q_old = list(q)
            # [maths:dbm.mean_field]
            for side in (1, 2):  # odd layers (eq. 20.33), then even (eq. 20.34)
                for l in range(side, self.n_layers, 2):
                    q[l] = torch.sigmoid(self.logits(q, l))
            # [/maths:dbm.mean_field]
            if tol is not None:
                delta = max(
                    float((a - c).abs().max()) for a, c in zip(q[1:], q_old[1:])
                )
                if delta <= tol:
                    break
        return q[1:]

    def _bottom_up(self, v: Tensor) -> list[Tensor]:
        """One upward pass, doubled weights below the top: the S&H 2009 start."""
        q, below = [], v
        for l in range(1, self.n_layers):
            scale = 2.0 if l < self.n_layers - 1 else 1.0
            a = self.b[l] + scale * ((below - self.mu[l - 1]) @ self.W[l - 1])
            below = torch.sigmoid(a)
            q.append(below)
        return q

    def variational_bound(
        self, v: Tensor, mu: Sequence[Tensor], *, log_z: float | Tensor = 0.0
    ) -> Tensor:
        """L(Q) = -E_Q[E(v, h)] + H(Q) - log Z <= log P(v) (eq. 20.35 with biases);
        (B,).

        Q factorial, and E linear in each layer with no connections inside one, so
        E_Q[E] is the energy at the means. ``log_z`` (default 0) gives the bound on
        the unnormalised log P*(v).
        """
        mu = [self._check_layer(m, l + 1, binary=False) for l, m in enumerate(mu)]
        v = self._check_layer(v, 0, binary=False)
        entropy = sum(_bernoulli_entropy(m).sum(-1) for m in mu)
        return -self._energy([v, *mu]) + entropy - log_z

    # --- reparametrisation (centering, eq. 20.37) -----------------------------------
    @torch.no_grad()
    def recenter(self, mu: Sequence[Tensor]) -> float:
        """Move the offsets to ``mu`` ([n_0, ..., n_L] vectors) without changing the
        distribution: the biases absorb the shift (Melchior et al. 2016, eq. 8).

        With d = mu_new - mu_old, x - mu_old = (x - mu_new) + d; the new biases are
        b_l + W_l d_{l+1} + d_{l-1} W_{l-1}, and E_old(x) = E_new(x) + C with the
        constant C = E_old(mu_new), which is returned: log Z_new = log Z_old + C.
        """
        if len(mu) != self.n_layers:
            raise ValueError(
                f"recenter needs {self.n_layers} offsets [mu_0, ..., mu_L]; "
                f"got {len(mu)}"
            )
        ref = self.W0
        new = [torch.as_tensor(m).to(dtype=ref.dtype, device=ref.device) for m in mu]
        for l, m in enumerate(new):
            if m.shape != (self.sizes[l],):
                raise ValueError(
                    f"offset mu[{l}] must have shape ({self.sizes[l]},); got "
                    f"{tuple(m.shape)}"
                )
        d = [n - o for n, o in zip(new, self.mu)]  # (n_l,)
        C = -sum(float(dl @ bl) for dl, bl in zip(d, self.b))
        C -= sum(float(d[l] @ Wl @ d[l + 1]) for l, Wl in enumerate(self.W))
        for l in range(self.n_layers):
            if l > 0:
                self.b[l].add_(d[l - 1] @ self.W[l - 1])
            if l < self.n_layers - 1:
                self.b[l].add_(self.W[l] @ d[l + 1])
        for l in range(self.n_layers):
            self.mu[l].copy_(new[l])
        return C


def _parity(sum_out: str) -> int:
    if sum_out not in ("odd", "even"):
        raise ValueError(f"sum_out must be 'odd' or 'even'; got {sum_out!r}")
    return 1 if sum_out == "odd" else 0


def _bernoulli_entropy(p: Tensor) -> Tensor:
    """H(Bernoulli(p)) elementwise, 0 log 0 = 0."""
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))


def _bernoulli(p: Tensor, generator: torch.Generator | None) -> Tensor:
    return bernoulli(p, generator).to(p.dtype)  # u < p on a 2^24 grid (dgmlib.draws)


# --- sampling -------------------------------------------------------------------------
@torch.no_grad()
def gibbs_sweep(
    dbm: DBM,
    x: Sequence[Tensor],
    *,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """One sweep of block Gibbs in the two blocks (figure 20.3): every odd layer
    from P(x_odd | x_even), then every even layer (v included) from
    P(x_even | x_odd) (eq. 20.26-20.28). ``beta`` samples p(x)^beta instead.
    Returns the new state [x_0, ..., x_L].
    """
    x = list(dbm._check_x(x))
    for side in (1, 0):
        for l in range(side, dbm.n_layers, 2):
            x[l] = _bernoulli(torch.sigmoid(beta * dbm.logits(x, l)), generator)
    return x


@torch.no_grad()
def sample_dbm(
    dbm: DBM,
    n: int,
    *,
    n_steps: int = 1000,
    init: Sequence[Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """``n`` chains of ``n_steps`` block-Gibbs sweeps from ``init`` (default: uniform
    random states); returns the final state [v, h1, ...]. Every layer takes part in
    every transition (§20.4.1), unlike a DBN's ancestral pass.
    """
    if init is None:
        ref = dbm.W[0]
        init = [
            _bernoulli(
                torch.full((n, k), 0.5, dtype=ref.dtype, device=ref.device), generator
            )
            for k in dbm.sizes
        ]
    x = list(init)
    for _ in range(n_steps):
        x = gibbs_sweep(dbm, x, generator=generator)
    return x


# --- learning: variational SML (Algorithm 20.1) ---------------------------------------
@torch.no_grad()
def variational_sml_step(
    dbm: DBM,
    v: Tensor,
    chains: Sequence[Tensor],
    *,
    lr: float,
    k: int = 1,
    n_mean_field: int = 10,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """One update of variational stochastic maximum likelihood, Algorithm 20.1 as
    written (with biases, any number of layers); returns the moved chains.

    Positive phase: mean field on the minibatch ``v`` (eq. 20.33-20.34). Negative
    phase: ``k`` two-block Gibbs sweeps of the persistent ``chains`` [V~, H~1, ...]
    (block 1 the even layers, block 2 the odd ones). The weights move by
    ``lr`` (<x_l x_{l+1}>_data - <x_l x_{l+1}>_model) and the biases by
    ``lr`` (<x_l>_data - <x_l>_model). The algorithm's printed negative phase for
    W^(1) reads V^T H~^(1); the gradient of log Z needs the model's V~^T H~^(1).
    """
    if dbm.centered:
        raise ValueError(
            "variational_sml_step is Algorithm 20.1 for the ordinary DBM; this one has "
            "offsets (dbm.mu): train it with fit_dbm(dbm, data, centered=True)"
        )
    # [maths:dbm.variational_sml]
    q = [v, *dbm.mean_field(v, n_iter=n_mean_field)]  # positive phase (eq. 20.33-34)
    x = list(chains)
    for _ in range(k):  # negative phase: block Gibbs, even block then odd block
        for side in (0, 1):
            for l in range(side, dbm.n_layers, 2):
                x[l] = _bernoulli(torch.sigmoid(dbm.logits(x, l)), generator)
    m, M = len(v), len(x[0])
    dW = [q[l].T @ q[l + 1] / m - x[l].T @ x[l + 1] / M for l in range(len(dbm.W))]
    db = [q[l].mean(0) - x[l].mean(0) for l in range(dbm.n_layers)]
    for Wl, dWl in zip(dbm.W, dW):
        Wl.add_(dWl, alpha=lr)
    for bl, dbl in zip(dbm.b, db):
        bl.add_(dbl, alpha=lr)
    # [/maths:dbm.variational_sml]
    return x


class DBMStep:
    """The practical step of :func:`fit_dbm`: Algorithm 20.1 with the recipe
    (momentum, weight decay on the weights, a scheduled rate set in ``lr``), the
    visible layer's input to mean field computed once, products accumulated straight
    into the velocities; optionally partial mean field in the negative phase and
    centering. Same numbers as :func:`variational_sml_step` on the same seed when the
    extras are off (tests/test_dbm.py).
    """

    def __init__(
        self,
        dbm: DBM,
        chains: list[Tensor],
        *,
        k: int = 1,
        n_mean_field: int = 10,
        negative: str = "sample",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        centered: bool = False,
        offset_rate: float = 0.01,
        monitor: bool = False,
        generator: torch.Generator | None = None,
        matmul_dtype: torch.dtype | None = None,
    ):
        self.matmul_dtype = matmul_dtype
        self.dbm, self.chains, self.k, self.n_mean_field = dbm, chains, k, n_mean_field
        self.negative, self.centered, self.offset_rate = negative, centered, offset_rate
        self.monitor, self.generator, self.lr = monitor, generator, 0.0
        n_w = len(dbm.W)
        self.opt = MomentumSGD(
            [*dbm.W, *dbm.b],
            [True] * n_w + [False] * dbm.n_layers,
            momentum=momentum,
            weight_decay=weight_decay,
        )
        self._buf: dict = {}  # reused tensors: fresh large ones cost page faults

    def _b(self, key, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """A preallocated buffer, reused while its shape and dtype stay the same."""
        return reuse(self._buf, key, shape, dtype, self.dbm.W[0].device)

    def _prepare(self) -> None:
        """Per update: the offsets folded into effective biases,
        c_l = b_l - mu_{l-1} W_{l-1} - W_l mu_{l+1}, so every logit is
        c_l + x_{l-1} W_{l-1} + x_{l+1} W_l^T (no subtraction per state); and the
        weights in matmul_dtype when one is set.
        """
        dbm, n = self.dbm, self.dbm.n_layers
        W, b, mu = list(dbm.W), list(dbm.b), list(dbm.mu)
        c = []
        for l in range(n):
            cl = b[l]
            if l > 0:
                cl = cl - mu[l - 1] @ W[l - 1]
            if l < n - 1:
                cl = cl - W[l] @ mu[l + 1]
            c.append(cl)
        self._c = c
        lo = self.matmul_dtype
        self._W = (
            W
            if lo is None
            else [self._b(("W", l), w.shape, lo).copy_(w) for l, w in enumerate(W)]
        )

    def _mm(self, a: Tensor, l: int, transpose: bool) -> Tensor:
        """a @ W_l (or a @ W_l^T), in matmul_dtype when set, returned in float."""
        Wl = self._W[l].T if transpose else self._W[l]
        lo = self.matmul_dtype
        return a @ Wl if lo is None else (a.to(lo) @ Wl).to(self._c[0].dtype)

    def _logits(self, x: list[Tensor], l: int, below: Tensor | None = None) -> Tensor:
        """c_l + x_{l-1} W_{l-1} + x_{l+1} W_l^T; ``below`` replaces the first term's
        product when it is already known.
        """
        n = self.dbm.n_layers
        lo = self.matmul_dtype
        if l > 0:
            a = self._c[l] + (
                self._mm(x[l - 1], l - 1, False) if below is None else below
            )
        else:
            a = self._c[l]
        if l < n - 1:
            if lo is None:
                a = torch.addmm(a, x[l + 1], self._W[l].T)
            else:
                a = a + self._mm(x[l + 1], l, True)
        return a

    def mean_field(self, v: Tensor) -> list[Tensor]:
        """dbm.mean_field(v, n_iter=n_mean_field) with v's product computed once."""
        self._prepare()
        if self.matmul_dtype is not None:
            return self._mean_field_lo(v)
        n = self.dbm.n_layers
        v_in = self._mm(v, 0, False)  # (B, n_1), the visible layer's input to h1
        q = [v]
        for l in range(1, n):  # bottom-up start, doubled below the top
            scale = 2.0 if l < n - 1 else 1.0
            below = v_in if l == 1 else self._mm(q[l - 1], l - 1, False)
            q.append(torch.sigmoid(self._c[l] + scale * below))
        for _ in range(self.n_mean_field):
            for side in (1, 2):
                for l in range(side, n, 2):
                    a = self._logits(q, l, below=v_in if l == 1 else None)
                    q[l] = a.sigmoid_()
        return q

    def _mean_field_lo(self, v: Tensor) -> list[Tensor]:
        """The same iteration with each logit formed in matmul_dtype: every product
        accumulates onto the bias and the other product (addmm; one rounding per
        logit) and the means stay in matmul_dtype between sweeps, as the products
        would round them anyway; the last sweep returns them in v's dtype.
        """
        n, W, lo, dt = self.dbm.n_layers, self._W, self.matmul_dtype, v.dtype
        c = [cl.to(lo) for cl in self._c]
        vW = torch.mm(v.to(lo), W[0])  # (B, n_1), the visible layer's input to h1
        v_in = torch.add(vW, c[1])
        q = [v.to(lo)]
        for l in range(1, n):  # bottom-up start, doubled below the top
            below = vW if l == 1 else torch.mm(q[l - 1], W[l - 1])
            q.append(torch.add(c[l], below, alpha=2.0 if l < n - 1 else 1.0).sigmoid_())
        out = [v, *q[1:]]
        for it in range(self.n_mean_field):
            last = it == self.n_mean_field - 1
            for side in (1, 2):
                for l in range(side, n, 2):
                    a = v_in if l == 1 else torch.addmm(c[l], q[l - 1], W[l - 1])
                    if l < n - 1:
                        a = torch.addmm(a, q[l + 1], W[l].T)
                    if last:  # the final means in float, from the same logits
                        out[l] = a.to(dt).sigmoid_()
                        q[l] = out[l].to(lo)
                    else:
                        q[l] = a.sigmoid() if a is v_in else a.sigmoid_()
        return out if self.n_mean_field else [v, *(t.to(dt) for t in q[1:])]

    def _draw(self, p: Tensor) -> Tensor:
        """Bernoulli(p), written into p (the same draws as _bernoulli)."""
        return bernoulli(p, self.generator, out=p, buffers=self._buf)

    @torch.no_grad()
    def __call__(self, v: Tensor) -> dict[str, float]:
        dbm = self.dbm
        n = dbm.n_layers
        q = self.mean_field(v)  # positive phase (also sets the effective biases)
        x = self.chains
        for _ in range(self.k):  # negative phase: even block, then odd block
            for side in (0, 1):
                for l in range(side, n, 2):
                    x[l] = self._draw(self._logits(x, l).sigmoid_())
        neg = x
        if self.negative == "mean_field":  # one mean-field step from the chains
            neg = list(x)
            for side in (1, 2):
                for l in range(side, n, 2):
                    neg[l] = self._logits(neg, l).sigmoid_()
        m, M = len(v), len(x[0])
        mu = list(dbm.mu)
        sp = [t - c for t, c in zip(q, mu)] if self.centered else q
        sn = [t - c for t, c in zip(neg, mu)] if self.centered else neg
        lr = self.lr
        vel = self.opt.begin(lr)
        lo = self.matmul_dtype
        for l in range(n - 1):
            if lo is None:
                vel[l].addmm_(sp[l].T, sp[l + 1], alpha=lr / m)
                vel[l].addmm_(sn[l].T, sn[l + 1], alpha=-lr / M)
            else:  # both phases in one low-precision product, accumulated in float
                (a, b), b_ = vel[l].shape, self._b
                left, right = b_(("L", l), (m + M, a), lo), b_(("R", l), (m + M, b), lo)
                left[:m].copy_(sp[l])
                left[m:].copy_(sn[l])
                torch.mul(sp[l + 1], 1 / m, out=right[:m])
                torch.mul(sn[l + 1], -1 / M, out=right[m:])
                G = torch.mm(left.T, right, out=b_(("G", l), (a, b), lo))
                vel[l].add_(b_(("G_f", l), (a, b), vel[l].dtype).copy_(G), alpha=lr)
        for l in range(n):
            vel[n - 1 + l].add_(q[l].mean(0) - neg[l].mean(0), alpha=lr)
        self.opt.apply()
        if self.centered:  # offsets follow the data-side means; biases absorb it
            r = self.offset_rate
            new = [mu[0]] + [(1 - r) * c + r * t.mean(0) for c, t in zip(mu[1:], q[1:])]
            dbm.recenter(new)
        if not self.monitor:
            return {}
        # the unnormalised bound -E_Q[E] + H(Q) (eq. 20.35 without log Z)
        return {"bound_plus_log_z": float(dbm.variational_bound(v, q[1:]).mean())}


def _init_chains(dbm: DBM, data: Tensor, n: int, generator) -> list[Tensor]:
    """Persistent chains at random training images, hidden layers drawn from their
    bottom-up means."""
    idx = torch.randint(
        len(data),
        (n,),
        generator=generator,
        device=generator.device if generator is not None else "cpu",
    )
    v = data[idx.to(data.device)].clone()
    return [v, *(_bernoulli(p, generator) for p in dbm._bottom_up(v))]


def _check_matmul_dtype(matmul_dtype) -> None:
    if matmul_dtype is not None and not matmul_dtype.is_floating_point:
        raise ValueError(
            "matmul_dtype must be a floating dtype such as torch.bfloat16; got "
            f"{matmul_dtype}"
        )


def fit_dbm(
    dbm: DBM,
    data: Tensor,
    *,
    epochs: int | None = None,
    seconds: float | None = None,
    batch_size: int = 100,
    lr: float = 0.001,
    schedule: str | Callable[[float], float] = "linear",
    momentum: float | Callable[[float], float] | None = None,
    weight_decay: float = 2e-4,
    k: int = 1,
    n_mean_field: int = 10,
    n_chains: int | None = None,
    chains: Sequence[Tensor] | None = None,
    negative: str = "sample",
    centered: bool = False,
    offset_rate: float = 0.01,
    init_visible_bias: bool = True,
    monitor: bool = False,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> History:
    """Train ``dbm`` in place by variational SML (Algorithm 20.1) with the library's
    recipe (:mod:`dgmlib.energy.recipe`).

    Each update: mean field on the minibatch (``n_mean_field`` iterations, eq.
    20.33-20.34) for the positive phase; ``k`` two-block Gibbs sweeps of ``n_chains``
    persistent chains (default ``batch_size``) for the negative phase. The chains
    persist across every update and epoch of the call, start at random training
    images (hidden layers drawn bottom-up) or at ``chains`` when the caller passes
    back ``History.chains`` of an earlier call. ``negative="mean_field"`` computes the
    negative statistics from one mean-field step from the chains (the partial mean
    field of Salakhutdinov & Hinton 2009; §20.4.4).

    The budget is ``epochs`` (default 1) or ``seconds``; the rate of update i is
    ``lr * schedule(t)``, t the fraction of the budget spent (default: linear decay
    to zero). Momentum (default :func:`recipe.momentum_ramp`: 0.5 for the first 5 %
    of the budget, then 0.9, so the long-run step is ``10 lr``) and weight decay on the
    weights follow :class:`recipe.MomentumSGD`. (Two-minute runs on 50,000 MNIST
    images from a pretrained 784-500-1000 DBM at -145 nats, AIS from
    :func:`~dgmlib.mcmc.dbm_base_rates`: lr 0.0003 reached -98.8 nats, 0.001 -97.2,
    0.003 -136.5.) With ``init_visible_bias`` the visible
    biases start at the data's log-odds when they are zero and no chains are passed
    back.

    ``centered=True`` trains the centered DBM (eq. 20.37; Montavon & Müller 2012):
    the offsets (``dbm.mu``) start at the data mean (visible) and 0.5 (hidden) and
    the hidden ones follow the data-side means by a moving average (``offset_rate``);
    :meth:`DBM.recenter` keeps the distribution unchanged at each move, and the
    gradient is taken in the centered parameters (Melchior et al. 2016).

    ``matmul_dtype=torch.bfloat16`` runs the matrix products in bfloat16 (mixed
    precision, as in :func:`fit_rbm`: parameters, velocities, sigmoids and draws stay
    in the model's dtype; the products accumulate in float32).

    Returns a :class:`~dgmlib.train.History` with ``chains`` (pass back to continue)
    and ``updates``; it records the unnormalised bound per step when ``monitor``.
    """
    _check_matmul_dtype(matmul_dtype)
    data = dbm._check_layer(data, 0)
    if k < 1:
        raise ValueError(f"k (Gibbs sweeps per update) must be >= 1; got {k}")
    if n_mean_field < 1:
        raise ValueError(f"n_mean_field must be >= 1; got {n_mean_field}")
    if negative not in ("sample", "mean_field"):
        raise ValueError(
            f"negative must be 'sample' (Algorithm 20.1) or 'mean_field' (partial "
            f"mean field, S&H 2009); got {negative!r}"
        )
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds (a time budget) must be > 0; got {seconds}")
    if epochs is not None and epochs < 0:
        raise ValueError(f"epochs must be >= 0; got {epochs}")
    if momentum is None:
        momentum = momentum_ramp()
    lr_of, momentum_of = resolve_schedule(schedule), resolve_momentum(momentum)
    if chains is not None:
        chains = [t.clone() for t in dbm._check_x(chains)]
    if init_visible_bias and chains is None and not dbm.b[0].any():
        dbm.b[0].copy_(visible_bias_from_data(data))
    if centered and not dbm.centered:
        dbm.recenter([data.mean(0)] + [torch.full((n,), 0.5) for n in dbm.sizes[1:]])
    if chains is None:
        chains = _init_chains(dbm, data, n_chains or batch_size, generator)
    step = DBMStep(
        dbm,
        chains,
        k=k,
        n_mean_field=n_mean_field,
        negative=negative,
        momentum=momentum_of(0.0),
        weight_decay=weight_decay,
        centered=centered,
        offset_rate=offset_rate,
        monitor=monitor,
        generator=generator,
        matmul_dtype=matmul_dtype,
    )

    def rates(t: float) -> None:
        step.lr, step.opt.momentum = lr * lr_of(t), momentum_of(t)

    hist, progress = fit_on_budget(
        step,
        data,
        rates,
        epochs=epochs,
        seconds=seconds,
        batch_size=batch_size,
        generator=generator,
        desc="DBM variational SML",
        quiet=quiet,
    )
    hist.chains = [t.clone() for t in step.chains]
    hist.updates = progress.steps
    return hist


# --- greedy layer-wise pretraining (§20.4.4) ------------------------------------------
@torch.no_grad()
def _fit_rbm_with_copies(
    W: Tensor,
    b: Tensor,
    c: Tensor,
    data: Tensor,
    *,
    copies: tuple[int, int],
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    generator: torch.Generator | None,
    quiet: bool | None,
    matmul_dtype: torch.dtype | None = None,
) -> History:
    """CD-1 (rate decaying linearly to zero) on an RBM whose visible and hidden
    layers appear in ``copies = (n_v, n_h)`` tied copies: the hidden units see
    ``c + n_v x W``, the visible ones ``b + n_h W h``. (2, 1) is the bottom RBM of a
    DBM stack, (1, 2) the top one. The gradient of tied copies is the sum over the
    copies. ``data`` may hold probabilities (the posterior means of the layer below).
    With ``matmul_dtype`` the products run in it (the rest in W's dtype).
    """
    n_v, n_h = copies
    opt = MomentumSGD(
        [W, b, c], [True, False, False], momentum=momentum, weight_decay=weight_decay
    )
    progress = Progress(total_steps=max(1, epochs * -(-len(data) // batch_size)))
    lo = matmul_dtype

    def mm(a: Tensor, w: Tensor) -> Tensor:  # a @ w, in matmul_dtype if one is set
        return a @ w if lo is None else (a.to(lo) @ w.to(lo)).to(W.dtype)

    def step(x: Tensor) -> dict[str, float]:
        W_lo = W if lo is None else W.to(lo)  # one low-precision copy per update
        ph = torch.sigmoid(c + n_v * mm(x, W_lo))  # (B, H) positive phase
        h = _bernoulli(ph, generator)
        x_neg = _bernoulli(torch.sigmoid(b + n_h * mm(h, W_lo.T)), generator)  # (B, D)
        ph_neg = torch.sigmoid(c + n_v * mm(x_neg, W_lo))
        m = len(x)
        dW = (n_v * n_h) * (mm(x.T, ph) - mm(x_neg.T, ph_neg)) / m
        db = n_v * (x.mean(0) - x_neg.mean(0))
        dc = n_h * (ph.mean(0) - ph_neg.mean(0))
        opt.step([dW, db, dc], lr * linear_decay(progress()))
        progress.tick()
        return {}

    return fit(
        step,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="DBM pretraining",
        quiet=quiet,
    )


def pretrain_dbm(
    dbm: DBM,
    data: Tensor,
    *,
    epochs: int | Sequence[int] = 10,
    batch_size: int = 100,
    lr: float = 0.05,
    momentum: float = 0.5,
    weight_decay: float = 2e-4,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> list[History]:
    """Greedy layer-wise pretraining of a DBM by a stack of RBMs (§20.4.4;
    Salakhutdinov & Hinton 2009), written into ``dbm`` in place.

    The bottom RBM (v, h1) is trained with two tied copies of the visible units (its
    hidden units see 2 v W, the doubled bottom-up input), the top RBM (h_{L-1}, h_L)
    with two copies of the top layer (its visible units see 2 W h_L), the middle ones
    as ordinary RBMs whose weights are then halved: in the DBM each hidden layer gets
    input from both sides. Each RBM is trained by CD-1 (linear rate decay) on the
    previous one's posterior means. A layer's bias is the mean of the biases the two
    RBMs that contain it learned. ``epochs``: one number, or one per RBM.
    ``matmul_dtype=torch.bfloat16`` runs the products in bfloat16, as in
    :func:`fit_dbm`.
    """
    data = dbm._check_layer(data, 0)
    _check_matmul_dtype(matmul_dtype)
    L = dbm.n_layers - 1
    per = [epochs] * L if isinstance(epochs, int) else list(epochs)
    if len(per) != L:
        raise ValueError(f"epochs needs one entry per RBM ({L}); got {len(per)}")
    if not dbm.b[0].any():
        dbm.b[0].copy_(visible_bias_from_data(data))
    x, hists, hidden_biases = data, [], []
    for l in range(L):
        copies = (2 if l == 0 and L > 1 else 1, 2 if l == L - 1 and L > 1 else 1)
        W = dbm.W[l].clone()
        b = dbm.b[0].clone() if l == 0 else torch.zeros_like(dbm.b[l])
        c = torch.zeros_like(dbm.b[l + 1])
        hists.append(
            _fit_rbm_with_copies(
                W,
                b,
                c,
                x,
                copies=copies,
                epochs=per[l],
                batch_size=batch_size,
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                generator=generator,
                quiet=quiet,
                matmul_dtype=matmul_dtype,
            )
        )
        middle = 0 < l < L - 1
        dbm.W[l].copy_(W / 2 if middle else W)
        if l == 0:
            dbm.b[0].copy_(b)
        else:
            dbm.b[l].copy_((hidden_biases[-1] + b) / 2)
        hidden_biases.append(c)
        x = torch.sigmoid(c + copies[0] * (x @ W))  # posterior means: next RBM's data
    dbm.b[L].copy_(hidden_biases[-1])
    for m in dbm.mu:
        m.zero_()
    return hists
