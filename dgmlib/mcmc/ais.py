"""Annealed importance sampling of a partition function over an annealing path
(§18.7, §20.4.3, §20.14).

An annealing path (:class:`AnnealingPath`) is a family p_beta, 0 <= beta <= 1, from a
base model p_0 whose log Z_0 is known and which can be sampled exactly, to the target
p_1; it gives log p*_beta(x) and a transition leaving p_beta invariant. One :func:`ais`
runs over any path, forward (from p_0) or reverse (from samples of p_1). The RBM's path
is here (:class:`RBMPath`); the DBM's, with its odd layers summed out, is in
:mod:`dgmlib.mcmc.paths`.

The RBM's path, Salakhutdinov & Murray (2008): anneal from a base-rate model A
(visible biases ``b_A``, no weights) to the RBM B along the geometric path of
unnormalized marginals

    log p*_beta(v) = (1 - beta) b_A.v + beta b.v
                     + sum_j softplus(beta (c_j + v.W[:, j]))

(at beta = 0 the hidden units contribute the constant H log 2, so
log Z_0 = H log 2 + sum_i softplus(b_A,i)). Each intermediate distribution is left
invariant by block Gibbs on the tempered joint. The importance weight of a chain is
sum_k [log p*_k(v_k) - log p*_{k-1}(v_k)], and

    log Z_B ~ log Z_0 + log mean_chains exp(log w).

Forward AIS gives a stochastic *lower* bound on log Z (Jensen): too few intermediate
distributions underestimate Z and so overstate test log-likelihoods. Reverse AIS, run
from samples of B back to A, gives a stochastic *upper* bound when its start is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AISResult",
    "AnnealingPath",
    "RBMPath",
    "ais",
    "annealing_path",
    "sm_betas",
    "base_rate_biases",
    "log_mean_exp",
]


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    """log(mean(exp(x))) computed stably."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


def sm_betas(dtype=torch.float64) -> Tensor:
    """The schedule of Salakhutdinov & Murray (2008): 0 -> 0.5 step 1e-3, 0.5 -> 0.9
    step 1e-4, 0.9 -> 1 step 1e-5.

    14,501 values from 0 to 1 inclusive.
    """
    parts = [
        torch.arange(0, 500, dtype=dtype) * 1e-3,
        0.5 + torch.arange(0, 4000, dtype=dtype) * 1e-4,
        0.9 + torch.arange(0, 10001, dtype=dtype) * 1e-5,
    ]
    return torch.cat(parts)


def base_rate_biases(data: Tensor, *, smoothing: float = 0.05) -> Tensor:
    """Visible biases of the base-rate model: log-odds of smoothed pixel means
    (S&M 2008).

    p_i = (mean_i + smoothing) / (1 + 2 smoothing); b_A,i = log p_i - log(1 - p_i).
    """
    p = (data.double().mean(0) + smoothing) / (1 + 2 * smoothing)
    return (torch.log(p) - torch.log1p(-p)).to(
        data.dtype if data.is_floating_point() else torch.float32
    )


@dataclass
class AISResult:
    """An AIS estimate: ``log_z`` with its standard error ``stderr`` (delta method, in
    log space).

    ``log_z_low`` / ``log_z_high`` are log(Z_hat -/+ 3 sd(Z_hat)) as in Salakhutdinov &
    Murray (``log_z_low`` is -inf when the interval reaches zero). ``log_w`` holds every
    chain's log weight and ``log_z_base`` the exact log Z of the base model.
    """

    log_z: float
    stderr: float
    log_z_low: float
    log_z_high: float
    log_w: Tensor
    log_z_base: float
    n_betas: int
    reverse: bool = False

    def __repr__(self) -> str:
        kind = "reverse AIS" if self.reverse else "AIS"
        return (
            f"{kind}: log Z = {self.log_z:.4f} +- {self.stderr:.4f} "
            f"({len(self.log_w)} chains, {self.n_betas} betas)"
        )


def _log_p_star(
    v: Tensor, beta: Tensor | float, W: Tensor, b: Tensor, c: Tensor, b_a: Tensor
) -> Tensor:
    """log p*_beta(v) along the geometric path; (B, D) -> (B,)."""
    return (
        (1 - beta) * (v @ b_a) + beta * (v @ b) + F.softplus(beta * (v @ W + c)).sum(-1)
    )


def _summarise(
    log_w: Tensor, log_z_base: float, n_betas: int, reverse: bool
) -> AISResult:
    n = len(log_w)
    log_r = log_mean_exp(log_w)  # forward: log(Z_B / Z_A); reverse: log(Z_A / Z_B)
    log_z = log_z_base - float(log_r) if reverse else log_z_base + float(log_r)
    w = torch.exp(log_w - log_r)  # weights normalised to mean 1
    rel_sd = float(w.std(unbiased=True)) if n > 1 else float("inf")  # sd(w)/mean(w)
    stderr = rel_sd / math.sqrt(n)
    up = math.log1p(3 * stderr)  # log(1 + 3 se)
    down = math.log1p(-3 * stderr) if 3 * stderr < 1 else -math.inf  # log(1 - 3 se)
    low, high = (
        (log_z + down, log_z + up) if not reverse else (log_z - up, log_z - down)
    )
    return AISResult(
        log_z, stderr, low, high, log_w.cpu(), log_z_base, n_betas, reverse
    )


