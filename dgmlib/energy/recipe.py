"""The training recipe shared by the Boltzmann machines' fits (fit_rbm, fit_dbm).

Stochastic maximum likelihood (Algorithm 18.3 for the RBM, Algorithm 20.1 for the DBM)
gives an ascent direction ``g`` for every parameter ``theta``; the recipe turns it into
an update::

    eps_t = lr * schedule(t)                     t = progress in [0, 1]
    v    <- momentum(t) * v + eps_t * (g - lambda * theta)    (lambda: weights only)
    theta <- theta + v

Where the defaults come from:

* **Learning rate and its decay.** With a constant rate the persistent chains of SML
  lag further and further behind a model whose energy landscape sharpens, and the
  likelihood first rises and then falls (Fischer & Igel 2010, "Empirical analysis of
  the divergence of Gibbs sampling based learning algorithms for restricted Boltzmann
  machines"); a rate decaying to zero lets the chains catch up. Salakhutdinov & Murray
  (2008) train their MNIST RBMs with a rate decaying linearly from 0.05 towards zero,
  which is what ``benchmarks/rbm.py`` did by hand: :func:`linear_decay` is the default
  schedule, 0.05 the default rate of ``fit_rbm``.
* **Momentum.** Hinton (2010), "A practical guide to training restricted Boltzmann
  machines", §9: 0.5 at the start, 0.9 once the large initial changes are over; the
  velocity multiplies the long-run step by 1 / (1 - momentum), so a fit that uses it
  scales ``lr`` down to keep the same effective rate.
* **Weight decay.** Hinton (2010), §10: an L2 penalty of 1e-4 (0.0001) on the weights,
  not the biases; Salakhutdinov & Murray (2008) and the benchmark use the same value.
* **Visible biases from the data.** Hinton (2010), §8.1: b_i = log(p_i / (1 - p_i))
  with p_i the fraction of training vectors in which unit i is on
  (:func:`visible_bias_from_data`).

Everything here is a small pure function or a tiny class with no knowledge of the model:
the fits call :func:`resolve_schedule` once and :class:`MomentumSGD` per update.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..train import History, fit

__all__ = [
    "fit_on_budget",
    "constant",
    "linear_decay",
    "cosine_decay",
    "resolve_schedule",
    "momentum_ramp",
    "resolve_momentum",
    "MomentumSGD",
    "Progress",
    "visible_bias_from_data",
]

Schedule = Callable[[float], float]


# --- learning-rate schedules: multipliers of the base rate, functions of progress t ---
def constant(t: float) -> float:
    """1 for every t: the rate stays ``lr`` (plain SGD; Algorithm 18.3 as written)."""
    return 1.0


def linear_decay(t: float) -> float:
    """1 - t: from ``lr`` at the start to 0 at the end of the budget (Salakhutdinov &
    Murray 2008's schedule; the default).
    """
    # [maths:recipe.linear_decay]
    return max(0.0, 1.0 - t)  # eps_t = lr (1 - t), t the fraction of the budget spent
    # [/maths:recipe.linear_decay]


def cosine_decay(t: float) -> float:
    """(1 + cos(pi t)) / 2: from 1 to 0, flatter at both ends than linear decay."""
    t = min(max(t, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


_SCHEDULES = {"constant": constant, "linear": linear_decay, "cosine": cosine_decay}


def resolve_schedule(schedule: str | Schedule) -> Schedule:
    """A schedule by name (``"constant"``, ``"linear"``, ``"cosine"``) or a callable
    ``t -> multiplier`` of the progress ``t in [0, 1]``.
    """
    if callable(schedule):
        return schedule
    if schedule not in _SCHEDULES:
        raise ValueError(
            f"schedule must be one of {sorted(_SCHEDULES)} or a callable t -> "
            f"multiplier of lr (t in [0, 1]); got {schedule!r}"
        )
    return _SCHEDULES[schedule]


# --- momentum -------------------------------------------------------------------------
def momentum_ramp(
    start: float = 0.5, end: float = 0.9, at: float = 0.05
) -> Callable[[float], float]:
    """Hinton (2010, §9)'s momentum: ``start`` until progress ``at``, then ``end``."""
    if not (0 <= start < 1 and 0 <= end < 1):
        raise ValueError(f"momentum must be in [0, 1); got start={start}, end={end}")
    return lambda t: start if t < at else end


def resolve_momentum(momentum: float | Callable[[float], float]):
    """A constant momentum in [0, 1) or a callable ``t -> momentum``."""
    if callable(momentum):
        return momentum
    if not 0 <= momentum < 1:
        raise ValueError(
            f"momentum must be in [0, 1) (or a callable of progress); got {momentum}"
        )
    m = float(momentum)
    return lambda t: m


# --- the update -----------------------------------------------------------------------
class MomentumSGD:
    """Ascent with momentum and L2 weight decay on a list of tensors, in place.

    ``decay[i]`` says whether tensor i is a weight (decayed) or a bias (not). The
    readable update is :meth:`step`; a fit that accumulates its ascent direction
    straight into the velocities (fused products, no D x H temporaries) calls
    :meth:`begin`, adds ``lr * g`` into ``velocities[i]`` itself, then :meth:`apply`.
    Both give the same numbers (tests/test_rbm_recipe.py).
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        decay: Sequence[bool] | None = None,
        *,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ):
        self.params = list(params)
        self.decay = [True] * len(self.params) if decay is None else list(decay)
        if len(self.decay) != len(self.params):
            raise ValueError(
                f"decay needs one flag per tensor: {len(self.params)} tensors, "
                f"{len(self.decay)} flags"
            )
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocities = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def begin(self, lr: float) -> list[Tensor]:
        """v <- momentum * v - lr * lambda * theta (weights); returns the velocities."""
        for p, v, d in zip(self.params, self.velocities, self.decay):
            v.mul_(self.momentum)
            if d and self.weight_decay:
                v.add_(p, alpha=-lr * self.weight_decay)
        return self.velocities

    @torch.no_grad()
    def apply(self) -> None:
        """theta <- theta + v."""
        for p, v in zip(self.params, self.velocities):
            p.add_(v)

    @torch.no_grad()
    def step(self, ascents: Sequence[Tensor], lr: float) -> None:
        """v <- momentum v + lr (g - lambda theta); theta <- theta + v (the readable
        update).
        """
        for p, v, g, d in zip(self.params, self.velocities, ascents, self.decay):
            # [maths:recipe.update]
            g = g - self.weight_decay * p if d else g  # weight decay: weights only
            v.mul_(self.momentum).add_(g, alpha=lr)  # v <- m v + eps_t (g - lambda p)
            p.add_(v)  # theta <- theta + v
            # [/maths:recipe.update]


# --- progress: the t of the schedules ------------------------------------------------
class Progress:
    """t in [0, 1] over a budget of updates (``total_steps``) or of seconds
    (``seconds``, measured from construction); ``done`` once the budget is spent.
    """

    def __init__(self, total_steps: int | None = None, seconds: float | None = None):
        if (total_steps is None) == (seconds is None):
            raise ValueError("Progress needs exactly one of total_steps or seconds")
        if seconds is not None and seconds <= 0:
            raise ValueError(f"seconds must be > 0; got {seconds}")
        self.total_steps, self.seconds = total_steps, seconds
        self.steps, self.t0 = 0, time.perf_counter()

    def __call__(self) -> float:
        if self.seconds is not None:
            return min(1.0, (time.perf_counter() - self.t0) / self.seconds)
        return min(1.0, self.steps / max(1, self.total_steps))

    def tick(self) -> None:
        self.steps += 1

    @property
    def done(self) -> bool:
        return self() >= 1.0


def visible_bias_from_data(v: Tensor, *, smoothing: float = 0.01) -> Tensor:
    """b_i = log(p_i / (1 - p_i)) of the smoothed pixel means p_i (Hinton 2010, §8.1):
    the biases of the factorial model that matches the data's marginals; (N, D) -> (D,).
    """
    p = (v.mean(0) + smoothing) / (1 + 2 * smoothing)
    return torch.log(p) - torch.log1p(-p)


# --- the budgeted loop both fits run -------------------------------------------------
def fit_on_budget(
    step: Callable[[Tensor], dict[str, float]],
    data: Tensor,
    set_rates: Callable[[float], None],
    *,
    epochs: int | None,
    seconds: float | None,
    batch_size: int,
    generator: torch.Generator | None,
    desc: str,
    quiet: bool | None,
) -> tuple[History, Progress]:
    """Run ``step`` over minibatches of ``data`` for ``epochs`` passes (default 1) or
    for ``seconds`` (then ``epochs`` caps the passes); before each update
    ``set_rates(t)`` sets the learning rate and momentum for the fraction t of the
    budget spent. Returns the :class:`~dgmlib.train.History` and the
    :class:`Progress` (``progress.steps`` updates were made).
    """
    n_batches = -(-len(data) // batch_size)
    if seconds is None:
        epochs = 1 if epochs is None else epochs
        progress = Progress(total_steps=epochs * n_batches)
    else:
        epochs = 10**9 if epochs is None else epochs
        progress = Progress(seconds=seconds)

    def scheduled(v: Tensor) -> dict[str, float]:
        set_rates(progress())
        out = step(v)
        progress.tick()
        return out

    hist = fit(
        scheduled,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc=desc,
        quiet=quiet,
        callback=None if seconds is None else (lambda i, row: progress.done),
    )
    return hist, progress
