"""Gradients of expectations over random operations (§20.9): reparametrization,
REINFORCE with baselines, and relaxed (Gumbel-softmax / Concrete) samples.

We want the gradient of an expected cost with respect to the parameters of the
distribution the expectation is taken over, ∇_ω E_{y ~ p(y | ω)}[J(y)].

Notation (the book's symbols -> names here):

- ``params``: ω, the parameters of p(y | ω) (and its inputs), any shape S, float.
- ``z``: noise from a fixed distribution p(z) (standard normal, Gumbel, logistic).
- ``y``: a sample; y = g(z; ω) when reparametrized (the book's f(z; ω), eq. 20.57).
- ``f``: J, the cost; ``f(y)`` returns one value per sample, shape (n,).
- ``scores``: ∂ log p(y | ω) / ∂ω per sample, shape (n, *S) (eq. 20.61).
- ``b``: a baseline subtracted from J (eqs. 20.66–20.69).
- ``temperature``: τ, of a relaxed sample (τ -> 0: exact, discrete samples).

Public API: :func:`reparam_grad`, :func:`reinforce_grad` (with the baselines
:class:`ConstantBaseline`, :class:`MovingAverageBaseline`, :class:`OptimalBaseline`,
:class:`VarianceNormalization` and :func:`optimal_baseline`), :func:`gumbel_max`,
:func:`relaxed_categorical`, :func:`relaxed_bernoulli`, :func:`sample_gumbel`.

Both estimators return a :class:`GradientEstimate` that keeps every *per-sample*
gradient, shape (n, *S), so that its mean, standard error and variance can be measured:
both are unbiased, and they differ, often by orders of magnitude, in variance.

The per-sample gradients ∂J(y_i)/∂ω come from one graph with a double-backward trick:
for values v (n,) with Jacobian A = ∂v/∂ω (n, P), ``g = autograd.grad(v, ω,
grad_outputs=u, create_graph=True)`` is g = Aᵀu, linear in u, so ∂g_j/∂u is column j of
A. This costs P extra backward passes (P = number of parameters, small here) and lets
``sample_fn`` and ``f`` be any differentiable PyTorch code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import distributions as D

__all__ = [
    "GradientEstimate",
    "reparam_grad",
    "reinforce_grad",
    "Baseline",
    "ConstantBaseline",
    "MovingAverageBaseline",
    "OptimalBaseline",
    "VarianceNormalization",
    "optimal_baseline",
    "sample_gumbel",
    "gumbel_max",
    "relaxed_categorical",
    "relaxed_bernoulli",
]


# --- the result of an estimator -------------------------------------------------------
@dataclass
class GradientEstimate:
    """Per-sample gradient estimates of ∇_ω E[J(y)] and their summaries.

    Attributes
    ----------
    per_sample : Tensor, shape (n, *S)
        One unbiased estimate per sample y_i (S = ``params.shape``); their average is
        the Monte Carlo estimate (eq. 20.62 for REINFORCE).
    """

    per_sample: Tensor

    @property
    def n(self) -> int:
        """Number of samples n."""
        return self.per_sample.shape[0]

    @property
    def mean(self) -> Tensor:
        """The estimate: the average of the per-sample gradients, shape S."""
        return self.per_sample.mean(0)

    @property
    def variance(self) -> Tensor:
        """Per-sample variance (unbiased, divides by n - 1), shape S; Var(mean) =
        variance / n.
        """
        if self.n < 2:
            raise ValueError(
                "the variance of a GradientEstimate needs n_samples >= 2; got 1"
            )
        return self.per_sample.var(0)

    @property
    def stderr(self) -> Tensor:
        """Standard error of :attr:`mean`, sqrt(variance / n), shape S."""
        return (self.variance / self.n).sqrt()

    def z_score(self, exact: Tensor) -> Tensor:
        """(mean - exact) / stderr, shape S: about N(0, 1) for an unbiased estimator and
        large n.
        """
        exact = torch.as_tensor(
            exact, dtype=self.per_sample.dtype, device=self.per_sample.device
        )
        return (self.mean - exact) / self.stderr

    def __repr__(self) -> str:
        mean = ", ".join(f"{v:.4g}" for v in self.mean.flatten()[:6].tolist())
        se = (
            ", ".join(f"{v:.2g}" for v in self.stderr.flatten()[:6].tolist())
            if self.n > 1
            else "n/a"
        )
        more = ", ..." if self.per_sample[0].numel() > 6 else ""
        return f"GradientEstimate(n={self.n}, mean=[{mean}{more}], stderr=[{se}{more}])"


# --- helpers --------------------------------------------------------------------------
def _leaf(params: Tensor, who: str) -> Tensor:
    """A detached copy of ``params`` that requires grad (the caller's .grad is never
    touched).
    """
    if not isinstance(params, Tensor) or not params.is_floating_point():
        kind = (
            type(params).__name__
            if not isinstance(params, Tensor)
            else f"Tensor of dtype {params.dtype}"
        )
        raise ValueError(
            f"{who} expects params as a floating-point Tensor; got {kind}. "
            "Use e.g. torch.tensor([1.0, 0.5], dtype=torch.float64)."
        )
    if params.numel() == 0:
        raise ValueError(
            f"{who} expects at least one parameter; got params of shape "
            f"{tuple(params.shape)}"
        )
    return params.detach().clone().requires_grad_(True)


def _check_n(n_samples: int, who: str) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"{who} expects n_samples as an int >= 1; got {n_samples!r}")
    return n_samples


def _values(f: Callable[[Tensor], Tensor], y: Tensor, n: int, who: str) -> Tensor:
    """Evaluate the cost and check it returns one value per sample, shape (n,)."""
    v = f(y)
    if not isinstance(v, Tensor) or v.shape != (n,):
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise ValueError(
            f"{who}: f(y) must return one value per sample, shape ({n},); got {got}. "
            f"Reduce over the other dimensions, e.g. f = lambda y: (y ** 2).sum(-1)"
        )
    return v


def _per_sample_jacobian(values: Tensor, w: Tensor) -> Tensor:
    """∂values_i/∂w for every i: (n,) values, leaf w of shape S -> (n, *S).

    Double-backward trick: with A = ∂values/∂w (n, P), g = Aᵀu is linear in u, so
    ∂g_j/∂u = A[:, j].
    """
    n = values.shape[0]
    zeros = values.new_zeros((n, *w.shape))
    if not values.requires_grad:
        return zeros
    u = torch.zeros_like(values, requires_grad=True)  # (n,)
    (g,) = torch.autograd.grad(
        values, w, grad_outputs=u, create_graph=True, allow_unused=True
    )
    if (
        g is None or not g.requires_grad
    ):  # values do not depend on w (or only through constants)
        return zeros
    g = g.reshape(-1)  # (P,)
    cols = []
    for j in range(g.numel()):
        (col,) = torch.autograd.grad(g[j], u, retain_graph=True, allow_unused=True)
        cols.append(col if col is not None else values.new_zeros(n))
    return torch.stack(cols, dim=1).reshape(n, *w.shape)


# --- the reparametrization trick (eqs. 20.54-20.57) -----------------------------------
def reparam_grad(
    f: Callable[[Tensor], Tensor],
    params: Tensor,
    sample_fn: Callable[..., Tensor],
    n_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> GradientEstimate:
    """Reparametrization (pathwise) estimate of ∇_ω E_{p(y|ω)}[J(y)] (eqs. 20.55–20.57).

    The sample is written as a differentiable function of the parameters and of noise
    from a fixed distribution, y = g(z; ω) with z ~ p(z) (the book's f(z; ω), eq. 20.57;
    here ``f`` is the cost J and ``sample_fn`` is g; y = μ + σz for a Gaussian, eq.
    20.55), so that

        ∇_ω E_z[J(g(z; ω))] = E_z[∇_ω J(g(z; ω))] ≈ (1/n) Σ_i ∇_ω J(g(z_i; ω)),

    and back-propagation goes through the sample.

    Parameters
    ----------
    f : callable
        The cost J: ``f(y)`` maps samples (n, ...) to values (n,), differentiably.
    params : Tensor, shape S
        ω, floating point. A detached copy is differentiated (``params.grad`` is
        untouched).
    sample_fn : callable
        ``sample_fn(params, n_samples, generator=generator)`` returns n samples (n, ...)
        that depend differentiably on ``params``, e.g. ``lambda w, n, generator: w[0] +
        w[1] * torch.randn(n, generator=generator, dtype=w.dtype)``.
    n_samples : int
        n >= 1.
    generator : torch.Generator, optional
        Source of the noise z (keyword-only).

    Returns
    -------
    GradientEstimate
        ``per_sample`` of shape (n, *S): ∇_ω J(g(z_i; ω)) for each i.
    """
    who = "reparam_grad"
    n = _check_n(n_samples, who)
    w = _leaf(params, who)
    with torch.enable_grad():
        # [maths:gradients.reparam_grad]
        y = sample_fn(w, n, generator=generator)  # y = g(z; ω), eq. 20.57
        _check_reparam_samples(y, n, who)
        values = _values(f, y, n, who)  # (n,) J(y_i)
        per_sample = _per_sample_jacobian(values, w)  # (n, *S) ∇_ω J(g(z_i; ω))
        # [/maths:gradients.reparam_grad]
    return GradientEstimate(per_sample.detach())


def _check_reparam_samples(y: Tensor, n: int, who: str) -> None:
    """``y`` holds n samples (n, ...) that depend differentiably on the parameters."""
    if not isinstance(y, Tensor) or y.ndim == 0 or y.shape[0] != n:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(
            f"{who}: sample_fn(params, {n}, generator=...) must return {n} "
            f"samples, shape ({n}, ...); got {got}"
        )
    if not y.requires_grad:
        raise ValueError(
            f"{who}: the samples from sample_fn do not depend differentiably on "
            "params. Reparametrize them as y = g(z; params) with z drawn from "
            "fixed noise (e.g. mu + sigma * torch.randn(...)); for discrete "
            "samples use reinforce_grad, or relaxed_categorical / "
            "relaxed_bernoulli."
        )


# --- baselines (eqs. 20.63-20.69) -----------------------------------------------------
class Baseline:
    """A baseline b for REINFORCE: the estimator uses the learning signal (J(y) - b).

    Because E_{p(y)}[∂ log p(y)/∂ω] = 0 (eqs. 20.63–20.65), subtracting any b that does
    not depend on the current sample y keeps the estimator unbiased (eqs. 20.66–20.67).
    This base class is the zero baseline. Subclasses override :meth:`value` (and
    :meth:`update` when they learn from past batches); :class:`VarianceNormalization`
    overrides :meth:`signal`.

    The protocol used by :func:`reinforce_grad`:

    * ``signal(values, scores)`` -> learning signal, broadcastable to (n, *S), computed
    from
      the state *before* this batch;
    * ``update(values, scores)`` -> learn from this batch, after the estimate is made.
    """

    def value(self, values: Tensor, scores: Tensor) -> Tensor | float:
        """The baseline b: a scalar, or one value per parameter (shape S, eq. 20.68)."""
        return 0.0

    def signal(self, values: Tensor, scores: Tensor) -> Tensor:
        """Learning signal J(y_i) - b, shape (n, *S) (values (n,), scores (n, *S))."""
        b = torch.as_tensor(
            self.value(values, scores), dtype=values.dtype, device=values.device
        )
        param_shape = scores.shape[1:]
        if b.ndim > 0 and b.shape != param_shape:
            raise ValueError(
                f"{type(self).__name__}: a baseline must be a scalar or have the "
                f"shape of params {tuple(param_shape)}; got shape {tuple(b.shape)}"
            )
        return values.reshape(-1, *([1] * len(param_shape))) - b

    def update(self, values: Tensor, scores: Tensor) -> None:
        """Learn from this batch (values (n,), scores (n, *S)); nothing for a fixed
        baseline.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ConstantBaseline(Baseline):
    """A fixed baseline b: a number, or one value per parameter (shape S).

    ``ConstantBaseline(optimal_baseline(J, scores, weights=p))`` with J, scores and p
    enumerated over every state is the exact optimal baseline of eq. 20.68.
    """

    def __init__(self, b: float | Tensor):
        b = (
            torch.as_tensor(b, dtype=torch.float64)
            if not isinstance(b, Tensor)
            else b.detach()
        )
        if not bool(torch.isfinite(b).all()):
            raise ValueError(f"ConstantBaseline needs a finite baseline; got {b}")
        self.b = b

    def value(self, values, scores):
        return self.b.to(device=values.device, dtype=values.dtype)

    def __repr__(self) -> str:
        return f"ConstantBaseline({self.b.tolist()})"


