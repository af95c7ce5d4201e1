"""Annealed importance sampling for the partition function of an RBM
(§18.7, §20.4.3, §20.14).

Salakhutdinov & Murray (2008): anneal from a base-rate model A (visible biases ``b_A``,
no weights) to the RBM B along the geometric path of unnormalized marginals

    log p*_beta(v) = (1 - beta) b_A.v + beta b.v + sum_j softplus(beta
    (c_j + v.W[:, j]))

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

__all__ = ["AISResult", "ais", "sm_betas", "base_rate_biases", "log_mean_exp"]


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


@torch.no_grad()
def ais(
    rbm,
    *,
    betas: Tensor | None = None,
    n_betas: int | None = None,
    n_chains: int = 100,
    base: Tensor | str = "uniform",
    reverse: bool = False,
    init_v: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Estimate log Z of a BernoulliRBM by (reverse) annealed importance sampling.

    Parameters
    ----------
    betas : (K,) tensor, increasing from 0 to 1, or None
        The schedule; e.g. :func:`sm_betas`. Otherwise ``n_betas`` values evenly spaced.
    base : "uniform" or (D,) tensor
        Visible biases b_A of the base model; ``"uniform"`` is b_A = 0, and
        :func:`base_rate_biases` (data) gives the base-rate model of S&M (2008).
    reverse : bool
        Run from B to A. Needs ``init_v`` (n_chains, D): samples of the RBM (exact ones
        make the estimate a stochastic upper bound; long Gibbs chains or data
        approximate them).
    """
    W, b, c = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
    D, H = W.shape
    dtype, device = W.dtype, W.device
    if betas is None:
        if n_betas is None or n_betas < 2:
            raise ValueError(
                "ais needs betas=..., or n_betas >= 2 for an evenly spaced schedule"
            )
        betas = torch.linspace(0, 1, n_betas, dtype=torch.float64)
    betas = betas.to(torch.float64)
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
    if isinstance(base, str):
        if base != "uniform":
            raise ValueError(
                "base must be 'uniform' or a (D,) tensor of visible biases; got "
                f"{base!r}"
            )
        b_a = torch.zeros(D, dtype=dtype, device=device)
    else:
        if base.shape != (D,):
            raise ValueError(
                f"base biases must have shape ({D},); got {tuple(base.shape)}"
            )
        b_a = base.to(dtype=dtype, device=device)
    log_z_base = float(H * math.log(2.0) + F.softplus(b_a.double()).sum())
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the RBM is on {device}; "
            f"make one there: torch.Generator(device={str(device)!r}).manual_seed(...)"
        )

    if reverse and (init_v is None or init_v.shape != (n_chains, D)):
        raise ValueError(
            f"reverse AIS needs init_v of shape ({n_chains}, {D}): samples of the RBM"
        )

    def bern(p: Tensor) -> Tensor:
        return torch.bernoulli(p, generator=generator)

    # [maths:ais.loop]
    schedule = betas.tolist()
    if reverse:  # from samples of B, beta from 1 down to 0
        v = init_v.to(dtype=dtype, device=device)
        schedule = schedule[::-1]
    else:
        v = bern(
            torch.sigmoid(b_a).expand(n_chains, D).contiguous()
        )  # exact samples of p_A
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=device)
    for k in range(1, len(schedule)):
        prev, cur = schedule[k - 1], schedule[k]
        # log p*_cur(v) - log p*_prev(v), from one product v W shared with the Gibbs
        # step below
        pre = v @ W + c  # (n, H)
        log_w += (
            (cur - prev) * (v @ (b - b_a))
            + F.softplus(cur * pre).sum(-1)
            - F.softplus(prev * pre).sum(-1)
        ).double()
        # block Gibbs leaving p_cur invariant: h ~ P_cur(h | v), v ~ P_cur(v | h)
        h = bern(torch.sigmoid(cur * pre))
        v = bern(torch.sigmoid((1 - cur) * b_a + cur * (b + h @ W.T)))
    # [/maths:ais.loop]
    return _summarise(log_w, log_z_base, len(schedule), reverse)