class AnnealingPath:
    """The protocol :func:`ais` runs on: a path of distributions p_beta from a base
    p_0 (beta = 0) to the target p_1 (beta = 1). A subclass provides

    - ``log_z_base``: the exact log Z_0 of the base (a float);
    - ``sample_base(n, generator)``: n exact samples of p_0, in the path's state;
    - ``log_p_star(x, beta)``: log p*_beta(x), (n,), unnormalised;
    - ``transition(x, beta, generator)``: a move leaving p_beta invariant.

    A state ``x`` is whatever the path needs (a tensor (n, D), a list of layers);
    ``check_init(x, n)`` may check and convert a reverse run's start. ``step`` is one
    AIS step; a path may override it with a faster one (sharing products between the
    weight and the move), tested equal to this one.
    """

    log_z_base: float
    device: torch.device | None = None

    def sample_base(self, n: int, generator: torch.Generator | None = None):
        raise NotImplementedError

    def log_p_star(self, x, beta: float) -> Tensor:
        raise NotImplementedError

    def transition(self, x, beta: float, generator: torch.Generator | None = None):
        raise NotImplementedError

    def check_init(self, x, n: int):
        return x

    def step(self, x, prev: float, cur: float, generator=None):
        """log p*_cur(x) - log p*_prev(x), and x moved by T_cur (§18.7)."""
        # [maths:ais.step]
        d_log_w = self.log_p_star(x, cur) - self.log_p_star(x, prev)
        x = self.transition(x, cur, generator=generator)
        # [/maths:ais.step]
        return d_log_w, x


def _base_biases(base: Tensor | str, D: int, dtype, device) -> Tensor:
    if isinstance(base, str):
        if base != "uniform":
            raise ValueError(
                "base must be 'uniform' or a (D,) tensor of visible biases; got "
                f"{base!r}"
            )
        return torch.zeros(D, dtype=dtype, device=device)
    if not isinstance(base, Tensor) or base.shape != (D,):
        got = tuple(base.shape) if isinstance(base, Tensor) else type(base).__name__
        raise ValueError(f"base biases must have shape ({D},); got {got}")
    return base.to(dtype=dtype, device=device)


class RBMPath(AnnealingPath):
    """The geometric path of Salakhutdinov & Murray (2008) for a BernoulliRBM: the
    base has visible biases ``b_A`` and no weights; the hidden units are summed out
    (:func:`_log_p_star`); the move is one tempered block-Gibbs sweep.
    """

    def __init__(self, rbm, base: Tensor | str = "uniform"):
        self.W, self.b, self.c = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
        D, H = self.W.shape
        self.device = self.W.device
        self.b_a = _base_biases(base, D, self.W.dtype, self.device)
        self.log_z_base = float(H * math.log(2.0) + F.softplus(self.b_a.double()).sum())

    def _bern(self, p: Tensor, generator) -> Tensor:
        return torch.bernoulli(p, generator=generator)

    def sample_base(self, n, generator=None):
        p = torch.sigmoid(self.b_a).expand(n, len(self.b_a)).contiguous()
        return self._bern(p, generator)  # (n, D), exact samples of p_A

    def log_p_star(self, v, beta):
        return _log_p_star(v, beta, self.W, self.b, self.c, self.b_a)

    def transition(self, v, beta, generator=None):
        # block Gibbs leaving p_beta invariant (eq. 20.14, 20.16 at inverse
        # temperature beta): h ~ P_beta(h | v), v ~ P_beta(v | h)
        h = self._bern(torch.sigmoid(beta * (v @ self.W + self.c)), generator)
        p_v = torch.sigmoid((1 - beta) * self.b_a + beta * (self.b + h @ self.W.T))
        return self._bern(p_v, generator)

    def check_init(self, v, n):
        D = len(self.b)
        if not isinstance(v, Tensor) or v.shape != (n, D):
            raise ValueError(
                f"reverse AIS needs init_v of shape ({n}, {D}): samples of the RBM"
            )
        return v.to(dtype=self.W.dtype, device=self.device)

    def step(self, v, prev, cur, generator=None):
        # the same draws as AnnealingPath.step, with one product v W shared between
        # the weight and the Gibbs sweep
        W, b, c, b_a = self.W, self.b, self.c, self.b_a
        pre = v @ W + c  # (n, H)
        d_log_w = (
            (cur - prev) * (v @ (b - b_a))
            + F.softplus(cur * pre).sum(-1)
            - F.softplus(prev * pre).sum(-1)
        )
        h = self._bern(torch.sigmoid(cur * pre), generator)
        v = self._bern(torch.sigmoid((1 - cur) * b_a + cur * (b + h @ W.T)), generator)
        return d_log_w, v