class MovingAverageBaseline(Baseline):
    """b = exponential moving average of the cost J over past batches (≈ E[J]).

    Parameters
    ----------
    decay : float in [0, 1)
        b <- decay * b + (1 - decay) * mean(J over the batch), after each estimate.
    init : float, optional
        The baseline before any batch was seen; ``None`` (default) uses 0 for the first
        batch and then sets b to that batch's mean.
    """

    def __init__(self, decay: float = 0.9, init: float | None = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1); got {decay}")
        self.decay = decay
        self.b = None if init is None else float(init)

    def value(self, values, scores):
        return 0.0 if self.b is None else self.b

    def update(self, values, scores):
        m = float(values.mean())
        self.b = m if self.b is None else self.decay * self.b + (1 - self.decay) * m

    def __repr__(self) -> str:
        return f"MovingAverageBaseline(decay={self.decay}, b={self.b})"


def optimal_baseline(
    values: Tensor, scores: Tensor, weights: Tensor | None = None
) -> Tensor:
    """The variance-minimizing baseline, one per parameter (eq. 20.68).

        b*_i = E[J(y) (∂ log p(y)/∂ω_i)²] / E[(∂ log p(y)/∂ω_i)²]

    Parameters
    ----------
    values : Tensor, shape (n,)
        J(y) at n samples or at every state y of an enumerated support.
    scores : Tensor, shape (n, *S)
        ∂ log p(y)/∂ω at the same y.
    weights : Tensor, shape (n,), optional
        p(y) for an enumerated support (gives the exact b*); default: equal weights (a
        Monte Carlo estimate from samples).

    Returns
    -------
    Tensor, shape S
        b*_i (0 where E[s_i²] = 0, i.e. where ω_i does not affect p).
    """
    if values.ndim != 1 or scores.ndim < 1 or scores.shape[0] != values.shape[0]:
        raise ValueError(
            f"optimal_baseline expects values (n,) and scores (n, *S); got "
            f"{tuple(values.shape)} and {tuple(scores.shape)}"
        )
    n = values.shape[0]
    if weights is None:
        weights = values.new_full((n,), 1.0 / n)
    elif weights.shape != (n,):
        raise ValueError(
            f"optimal_baseline expects weights of shape ({n},); got "
            f"{tuple(weights.shape)}"
        )
    # [maths:gradients.optimal_baseline]
    expand = (-1, *([1] * (scores.ndim - 1)))
    s2 = scores**2  # (n, *S)
    num = (weights.reshape(expand) * values.reshape(expand) * s2).sum(0)  # E[J s²]
    den = (weights.reshape(expand) * s2).sum(0)  # E[s²]
    return torch.where(
        den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(den)
    )  # eq. 20.68: b*_i = E[J s_i²] / E[s_i²]
    # [/maths:gradients.optimal_baseline]


