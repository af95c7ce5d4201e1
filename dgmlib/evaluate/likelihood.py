"""Likelihood estimators for chapter 20 (§20.14): annealed importance sampling on a
decoder (Wu et al. 2017), reverse AIS and the bidirectional Monte Carlo sandwich
(Grosse et al. 2015), exact log-likelihoods of small models, bits per dimension and
nearest training neighbours.

Notation::

    x  (B, D)   data points             z  (K * B, q)   K chains for each x[b]
    p(z) = N(0, I)                      log_lik(x, z) = log p(x | z)   (n,)
    log p*_beta(z) = log p(z) + beta log p(x | z),   0 <= beta <= 1

At beta = 0 the path is the prior (normalised, log Z_0 = 0, exact samples); at
beta = 1 its normaliser is Z_1 = int p(z) p(x | z) dz = p(x). So one run of
:func:`dgmlib.mcmc.ais` over :class:`DecoderPath` estimates log p(x) for every data
point at once: forward from the prior, a stochastic *lower* bound (E log p_hat <=
log p(x) by Jensen); reverse from exact posterior samples, a stochastic *upper* bound.
For data simulated from the model the latent z it came from is an exact posterior
sample, so the two bracket the true log p(x): BDMC.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.flows.dequantize import bits_per_dim
from dgmlib.mcmc.ais import AnnealingPath, _check_betas, ais, log_mean_exp
from dgmlib.mcmc.hmc import hmc_step

__all__ = [
    "AISLogLikelihood",
    "BDMCResult",
    "DecoderPath",
    "StepSizeTable",
    "ais_log_likelihood",
    "bdmc",
    "bernoulli_decoder",
    "bits_per_dim",
    "exact_log_likelihood",
    "gaussian_decoder",
    "nearest_neighbours",
    "sigmoid_betas",
    "simulate_decoder",
    "tune_step_sizes",
]

LogLik = Callable[[Tensor, Tensor], Tensor]


# --- decoders ----------------------------------------------------------------------


def gaussian_decoder(G: Callable[[Tensor], Tensor], sigma: float | Tensor) -> LogLik:
    """log p(x | z) = log N(x; G(z), sigma^2 I), summed over the D pixels: the
    Gaussian observation model Wu et al. (2017) put on a GAN's generator ``G`` to give
    it a likelihood. ``sigma``: a float or a (D,) tensor, > 0.
    """
    s = torch.as_tensor(sigma, dtype=torch.float64)
    if not bool((s > 0).all()) or s.ndim > 1:
        raise ValueError(
            f"sigma must be a positive float or a (D,) tensor of positive values; got "
            f"{sigma!r}"
        )

    def log_lik(x: Tensor, z: Tensor) -> Tensor:  # (n, D), (n, q) -> (n,)
        sd = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[-1])
        # [maths:likelihood.gaussian]
        r = (x - G(z)) / sd  # (n, D) standardised residuals
        log_norm = torch.log(sd).sum() + 0.5 * x.shape[-1] * math.log(2 * math.pi)
        return -0.5 * (r**2).sum(-1) - log_norm
        # [/maths:likelihood.gaussian]

    return log_lik


def bernoulli_decoder(logits_fn: Callable[[Tensor], Tensor]) -> LogLik:
    """log p(x | z) = sum_d log Bernoulli(x_d; sigmoid(logits_fn(z)_d)) for binary x
    (a VAE's or a sigmoid belief net's decoder), through the stable
    ``binary_cross_entropy_with_logits``.
    """

    def log_lik(x: Tensor, z: Tensor) -> Tensor:  # (n, D), (n, q) -> (n,)
        # [maths:likelihood.bernoulli]
        logits = logits_fn(z)  # (n, D)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        # [/maths:likelihood.bernoulli]

    return log_lik


def _like(G) -> tuple[torch.dtype, torch.device]:
    if isinstance(G, nn.Module):
        for p in G.parameters():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


@torch.no_grad()
def simulate_decoder(
    G: Callable[[Tensor], Tensor],
    n: int,
    *,
    latent_dim: int,
    sigma: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw n pairs (x, z) from the model: z ~ N(0, I) (n, q), then x = G(z) + sigma
    eps (Gaussian decoder) or, with ``sigma=None``, x ~ Bernoulli(sigmoid(G(z)))
    (G gives logits). Each z is an exact sample of p(z | x) for its x: what reverse AIS
    and :func:`bdmc` start from. Dtype and device follow G's parameters.
    """
    _check_latent_dim(latent_dim)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"simulate_decoder needs n >= 1 samples; got {n!r}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be > 0 (or None for Bernoulli x); got {sigma!r}")
    dtype, device = _like(G)
    z = torch.randn(n, latent_dim, generator=generator, dtype=dtype, device=device)
    out = G(z)  # (n, D)
    if sigma is None:
        return torch.bernoulli(torch.sigmoid(out), generator=generator), z
    eps = torch.randn(out.shape, generator=generator, dtype=dtype, device=device)
    return out + sigma * eps, z