def annealing_path(model, *, base: Tensor | str = "uniform") -> AnnealingPath:
    """The annealing path :func:`ais` uses for ``model``: an :class:`AnnealingPath`
    as given; :class:`RBMPath` for a BernoulliRBM; :class:`~dgmlib.mcmc.paths.DBMPath`
    (odd layers summed out) for a DBM; :class:`~dgmlib.mcmc.paths.GRBMPath` and
    :class:`~dgmlib.mcmc.paths.MCRBMPath` for the real-valued RBMs of chapter 8.
    ``base``: the base model's visible biases (binary models only).
    """
    from ..energy.dbm import DBM
    from ..energy.rbm import BernoulliRBM
    from .paths import DBMPath

    if isinstance(model, AnnealingPath):
        if not (isinstance(base, str) and base == "uniform"):
            raise ValueError(
                "base= belongs to the path when ais is given an AnnealingPath; build "
                "the path with its base instead"
            )
        return model
    if isinstance(model, BernoulliRBM):
        return RBMPath(model, base)
    if isinstance(model, DBM):
        return DBMPath(model, base)
    from ..energy.covariance import MeanCovarianceRBM
    from ..energy.grbm import GaussianBernoulliRBM
    from .paths import GRBMPath, MCRBMPath

    real = {GaussianBernoulliRBM: GRBMPath, MeanCovarianceRBM: MCRBMPath}
    for cls, path in real.items():
        if isinstance(model, cls):
            if not (isinstance(base, str) and base == "uniform"):
                raise ValueError(
                    f"a {cls.__name__}'s annealing path starts from its own Gaussian "
                    "base; leave base= unset"
                )
            return path(model)
    raise ValueError(
        "ais needs a BernoulliRBM, a DBM, a GaussianBernoulliRBM, a MeanCovarianceRBM "
        "or an AnnealingPath (base log Z, base "
        f"samples, log p*_beta, an invariant transition); got {type(model).__name__}"
    )


def _check_betas(betas: Tensor | None, n_betas: int | None) -> list[float]:
    if betas is None:
        if n_betas is None or n_betas < 2:
            raise ValueError(
                "ais needs betas=..., or n_betas >= 2 for an evenly spaced schedule"
            )
        betas = torch.linspace(0, 1, n_betas, dtype=torch.float64)
    betas = torch.as_tensor(betas).to(torch.float64)
    if (
        betas.ndim != 1
        or len(betas) < 2
        or float(betas[0]) != 0.0
        or float(betas[-1]) != 1.0
        or bool((betas.diff() < 0).any())
    ):
        raise ValueError(
            "betas must be a 1-D non-decreasing schedule from exactly 0 to exactly 1"
        )
    return betas.tolist()


@torch.no_grad()
def ais(
    model,
    *,
    betas: Tensor | None = None,
    n_betas: int | None = None,
    n_chains: int = 100,
    base: Tensor | str = "uniform",
    reverse: bool = False,
    init_v=None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Estimate log Z by (reverse) annealed importance sampling over an annealing
    path: ``model`` is an :class:`AnnealingPath`, a BernoulliRBM (:class:`RBMPath`)
    or a DBM (:class:`~dgmlib.mcmc.paths.DBMPath`, odd layers summed out; build the
    path yourself to sum out the even ones).

    Parameters
    ----------
    betas : (K,) tensor, increasing from 0 to 1, or None
        The schedule; e.g. :func:`sm_betas`. Otherwise ``n_betas`` values evenly spaced.
    base : "uniform", (D,) tensor, or (DBM) one tensor per layer
        Visible biases b_A of the base model; ``"uniform"`` is b_A = 0, and
        :func:`base_rate_biases` (data) gives the base-rate model of S&M (2008). A DBM
        also takes biases for every layer: :func:`~dgmlib.mcmc.dbm_base_rates`, the
        base to use on a trained DBM (its hidden units are mostly off).
    reverse : bool
        Run from the target back to the base. Needs ``init_v``: ``n_chains`` samples
        of the target in the path's state (RBM: (n_chains, D); DBM: the list of
        layers). Exact ones make the estimate a stochastic upper bound; long Gibbs
        chains or data approximate them.
    """
    path = annealing_path(model, base=base)
    schedule = _check_betas(betas, n_betas)
    device = path.device
    if (
        generator is not None
        and device is not None
        and generator.device.type != torch.device(device).type
    ):
        raise ValueError(
            f"the generator is on {generator.device} but the model is on {device}; "
            f"make one there: torch.Generator(device={str(device)!r}).manual_seed(...)"
        )
    if reverse:
        if init_v is None:
            raise ValueError(
                "reverse AIS needs init_v: n_chains samples of the target model"
            )
        x = path.check_init(init_v, n_chains)
        schedule = schedule[::-1]  # from the target, beta from 1 down to 0
    else:
        x = path.sample_base(n_chains, generator=generator)  # exact samples of p_0
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=device)
    # [maths:ais.loop]
    for k in range(1, len(schedule)):
        prev, cur = schedule[k - 1], schedule[k]
        # log p*_cur(x) - log p*_prev(x), then x moved by a T leaving p_cur invariant
        d_log_w, x = path.step(x, prev, cur, generator=generator)
        log_w += d_log_w.double()
    # [/maths:ais.loop]
    return _summarise(log_w, path.log_z_base, len(schedule), reverse)