class OptimalBaseline(Baseline):
    """The optimal per-parameter baseline of eq. 20.68, estimated from past batches.

    Keeps exponential moving averages of E[J s_i²] and E[s_i²] (s = ∂ log p/∂ω) and uses
    their ratio; only past batches enter, so the estimator stays unbiased.

    Parameters
    ----------
    decay : float in [0, 1)
        Weight of the past in both moving averages (0: the previous batch only).
    """

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1); got {decay}")
        self.decay = decay
        self.num = self.den = None

    def value(self, values, scores):
        if self.num is None:
            return 0.0
        return torch.where(
            self.den > 0,
            self.num / self.den.clamp_min(torch.finfo(self.den.dtype).tiny),
            torch.zeros_like(self.den),
        )

    def update(self, values, scores):
        expand = (-1, *([1] * (scores.ndim - 1)))
        s2 = scores**2
        num, den = (values.reshape(expand) * s2).mean(0), s2.mean(0)  # shape S
        if self.num is None:
            self.num, self.den = num, den
        else:
            self.num = self.decay * self.num + (1 - self.decay) * num
            self.den = self.decay * self.den + (1 - self.decay) * den

    def __repr__(self) -> str:
        return f"OptimalBaseline(decay={self.decay})"


class VarianceNormalization(Baseline):
    """Variance normalization (Mnih & Gregor, 2014): (J - b) / max(min_scale, sqrt(v)).

    ``v`` is a moving average over past batches of the squared centred learning signal
    (J - b)², b from the wrapped ``baseline``. Dividing by a number that does not depend
    on the current samples keeps the *direction* unbiased: the estimate is unbiased for
    ∇_ω E[J] / scale, an adaptive step size that puts the learning signal at unit scale
    whatever the units of J. ``scale`` holds the divisor used by the last
    :meth:`signal`.

    Parameters
    ----------
    baseline : Baseline, optional
        Centres the signal first (default: ``MovingAverageBaseline(decay)``).
    decay : float in [0, 1)
        Weight of the past in the moving average of (J - b)².
    min_scale : float > 0
        Never divide by less than this (1 in NVIL, so small signals are not amplified).
    """

    def __init__(
        self,
        baseline: Baseline | None = None,
        decay: float = 0.9,
        min_scale: float = 1.0,
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1); got {decay}")
        if not min_scale > 0:
            raise ValueError(f"min_scale must be > 0; got {min_scale}")
        self.inner = (
            MovingAverageBaseline(decay) if baseline is None else _as_baseline(baseline)
        )
        self.decay, self.min_scale = decay, float(min_scale)
        self.v: float | None = None
        self.scale = 1.0

    # [maths:gradients.VarianceNormalization]
    def signal(self, values, scores):
        self.scale = (
            max(self.min_scale, math.sqrt(self.v))
            if self.v is not None
            else self.min_scale
        )
        return self.inner.signal(values, scores) / self.scale

    def update(self, values, scores):
        m2 = float(
            (self.inner.signal(values, scores) ** 2).mean()
        )  # before the inner baseline moves
        self.v = m2 if self.v is None else self.decay * self.v + (1 - self.decay) * m2
        self.inner.update(values, scores)

    # [/maths:gradients.VarianceNormalization]

    def __repr__(self) -> str:
        args = f"{self.inner!r}, decay={self.decay}, min_scale={self.min_scale}"
        return f"VarianceNormalization({args})"


