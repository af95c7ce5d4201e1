"""Boltzmann machines for sequences (Deep Learning §20.7): the conditional RBM (Taylor
et al. 2007) and the RNN-RBM (Boulanger-Lewandowski et al. 2012).

Both model a sequence of binary frames x^(1..T), x^(t) in {0,1}^D, as a product of
RBMs p(x^(t) | past), each a BernoulliRBM with the shared weights ``W (D, H)`` and
biases that depend on the past::

    conditional RBM, order m:  b_t = b + A^T x_{<t},  c_t = c + B^T x_{<t}
        (x_{<t} = [x^(t-1), ..., x^(t-m)], (m D,); A (m D, D), B (m D, H))
    RNN-RBM:  b_t = b + W_uv^T u_{t-1},  c_t = c + W_uh^T u_{t-1},
              u_t = tanh(b_u + W_uu^T u_{t-1} + W_vu^T x^(t))        (u_0 learned)

    log p(x^(t) | past) = -F_t(x^(t)) - log Z_t,
    F_t(x) = -b_t.x - sum_j softplus(c_t,j + x.W[:, j])

log Z_t is exact when the smaller layer has at most ``MAX_ENUM`` units
(:func:`frame_log_partition`, the smaller layer enumerated), else estimated by AIS
(:func:`frame_log_partition_ais`). With ``n_hidden=0`` the RNN-RBM is the RNN with
independent Bernoulli outputs, trained by exact likelihood.

Training: the CD-k surrogate sum_t F_t(x^(t)) - F_t(x~^(t)) with negatives x~ from k
Gibbs sweeps of each frame's RBM, back-propagated through the biases (through time, for
the RNN-RBM) - the approximate gradient §20.7 describes - or, when log Z_t is exact
and cheap, the exact negative log-likelihood.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_binary
from ..exact import all_states
from ..mcmc.ais import AnnealingPath, ais

__all__ = [
    "ConditionalRBM",
    "RNNRBM",
    "bouncing_balls_1d",
    "frame_free_energy",
    "frame_gibbs",
    "frame_log_partition",
    "frame_log_partition_ais",
    "frame_windows",
    "sequence_cd_loss",
]

MAX_ENUM = 20


def _randn(shape, std: float, generator) -> Tensor:
    dev = generator.device if generator is not None else "cpu"
    return (std * torch.randn(shape, generator=generator, device=dev)).cpu()


# --- one RBM per frame: free energy, exact and AIS log Z, Gibbs ---------------------
def frame_free_energy(x: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """F_t(x) with per-frame biases; x, b (N, D), c (N, H) -> (N,)."""
    return -(x * b).sum(-1) - F.softplus(x @ W + c).sum(-1)


def frame_log_partition(
    W: Tensor, b: Tensor, c: Tensor, *, budget: int = 2**22
) -> Tensor:
    """Exact log Z_t of N RBMs sharing ``W (D, H)`` with biases b (N, D), c (N, H),
    the smaller layer enumerated (at most MAX_ENUM units); -> (N,).

    log Z = logsumexp_h [c.h + sum_i softplus(b_i + W[i].h)] over 2**H states (the
    mirror image when D < H). Differentiable in W, b, c.
    """
    if W.shape[1] > W.shape[0]:  # enumerate the visible layer instead
        W, b, c = W.T, c, b
    D, H = W.shape
    if H > MAX_ENUM:
        raise ValueError(
            f"exact log Z needs 2**{H} terms per frame (smaller layer {H} units > "
            f"{MAX_ENUM}); use frame_log_partition_ais"
        )
    # [maths:sequence.frame_log_z]
    h = all_states(H, dtype=W.dtype, device=W.device)  # (S, H)
    hW = h @ W.T  # (S, D), shared by every frame
    n = max(1, budget // (len(h) * max(D, 1)))  # frames per chunk
    out = []
    for i in range(0, b.shape[0], n):
        bi, ci = b[i : i + n], c[i : i + n]  # (n, D), (n, H)
        log_f = ci @ h.T + F.softplus(hW[None] + bi[:, None]).sum(-1)  # (n, S)
        out.append(torch.logsumexp(log_f, dim=-1))
    # [/maths:sequence.frame_log_z]
    return torch.cat(out) if out else b.new_zeros(0)


class FrameRBMPath(AnnealingPath):
    """An annealing path for N frame RBMs at once, ``n_chains`` chains each (state
    (N * n_chains, D), frame-major). p*_beta(x) = exp(b_t.x) prod_j (1 +
    exp(beta (c_t,j + x.W[:, j]))): at beta = 0 the base is the frame's own
    Bernoulli(sigmoid(b_t)) with log Z_0 = sum_i softplus(b_t,i) + H log 2, added per
    frame by :func:`frame_log_partition_ais` (``log_z_base`` here is 0)."""

    def __init__(self, W: Tensor, b: Tensor, c: Tensor, n_chains: int):
        self.W = W.detach()
        self.b = b.detach().repeat_interleave(n_chains, 0)  # (N n, D)
        self.c = c.detach().repeat_interleave(n_chains, 0)  # (N n, H)
        self.log_z_base, self.device = 0.0, W.device

    def sample_base(self, n, generator=None):
        return torch.bernoulli(torch.sigmoid(self.b), generator=generator)

    def log_p_star(self, x, beta):
        return (x * self.b).sum(-1) + F.softplus(beta * (x @ self.W + self.c)).sum(-1)

    def transition(self, x, beta, generator=None):
        p_h = torch.sigmoid(beta * (x @ self.W + self.c))
        h = torch.bernoulli(p_h, generator=generator)
        p_x = torch.sigmoid(self.b + beta * (h @ self.W.T))
        return torch.bernoulli(p_x, generator=generator)


@torch.no_grad()
def frame_log_partition_ais(
    W: Tensor,
    b: Tensor,
    c: Tensor,
    *,
    n_chains: int = 100,
    n_betas: int = 1000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """AIS estimate of each frame's log Z_t (a stochastic lower bound); -> (N,)."""
    N, H = c.shape
    path = FrameRBMPath(W, b, c, n_chains)
    res = ais(path, n_betas=n_betas, n_chains=N * n_chains, generator=generator)
    log_w = res.log_w.to(W.device, W.dtype).reshape(N, n_chains)
    log_z0 = F.softplus(b.detach()).sum(-1) + H * math.log(2.0)
    return log_z0 + torch.logsumexp(log_w, -1) - math.log(n_chains)