def sigmoid_betas(n_betas: int, delta: float = 4.0) -> Tensor:
    """The sigmoidal schedule of Grosse et al. (2015), used by Wu et al. (2017):
    beta_t proportional to sigmoid(delta (2 t / (T - 1) - 1)), shifted and scaled to
    run from exactly 0 to exactly 1; denser at both ends than evenly spaced betas,
    where the posterior of a sharp likelihood changes fastest. (n_betas,) float64.
    """
    if isinstance(n_betas, bool) or not isinstance(n_betas, int) or n_betas < 2:
        raise ValueError(f"n_betas must be an int >= 2; got {n_betas!r}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0; got {delta!r}")
    t = torch.linspace(-delta, delta, n_betas, dtype=torch.float64)
    s = torch.sigmoid(t)
    betas = (s - s[0]) / (s[-1] - s[0])
    betas[0], betas[-1] = 0.0, 1.0
    return betas


# --- the annealing path ------------------------------------------------------------


class DecoderPath(AnnealingPath):
    """Wu et al. (2017): AIS from the prior p(z) = N(0, I) (log Z_0 = 0, exact
    samples) to the posterior p(z | x) ∝ p(z) p(x | z)^beta, so log Z_1 = log p(x).

    The state z has shape (K * B, q): K chains for each of the B data points, row
    k * B + b belonging to x[b]. The transition is one HMC step
    (:func:`dgmlib.mcmc.hmc.hmc_step`, ``n_leapfrog`` leapfrog steps) on
    log p*_beta, with a step size that is a fixed function of beta: a float, or a
    callable beta -> float such as the :class:`StepSizeTable` from
    :func:`tune_step_sizes`. Being fixed, each move leaves p_beta exactly invariant.

    ``log_lik(x_rep, z) -> (K * B,)`` with ``x_rep = x.repeat(n_chains, 1)``. The path
    counts accepted HMC proposals (``n_accept`` of ``n_proposed``; ``n_accept`` a
    0-d tensor on x's device).
    """

    def __init__(
        self,
        log_lik: LogLik,
        x: Tensor,
        latent_dim: int,
        n_chains: int,
        *,
        step_size: float | Callable[[float], float] = 0.05,
        n_leapfrog: int = 10,
    ):
        _check_x(x)
        _check_latent_dim(latent_dim)
        _check_chains(n_chains)
        if isinstance(n_leapfrog, bool) or not isinstance(n_leapfrog, int):
            raise ValueError(f"n_leapfrog must be an int >= 1; got {n_leapfrog!r}")
        if n_leapfrog < 1:
            raise ValueError(f"n_leapfrog must be an int >= 1; got {n_leapfrog!r}")
        if not callable(step_size):
            _check_step(step_size)
        self.log_lik, self.step_size, self.n_leapfrog = log_lik, step_size, n_leapfrog
        self.x_rep = x.repeat(n_chains, 1)  # (K * B, D): row k * B + b is x[b]
        self.latent_dim, self.n_chains, self.n_data = latent_dim, n_chains, len(x)
        self.dtype, self.device = x.dtype, x.device
        self.log_z_base = 0.0  # the prior N(0, I) is normalised
        self.n_accept, self.n_proposed = 0, 0

    def step_size_at(self, beta: float) -> float:
        eps = self.step_size(beta) if callable(self.step_size) else self.step_size
        return _check_step(float(eps))

    def sample_base(self, n, generator=None):
        self._check_n(n)
        shape = (n, self.latent_dim)
        return torch.randn(
            shape, generator=generator, dtype=self.dtype, device=self.device
        )

    def log_p_star(self, z, beta):
        # [maths:likelihood.decoder_path]
        log_prior = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
        return log_prior + beta * self.log_lik(self.x_rep, z)  # (K * B,)
        # [/maths:likelihood.decoder_path]

    def transition(self, z, beta, generator=None):
        z, accept = hmc_step(
            lambda z: self.log_p_star(z, beta),
            z,
            step_size=self.step_size_at(beta),
            n_leapfrog=self.n_leapfrog,
            generator=generator,
        )
        self.n_accept = self.n_accept + accept.sum()  # a tensor: no device sync
        self.n_proposed += len(accept)
        return z

    def check_init(self, z, n):
        self._check_n(n)
        if not isinstance(z, Tensor) or z.shape != (n, self.latent_dim):
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"reverse AIS needs z of shape ({n}, {self.latent_dim}): an exact "
                f"posterior sample for every chain; got {got}"
            )
        return z.to(dtype=self.dtype, device=self.device)

    def _check_n(self, n):
        if n != self.n_chains * self.n_data:
            raise ValueError(
                f"this DecoderPath holds {self.n_chains} chains for each of "
                f"{self.n_data} data points: run ais with n_chains="
                f"{self.n_chains * self.n_data}; got {n}"
            )