def _as_baseline(baseline) -> Baseline:
    if baseline is None:
        return Baseline()
    if isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, (int, float, Tensor)) and not isinstance(baseline, bool):
        return ConstantBaseline(baseline)
    raise ValueError(
        f"baseline must be None, a number, a Tensor (one value per parameter) or a "
        f"dgmlib.gradients.Baseline; got {type(baseline).__name__}"
    )


# --- REINFORCE (eqs. 20.59-20.62) -----------------------------------------------------
def _draw(
    dist: D.Distribution, n: int, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """n samples (n, *batch_shape, *event_shape) of a torch distribution, from
    ``generator``.

    ``like`` (the parameters) gives the dtype and device of the uniform noise of the
    fallback.
    """
    if isinstance(dist, D.Independent):
        return _draw(dist.base_dist, n, generator, like)
    shape = dist._extended_shape((n,))
    with torch.no_grad():
        if isinstance(dist, D.Bernoulli):
            p = dist.probs
            u = torch.rand(shape, generator=generator, dtype=p.dtype, device=p.device)
            return (u < p).to(p.dtype)  # P(u < p) = p
        if isinstance(dist, D.OneHotCategorical):
            logits = dist.logits
            idx = gumbel_max(logits, (n,), generator=generator)
            return F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
        if isinstance(dist, D.Categorical):
            return gumbel_max(dist.logits, (n,), generator=generator)
        if isinstance(dist, D.Normal):
            eps = torch.randn(
                shape, generator=generator, dtype=dist.loc.dtype, device=dist.loc.device
            )
            return dist.loc + dist.scale * eps
        dtype = like.dtype
        u = torch.rand(shape, generator=generator, dtype=dtype, device=like.device)
        try:
            return dist.icdf(
                u.clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)
            )  # inverse CDF
        except NotImplementedError:
            raise ValueError(
                f"reinforce_grad cannot draw from {type(dist).__name__} with a "
                "generator: supported are Bernoulli, Categorical, OneHotCategorical, "
                "Normal, Independent of these, and any distribution with an inverse "
                "CDF (icdf)"
            ) from None


