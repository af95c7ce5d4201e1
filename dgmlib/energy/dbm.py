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

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary, check_shape

__all__ = [
    "DBM",
    "gibbs_sweep",
    "sample_dbm",
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

    def free_energy(self, v_side: Sequence[Tensor | None], *, sum_out="odd") -> Tensor:
        """-log_p_star(x, sum_out=...) at beta = 1; (B,)."""
        return -self.log_p_star(v_side, sum_out=sum_out)

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
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return (u < p).to(p.dtype)


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