@torch.no_grad()
def frame_gibbs(
    x: Tensor,
    W: Tensor,
    b: Tensor,
    c: Tensor,
    k: int = 1,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """k block-Gibbs sweeps of each frame's RBM (biases b (N, D), c (N, H))."""
    for _ in range(k):
        h = torch.bernoulli(torch.sigmoid(x @ W + c), generator=generator)
        x = torch.bernoulli(torch.sigmoid(h @ W.T + b), generator=generator)
    return x


def _check_frames(x: Tensor, D: int, model: str) -> Tensor:
    if x.ndim != 3 or x.shape[-1] != D:
        raise ValueError(
            f"{model} expects sequences of shape (N, T, {D}): N sequences of T frames "
            f"of {D} binary units; got {tuple(x.shape)}. One sequence: x[None]"
        )
    check_binary(x, name="x", model=model)
    return x


class _SequenceRBM(nn.Module):
    """What the two sequence RBMs share: per-frame biases -> likelihoods, CD, Gibbs."""

    def frame_biases(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def frame_log_prob(self, x: Tensor, *, method: str = "auto", **ais_kw) -> Tensor:
        """log p(x^(t) | past) of every modelled frame, (N, T, D) -> (N, T'): exact
        (the smaller layer enumerated) or by AIS (``method="ais"``, or "auto" when
        both layers exceed MAX_ENUM)."""
        xt, b_t, c_t = self.frame_biases(x)  # (N, T', D), (N, T', D), (N, T', H)
        N, T = xt.shape[:2]
        xt, b_t, c_t = (a.reshape(N * T, -1) for a in (xt, b_t, c_t))
        if method == "auto":
            method = "exact" if min(self.W.shape) <= MAX_ENUM else "ais"
        if method not in ("exact", "ais"):
            raise ValueError(f"method must be 'auto', 'exact' or 'ais'; got {method!r}")
        if method == "exact":
            log_z = frame_log_partition(self.W, b_t, c_t)
        else:
            log_z = frame_log_partition_ais(self.W, b_t, c_t, **ais_kw)
        return (-frame_free_energy(xt, self.W, b_t, c_t) - log_z).reshape(N, T)


def sequence_cd_loss(
    model: _SequenceRBM,
    x: Tensor,
    *,
    k: int = 1,
    loss: str = "cd",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean over frames of the CD-k surrogate F_t(x) - F_t(x~) (``loss="cd"``), or
    of the exact -log p(x^(t) | past) (``loss="exact"``)."""
    if loss == "exact":
        return -model.frame_log_prob(x, method="exact").mean()
    if loss != "cd":
        raise ValueError(f"loss must be 'cd' or 'exact'; got {loss!r}")
    # [maths:sequence.cd]
    xt, b_t, c_t = model.frame_biases(x)  # biases depend on the past, with grad
    xt, b_t, c_t = (a.reshape(-1, a.shape[-1]) for a in (xt, b_t, c_t))
    x_neg = frame_gibbs(xt, model.W, b_t, c_t, k, generator=generator)  # fixed
    f_pos = frame_free_energy(xt, model.W, b_t, c_t)
    f_neg = frame_free_energy(x_neg, model.W, b_t, c_t)
    return (f_pos - f_neg).mean()
    # [/maths:sequence.cd]


class ConditionalRBM(_SequenceRBM):
    """Conditional RBM of order m (Taylor et al. 2007): an RBM over x^(t) whose biases
    are linear in the m previous frames (``A (m D, D)``, ``B (m D, H)``)."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        order: int = 1,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if min(n_visible, n_hidden, order) < 1:
            raise ValueError(
                "ConditionalRBM needs n_visible, n_hidden, order >= 1; got "
                f"{n_visible}, {n_hidden}, {order}"
            )
        D, H, m = n_visible, n_hidden, order
        self.order = m
        self.W = nn.Parameter(_randn((D, H), init_std, generator))
        self.A = nn.Parameter(_randn((m * D, D), init_std, generator))
        self.B = nn.Parameter(_randn((m * D, H), init_std, generator))
        self.b = nn.Parameter(torch.zeros(D))
        self.c = nn.Parameter(torch.zeros(H))

    def dynamic_biases(self, past: Tensor) -> tuple[Tensor, Tensor]:
        """b_t = b + A^T x_<t, c_t = c + B^T x_<t; (..., m D) -> (..., D), (..., H)."""
        # [maths:sequence.crbm_biases]
        return self.b + past @ self.A, self.c + past @ self.B
        # [/maths:sequence.crbm_biases]

    def frame_biases(self, x: Tensor):
        """Frames t = m..T-1 with their biases; (N, T, D) -> (N, T - m, ...)."""
        x = _check_frames(x, self.W.shape[0], "ConditionalRBM").to(self.W.dtype)
        if x.shape[1] <= self.order:
            raise ValueError(
                f"sequences need more than order={self.order} frames; got {x.shape[1]}"
            )
        past = frame_windows(x, self.order)  # (N, T - m, m D)
        b_t, c_t = self.dynamic_biases(past)
        return x[:, self.order :], b_t, c_t

    @torch.no_grad()
    def sample(
        self,
        init: Tensor,
        n_steps: int,
        *,
        k: int = 30,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue sequences from their first m frames ``init`` (N, m, D) by n_steps
        frames, each drawn by k Gibbs sweeps from the previous frame."""
        x = _check_frames(init, self.W.shape[0], "ConditionalRBM").to(self.W.dtype)
        for _ in range(n_steps):
            past = x[:, -self.order :].flip(1).reshape(x.shape[0], -1)
            b_t, c_t = self.dynamic_biases(past)
            x_t = frame_gibbs(x[:, -1], self.W, b_t, c_t, k, generator=generator)
            x = torch.cat([x, x_t[:, None]], 1)
        return x


def frame_windows(x: Tensor, order: int) -> Tensor:
    """The past of every frame t >= m, most recent first: (N, T, D) -> (N, T - m, m D),
    row t - m = [x^(t-1), ..., x^(t-m)]."""
    T = x.shape[1]
    parts = [x[:, order - j : T - j] for j in range(1, order + 1)]
    return torch.cat(parts, -1)


class RNNRBM(_SequenceRBM):
    """The RNN-RBM (Boulanger-Lewandowski et al. 2012): an RNN with state u_t emits the
    biases of the RBM over x^(t); ``n_hidden=0`` gives an RNN with independent
    Bernoulli outputs."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        n_recurrent: int,
        *,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_visible < 1 or n_hidden < 0 or n_recurrent < 1:
            raise ValueError(
                "RNNRBM needs n_visible >= 1, n_hidden >= 0, n_recurrent >= 1; got "
                f"{n_visible}, {n_hidden}, {n_recurrent}"
            )
        D, H, R = n_visible, n_hidden, n_recurrent
        self.W = nn.Parameter(_randn((D, H), init_std, generator))
        self.b = nn.Parameter(torch.zeros(D))
        self.c = nn.Parameter(torch.zeros(H))
        self.W_uv = nn.Parameter(_randn((R, D), init_std, generator))
        self.W_uh = nn.Parameter(_randn((R, H), init_std, generator))
        self.W_vu = nn.Parameter(_randn((D, R), 1 / math.sqrt(D), generator))
        self.W_uu = nn.Parameter(_randn((R, R), 1 / math.sqrt(R), generator))
        self.b_u = nn.Parameter(torch.zeros(R))
        self.u0 = nn.Parameter(torch.zeros(R))

    def step(self, u: Tensor, x_t: Tensor) -> Tensor:
        """u_t = tanh(b_u + W_uu^T u_{t-1} + W_vu^T x^(t)); (N, R), (N, D) -> (N, R)."""
        return torch.tanh(self.b_u + u @ self.W_uu + x_t @ self.W_vu)

    def dynamic_biases(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """b_t = b + W_uv^T u_{t-1}, c_t = c + W_uh^T u_{t-1}."""
        return self.b + u @ self.W_uv, self.c + u @ self.W_uh

    def frame_biases(self, x: Tensor):
        """Every frame with its biases from u_{t-1} (u_0 before the first frame)."""
        x = _check_frames(x, self.W.shape[0], "RNNRBM").to(self.W.dtype)
        N, T, _ = x.shape
        # [maths:sequence.rnnrbm]
        u = self.u0.expand(N, -1)
        b_t, c_t = [], []
        for t in range(T):
            b, c = self.dynamic_biases(u)  # from u_{t-1}: the past only
            b_t.append(b)
            c_t.append(c)
            u = self.step(u, x[:, t])  # then the RNN reads x^(t)
        # [/maths:sequence.rnnrbm]
        return x, torch.stack(b_t, 1), torch.stack(c_t, 1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        n_steps: int,
        *,
        k: int = 30,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n sequences of n_steps frames: each frame by k Gibbs sweeps of its RBM
        (exact for n_hidden=0: one draw from the independent outputs)."""
        D = self.W.shape[0]
        u = self.u0.expand(n, -1)
        x = torch.zeros(n, D, dtype=self.W.dtype, device=self.W.device)
        frames = []
        for _ in range(n_steps):
            b_t, c_t = self.dynamic_biases(u)
            x = torch.bernoulli(torch.sigmoid(b_t), generator=generator)
            if self.W.shape[1] > 0:
                x = frame_gibbs(x, self.W, b_t, c_t, k, generator=generator)
            frames.append(x)
            u = self.step(u, x)
        return torch.stack(frames, 1)  # (n, n_steps, D)


def bouncing_balls_1d(
    n_sequences: int,
    n_steps: int,
    *,
    width: int = 10,
    n_balls: int = 2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Balls moving one pixel a step on a line of ``width`` pixels, reflecting at the
    ends (a 1-D version of Sutskever et al.'s bouncing balls); -> (N, T, width) in
    {0,1}. Start positions and directions are random; balls pass through each other.
    """
    if width < 2 or n_balls < 1:
        raise ValueError(f"need width >= 2 and n_balls >= 1; got {width}, {n_balls}")
    dev = generator.device if generator is not None else "cpu"
    period = 2 * (width - 1)  # position on a circle of this length, folded
    s = torch.randint(period, (n_sequences, n_balls), generator=generator, device=dev)
    t = torch.arange(n_steps, device=dev)
    phase = (s[:, None, :] + t[None, :, None]) % period  # (N, T, n_balls)
    pos = torch.where(phase < width, phase, period - phase)
    x = F.one_hot(pos, width).amax(2)  # (N, T, width)
    return x.float().cpu()