def reinforce_grad(
    f: Callable[[Tensor], Tensor],
    distribution: Callable[[Tensor], D.Distribution],
    params: Tensor,
    n_samples: int,
    *,
    baseline: None | float | Tensor | Baseline = None,
    generator: torch.Generator | None = None,
) -> GradientEstimate:
    """REINFORCE (score-function, likelihood-ratio) estimate of ∇_ω E_{p(y|ω)}[J(y)].

    From ∇_ω Σ_y J(y) p(y) = Σ_y J(y) p(y) ∇_ω log p(y) (eqs. 20.59–20.61),

        ∇_ω E[J(y)] ≈ (1/n) Σ_i (J(y_i) - b) ∂ log p(y_i | ω)/∂ω,   y_i ~ p(y | ω)
        (eqs. 20.62, 20.69)

    which needs only samples and log p, never ∂J/∂y: it works for discrete y and for J
    that is not differentiable. Williams (1992).

    Parameters
    ----------
    f : callable
        The cost J: ``f(y)`` maps samples (n, ...) to values (n,). If ``f`` itself
        depends on ``params`` (through a closure), its own gradient E[∂J/∂ω] is added
        per sample.
    distribution : callable
        ``distribution(params)`` returns a ``torch.distributions.Distribution``
        p(y | ω); its components are independent, so log p(y) sums ``log_prob`` over
        every non-sample dimension. Sampled with ``generator``: Bernoulli, Categorical,
        OneHotCategorical, Normal, Independent of these, or any distribution with
        ``icdf``.
    params : Tensor, shape S
        ω, floating point. A detached copy is differentiated (``params.grad`` is
        untouched).
    n_samples : int
        n >= 1.
    baseline : None, float, Tensor of shape S, or Baseline, optional
        Subtracted from J (eqs. 20.66–20.69). A number or Tensor is a constant baseline;
        a :class:`Baseline` object is asked for the learning signal before the batch and
        updated after it (so stateful baselines learn across calls and stay unbiased).
    generator : torch.Generator, optional
        Source of the samples (keyword-only).

    Returns
    -------
    GradientEstimate
        ``per_sample`` of shape (n, *S): (J(y_i) - b) ∂ log p(y_i)/∂ω for each i.
    """
    who = "reinforce_grad"
    n = _check_n(n_samples, who)
    w = _leaf(params, who)
    bl = _as_baseline(baseline)
    with torch.enable_grad():
        dist = distribution(w)
        if not isinstance(dist, D.Distribution):
            raise ValueError(
                f"{who}: distribution(params) must return a "
                f"torch.distributions.Distribution; got {type(dist).__name__}. E.g. "
                "distribution = lambda w: Bernoulli(logits=w)"
            )
        # [maths:gradients.reinforce_grad]
        y = _draw(dist, n, generator, w)  # (n, *batch, *event)
        log_p = dist.log_prob(y).reshape(n, -1).sum(1)  # (n,) joint log p(y_i)
        scores = _per_sample_jacobian(log_p, w).detach()  # (n, *S), eq. 20.61
        values = _values(f, y, n, who)  # (n,)
        direct = _per_sample_jacobian(values, w) if values.requires_grad else None
    values = values.detach()
    signal = bl.signal(values, scores)  # (n, *S) or broadcastable
    per_sample = signal * scores  # eq. 20.69
    if direct is not None:
        per_sample = per_sample + direct.detach()
    bl.update(values, scores)
    # [/maths:gradients.reinforce_grad]
    return GradientEstimate(per_sample.detach())