# --- step sizes --------------------------------------------------------------------


@dataclass
class StepSizeTable:
    """A step size for every beta: piecewise-linear interpolation of the table
    (``betas``, ``step_sizes``) a pilot run recorded; call it with beta."""

    betas: Tensor  # (n,) increasing
    step_sizes: Tensor  # (n,)

    def __call__(self, beta: float) -> float:
        b, s = self.betas, self.step_sizes
        i = int(torch.searchsorted(b, torch.tensor([float(beta)], dtype=b.dtype)))
        if i <= 0:
            return float(s[0])
        if i >= len(b):
            return float(s[-1])
        t = (float(beta) - float(b[i - 1])) / max(float(b[i] - b[i - 1]), 1e-300)
        return float((1 - t) * s[i - 1] + t * s[i])


@torch.no_grad()
def tune_step_sizes(
    log_lik: LogLik,
    x: Tensor,
    *,
    latent_dim: int,
    betas: Tensor,
    n_leapfrog: int = 10,
    target_accept: float = 0.65,
    n_pilot: int = 4,
    initial_step_size: float = 0.05,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> StepSizeTable:
    """A pilot run that picks one global HMC step size per beta.

    ``n_pilot`` chains for each data point, drawn from the prior, are annealed along
    ``betas`` with one HMC step per beta; after each step the step size is multiplied
    by exp(gain (acceptance - target_accept)), the acceptance measured over every
    pilot chain, and the new value recorded for that beta. The result interpolates
    the table (:class:`StepSizeTable`).

    The real AIS run then uses these step sizes as a *fixed* function of beta, with
    its own chains and its own random numbers, so every transition T_beta leaves
    p_beta exactly invariant and the AIS weights stay unbiased. Wu et al. (2017)
    adapt the step size inside the run that is scored; there T_k depends on the
    chain's past, which AIS's correctness argument does not allow.
    """
    schedule = _check_betas(betas, None)
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1); got {target_accept}")
    _check_chains(n_pilot, what="n_pilot")
    path = DecoderPath(
        log_lik,
        x,
        latent_dim,
        n_pilot,
        step_size=initial_step_size,
        n_leapfrog=n_leapfrog,
    )
    z = path.sample_base(n_pilot * len(x), generator=generator)
    eps, table = float(initial_step_size), [float(initial_step_size)]
    # [maths:likelihood.tune]
    for beta in schedule[1:]:
        path.step_size = eps
        before = path.n_accept
        z = path.transition(z, beta, generator=generator)
        rate = float(path.n_accept - before) / len(z)  # acceptance at this beta
        eps *= math.exp(gain * (rate - target_accept))  # toward the target
        table.append(eps)
    # [/maths:likelihood.tune]
    table[0] = table[1]  # no move is made at beta = 0
    return StepSizeTable(
        torch.tensor(schedule, dtype=torch.float64),
        torch.tensor(table, dtype=torch.float64),
    )