# --- Gumbel-max and relaxed samples ---------------------------------------------------
def _check_logits(logits: Tensor, who: str, min_dim: int = 1) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        kind = (
            type(logits).__name__
            if not isinstance(logits, Tensor)
            else f"Tensor of dtype {logits.dtype}"
        )
        raise ValueError(f"{who} expects logits as a floating-point Tensor; got {kind}")
    if logits.ndim < min_dim:
        raise ValueError(
            f"{who} expects logits of shape (..., K) with the categories last; got a "
            "scalar. For one binary variable use relaxed_bernoulli, or "
            "logits.reshape(-1)."
        )
    if bool(torch.isnan(logits).any()):
        raise ValueError(f"{who}: logits contain NaN")


def _check_temperature(temperature, who: str) -> Tensor | float:
    t = temperature
    bad = (
        (not bool((t > 0).all()) or not bool(torch.isfinite(t).all()))
        if isinstance(t, Tensor)
        else (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or not (0 < t < math.inf)
        )
    )
    if bad:
        raise ValueError(
            f"{who}: temperature must be a finite number > 0 (the relaxed sample "
            f"becomes one-hot only in the limit temperature -> 0); got {t!r}"
        )
    return t


def sample_gumbel(
    shape,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard Gumbel noise G = -log(-log U), U ~ Uniform(0, 1), of the given shape."""
    dtype = dtype or torch.get_default_dtype()
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(dtype).tiny)))


def gumbel_max(
    logits: Tensor,
    sample_shape: tuple[int, ...] = (),
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Exact categorical samples by the Gumbel-max trick: argmax_k (logits_k + G_k).

    P(argmax_k (l_k + G_k) = j) = exp(l_j) / Σ_k exp(l_k) exactly, for i.i.d. standard
    Gumbel G.

    Parameters
    ----------
    logits : Tensor, shape (..., K)
        Unnormalized log-probabilities (-inf marks a category of probability 0).
    sample_shape : tuple of int
        Leading shape of independent draws.

    Returns
    -------
    LongTensor, shape (*sample_shape, ...)
        Category indices in [0, K).
    """
    _check_logits(logits, "gumbel_max")
    sample_shape = tuple(sample_shape)
    # [maths:gradients.gumbel_max]
    g = sample_gumbel(
        (*sample_shape, *logits.shape),
        generator=generator,
        dtype=logits.dtype,
        device=logits.device,
    )  # G = -log(-log U)
    return torch.argmax(logits.detach() + g, dim=-1)  # argmax_k (ℓ_k + G_k)
    # [/maths:gradients.gumbel_max]


def relaxed_categorical(
    logits: Tensor,
    temperature: float | Tensor,
    sample_shape: tuple[int, ...] = (),
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Relaxed one-hot samples: softmax((logits + G) / τ), the Gumbel-softmax / Concrete
    distribution.

    Jang et al. (2017); Maddison et al. (2017). Each sample lies inside the probability
    simplex and is a differentiable function of ``logits`` (a reparametrization, eq.
    20.57); its argmax is an exact categorical sample (:func:`gumbel_max` with the same
    noise). As τ -> 0 the sample tends to that one-hot vector; as τ -> ∞ it tends to the
    uniform (1/K, ..., 1/K).

    Parameters
    ----------
    logits : Tensor, shape (..., K)
        Unnormalized log-probabilities, categories last.
    temperature : float or Tensor > 0
        τ (a Tensor must broadcast against (*sample_shape, ..., K)).
    sample_shape : tuple of int
        Leading shape of independent draws.

    Returns
    -------
    Tensor, shape (*sample_shape, ..., K)
        Points on the simplex (non-negative, summing to 1 over the last dimension).
    """
    who = "relaxed_categorical"
    _check_logits(logits, who)
    tau = _check_temperature(temperature, who)
    # [maths:gradients.relaxed_categorical]
    g = sample_gumbel(
        (*tuple(sample_shape), *logits.shape),
        generator=generator,
        dtype=logits.dtype,
        device=logits.device,
    )  # G = -log(-log U)
    return torch.softmax((logits + g) / tau, dim=-1)  # softmax((ℓ + G) / τ)
    # [/maths:gradients.relaxed_categorical]


def relaxed_bernoulli(
    logits: Tensor,
    temperature: float | Tensor,
    sample_shape: tuple[int, ...] = (),
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Relaxed binary samples (binary Concrete): σ((logits + log U - log(1 - U)) / τ).

    The two-category case of :func:`relaxed_categorical` (logistic noise is the
    difference of two Gumbels). Thresholding at 1/2 gives an exact Bernoulli(σ(logits))
    sample; τ -> 0 tends to it.

    Parameters
    ----------
    logits : Tensor, any shape
        Log-odds of each binary variable.
    temperature : float or Tensor > 0
        τ.
    sample_shape : tuple of int
        Leading shape of independent draws.

    Returns
    -------
    Tensor, shape (*sample_shape, *logits.shape)
        Values in [0, 1].
    """
    who = "relaxed_bernoulli"
    _check_logits(logits, who, min_dim=0)
    tau = _check_temperature(temperature, who)
    dtype = logits.dtype
    u = torch.rand(
        (*tuple(sample_shape), *logits.shape),
        generator=generator,
        dtype=dtype,
        device=logits.device,
    )
    u = u.clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)
    noise = torch.log(u) - torch.log1p(-u)  # standard logistic
    return torch.sigmoid((logits + noise) / tau)