def _resolve_step_size(step_size, log_lik, x, latent_dim, betas, n_leapfrog, generator):
    """``step_size`` as given, or the pilot run's table for ``"tune"``."""
    if not isinstance(step_size, str):
        return step_size
    if step_size != "tune":
        raise ValueError(
            f"step_size must be 'tune', a float or a callable; got {step_size!r}"
        )
    return tune_step_sizes(
        log_lik,
        x,
        latent_dim=latent_dim,
        betas=betas,
        n_leapfrog=n_leapfrog,
        generator=generator,
    )


# --- AIS estimates of log p(x) -----------------------------------------------------


@dataclass
class AISLogLikelihood:
    """AIS estimates of log p(x), one per data point.

    ``log_p`` (B,): log-mean-exp of the K chains' weights (forward), or minus the
    log-mean-exp of the reverse weights (reverse); ``log_w`` (K, B): every chain's log
    weight; ``step_sizes`` (n_betas,): the HMC step size at each beta;
    ``accept_rate``: the mean HMC acceptance over the run.
    """

    log_p: Tensor
    log_w: Tensor
    reverse: bool
    step_sizes: Tensor
    accept_rate: float

    def __repr__(self) -> str:
        kind = "reverse AIS" if self.reverse else "AIS"
        K, B = self.log_w.shape
        return (
            f"{kind}: mean log p(x) = {float(self.log_p.mean()):.4f} nats ({B} points, "
            f"{K} chains each, {len(self.step_sizes)} betas, acceptance "
            f"{self.accept_rate:.2f})"
        )


def ais_log_likelihood(
    log_lik: LogLik,
    x: Tensor,
    *,
    latent_dim: int,
    n_betas: int = 500,
    betas: Tensor | None = None,
    n_chains: int = 16,
    n_leapfrog: int = 10,
    step_size: float | str | Callable[[float], float] = "tune",
    reverse: bool = False,
    z_init: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISLogLikelihood:
    """Estimate log p(x) = log int p(z) p(x | z) dz for each row of x by AIS over a
    :class:`DecoderPath` (Wu et al. 2017), with the one :func:`dgmlib.mcmc.ais`.

    Forward (from the prior): a stochastic lower bound on log p(x). ``reverse=True``
    runs from ``z_init`` (B, q), an exact posterior sample for each x (for data
    simulated from the model, the z it was made from; repeated for the K chains)
    back to the prior: a stochastic upper bound (Grosse et al. 2015). Started
    anywhere else (the prior, an encoder's mean) the reverse estimate is no bound.

    Parameters
    ----------
    log_lik : callable (x (n, D), z (n, q)) -> (n,)
        log p(x | z): :func:`gaussian_decoder`, :func:`bernoulli_decoder` or any
        function differentiable in z.
    n_betas, betas : the schedule: ``betas`` from 0 to 1, or else ``n_betas`` values
        of the sigmoidal schedule (:func:`sigmoid_betas`).
    step_size : "tune" (a pilot run, :func:`tune_step_sizes`), a float, or a
        callable beta -> float.
    """
    _check_x(x)
    _check_latent_dim(latent_dim)
    _check_chains(n_chains)
    if betas is None:
        betas = sigmoid_betas(n_betas)
    schedule = torch.tensor(_check_betas(betas, None), dtype=torch.float64)
    if reverse:
        if z_init is None:
            raise ValueError(
                "reverse AIS needs z_init (B, q): an exact posterior sample for each "
                "x, e.g. the z that simulate_decoder made x from"
            )
        _check_z(z_init, x, latent_dim)
    step_size = _resolve_step_size(
        step_size, log_lik, x, latent_dim, schedule, n_leapfrog, generator
    )
    path = DecoderPath(
        log_lik, x, latent_dim, n_chains, step_size=step_size, n_leapfrog=n_leapfrog
    )
    init = z_init.repeat(n_chains, 1) if reverse else None  # row k * B + b: z[b]
    K, B = n_chains, len(x)
    # [maths:likelihood.ais]
    res = ais(
        path,
        betas=schedule,
        n_chains=K * B,
        reverse=reverse,
        init_v=init,
        generator=generator,
    )  # one AIS loop for every model (dgmlib.mcmc)
    log_w = res.log_w.reshape(K, B)  # chain k of data point b at [k, b]
    log_p = -log_mean_exp(log_w) if reverse else log_mean_exp(log_w)  # (B,)
    # [/maths:likelihood.ais]
    step_sizes = torch.tensor([path.step_size_at(b) for b in schedule.tolist()])
    return AISLogLikelihood(
        log_p=log_p.to(dtype=x.dtype, device=x.device),
        log_w=log_w.to(dtype=x.dtype, device=x.device),
        reverse=reverse,
        step_sizes=step_sizes.to(torch.float64),
        accept_rate=float(path.n_accept) / max(path.n_proposed, 1),
    )


@dataclass
class BDMCResult:
    """Bidirectional Monte Carlo (Grosse et al. 2015): ``lower`` (B,) by forward AIS
    and ``upper`` (B,) by reverse AIS from the exact latents; the true log p(x) lies
    between them in expectation, and ``gap`` bounds the error of either.
    """

    lower: Tensor
    upper: Tensor

    @property
    def gap(self) -> float:
        """mean(upper - lower), in nats."""
        return float((self.upper - self.lower).mean())

    def __repr__(self) -> str:
        return (
            f"BDMC: {float(self.lower.mean()):.4f} <= log p(x) <= "
            f"{float(self.upper.mean()):.4f} nats (gap {self.gap:.4f}, "
            f"{len(self.lower)} points)"
        )


def bdmc(
    log_lik: LogLik,
    x: Tensor,
    z: Tensor,
    *,
    latent_dim: int,
    n_betas: int = 500,
    n_chains: int = 16,
    n_leapfrog: int = 10,
    step_size: float | str | Callable[[float], float] = "tune",
    generator: torch.Generator | None = None,
) -> BDMCResult:
    """The BDMC sandwich on data (x, z) simulated from the model
    (:func:`simulate_decoder`): forward AIS, a stochastic lower bound on log p(x), and
    reverse AIS from z, a stochastic upper bound, with the same schedule and the same
    (tuned once) step sizes in both directions.
    """
    _check_x(x)
    _check_latent_dim(latent_dim)
    _check_z(z, x, latent_dim)
    schedule = sigmoid_betas(n_betas)
    step_size = _resolve_step_size(
        step_size, log_lik, x, latent_dim, schedule, n_leapfrog, generator
    )
    kw = dict(
        latent_dim=latent_dim,
        betas=schedule,
        n_chains=n_chains,
        n_leapfrog=n_leapfrog,
        step_size=step_size,
        generator=generator,
    )
    # [maths:likelihood.bdmc]
    lower = ais_log_likelihood(log_lik, x, **kw).log_p  # from the prior
    upper = ais_log_likelihood(log_lik, x, reverse=True, z_init=z, **kw).log_p
    # [/maths:likelihood.bdmc]
    return BDMCResult(lower, upper)


# --- small estimators --------------------------------------------------------------


_MAX_ENTRIES = 2**26  # about 64M distances in memory at once


def nearest_neighbours(
    queries: Tensor, reference: Tensor, k: int = 1
) -> tuple[Tensor, Tensor]:
    """The k nearest rows of ``reference`` (N, D) to each row of ``queries`` (Q, D),
    by Euclidean distance (§20.14, figure 16.1: a sample beside its nearest training
    examples shows whether a model copies them). Returns (distances (Q, k), indices
    (Q, k)), nearest first. Computed in blocks of at most ~64M distances.
    """
    if (
        queries.ndim != 2
        or reference.ndim != 2
        or queries.shape[1] != reference.shape[1]
    ):
        raise ValueError(
            "nearest_neighbours needs queries (Q, D) and reference (N, D) with one "
            f"D; got {tuple(queries.shape)} and {tuple(reference.shape)}. Flatten "
            "images first: x.flatten(1)"
        )
    N = len(reference)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= N:
        raise ValueError(
            f"k must be an int in [1, {N}] (the reference size); got {k!r}"
        )
    reference = reference.to(queries.dtype)
    cols = min(N, _MAX_ENTRIES)
    rows = max(1, _MAX_ENTRIES // cols)
    dist, idx = [], []
    for i in range(0, len(queries), rows):
        q = queries[i : i + rows]  # (r, D)
        best_d = q.new_empty(len(q), 0)
        best_i = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
        for j in range(0, N, cols):
            # [maths:likelihood.nearest]
            d = torch.cdist(q, reference[j : j + cols])  # (r, c) ||q - r||
            cand_d = torch.cat([best_d, d], 1)
            cols_j = j + torch.arange(d.shape[1], device=q.device).expand_as(d)
            cand_i = torch.cat([best_i, cols_j], 1)
            best_d, pos = cand_d.topk(min(k, cand_d.shape[1]), dim=1, largest=False)
            best_i = cand_i.gather(1, pos)  # nearest first
            # [/maths:likelihood.nearest]
        dist.append(best_d)
        idx.append(best_i)
    return torch.cat(dist), torch.cat(idx)


def exact_log_likelihood(model, x: Tensor) -> Tensor:
    """Exact log p(x), (B, D) -> (B,): for a BernoulliRBM, -F(x) - log Z with log Z by
    enumerating the smaller layer (:func:`dgmlib.exact.log_partition`; min(D, H) <=
    24); for any model with a ``log_prob`` method (NADE, flows, mixtures), that.
    """
    from dgmlib.energy.rbm import BernoulliRBM
    from dgmlib.exact import log_partition

    if isinstance(model, BernoulliRBM):
        n_enum = min(model.W.shape)
        if n_enum > 24:
            raise ValueError(
                f"exact log p of an RBM enumerates 2**{n_enum} states of its smaller "
                f"layer (shape {tuple(model.W.shape)}); that is too many (limit 24): "
                "use ais (dgmlib.evaluate.ais) for log Z instead"
            )
        # [maths:likelihood.exact]
        log_z = log_partition(model)  # float64, by enumeration
        log_p = -model.free_energy(x).double() - log_z  # (B,)
        # [/maths:likelihood.exact]
        return log_p.to(model.W.dtype)
    if callable(getattr(model, "log_prob", None)):
        return model.log_prob(x)
    raise ValueError(
        "exact_log_likelihood needs a BernoulliRBM (small enough to enumerate) or a "
        f"model with a log_prob(x) method; got {type(model).__name__}. For latent "
        "variable models use ais_log_likelihood or iwae_bound"
    )


# --- checks ------------------------------------------------------------------------


def _check_x(x) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
        got = (
            f"shape {tuple(x.shape)}, {x.dtype}"
            if isinstance(x, Tensor)
            else type(x).__name__
        )
        raise ValueError(
            f"x must be a floating-point tensor of shape (B, D); got {got}. Flatten "
            "images (x.flatten(1)) and add a batch dimension for one point (x[None])"
        )


def _check_latent_dim(latent_dim) -> None:
    if (
        isinstance(latent_dim, bool)
        or not isinstance(latent_dim, int)
        or latent_dim < 1
    ):
        raise ValueError(
            f"latent_dim must be the number q of latent dimensions, an int >= 1; got "
            f"{latent_dim!r}"
        )


def _check_chains(n, what: str = "n_chains") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be an int >= 1; got {n!r}")


def _check_step(eps: float) -> float:
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(
            f"the HMC step size must be a finite float > 0; got {eps!r}. Use "
            "step_size='tune' to pick one per beta"
        )
    return float(eps)


def _check_z(z, x: Tensor, latent_dim: int) -> None:
    want = (len(x), latent_dim)
    if not isinstance(z, Tensor) or tuple(z.shape) != want:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(
            f"z must hold one exact posterior sample per data point, shape {want} "
            f"(B, latent_dim); got {got}"
        )
