"""One small fit loop shared by every chapter.

The loop knows nothing about models: it calls ``step(batch)`` (or ``step()`` when there
is no data, e.g. for EM iterations), records what the step returns, shows a progress bar
and stops with the step number the moment a recorded value is NaN or infinite.

    history = fit(lambda v: cd_step(rbm, v, opt), data, epochs=5, batch_size=100,
    generator=g) history["loss"]          # one value per step
    history.epoch_mean("loss")
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["History", "NonFiniteError", "fit", "minibatches", "progress"]


class NonFiniteError(FloatingPointError):
    """A training step produced NaN or inf. The message names the step and the value."""


@dataclass
class History:
    """Values recorded by :func:`fit`: ``history[name]`` is a list with one entry per
    step.
    """

    values: dict[str, list[float]] = field(default_factory=dict)
    epoch_ends: list[int] = field(default_factory=list)  # step count after each epoch

    def record(self, row: Mapping[str, float]) -> None:
        for name, value in row.items():
            self.values.setdefault(name, []).append(float(value))

    def __getitem__(self, name: str) -> list[float]:
        if name not in self.values:
            raise KeyError(
                f"history has no {name!r}; it recorded {sorted(self.values)}"
            )
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __len__(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)

    def last(self, name: str) -> float:
        return self[name][-1]

    def epoch_mean(self, name: str) -> list[float]:
        """Mean of ``name`` over the steps of each epoch."""
        values, means, start = self[name], [], 0
        for end in self.epoch_ends:
            if end > start:
                means.append(sum(values[start:end]) / (end - start))
            start = end
        return means


def progress(
    iterable=None,
    *,
    total: int | None = None,
    desc: str | None = None,
    quiet: bool | None = None,
):
    """A ``tqdm.auto`` bar, silent when ``quiet`` or when the ``CI`` variable is set."""
    from tqdm.auto import tqdm

    if quiet is None:
        quiet = bool(os.environ.get("CI")) or bool(os.environ.get("DGMLIB_QUIET"))
    return tqdm(iterable, total=total, desc=desc, disable=quiet, leave=False)


def minibatches(
    data: Tensor | tuple[Tensor, ...],
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
):
    """Yield minibatches of ``data`` (a tensor or a tuple of tensors sharing dim 0).

    The last batch may be smaller. Shuffling uses ``generator``
    (a CPU or same-device one).
    """
    tensors = data if isinstance(data, tuple) else (data,)
    n = tensors[0].shape[0]
    for t in tensors:
        if t.shape[0] != n:
            raise ValueError(
                "all tensors in data must share their first dimension; got "
                f"{[tuple(t.shape) for t in tensors]}"
            )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if shuffle:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=gen_device).to(
            tensors[0].device
        )
    for start in range(0, n, batch_size):
        if shuffle:  # one small gather per batch: no copy of the whole data set
            idx = order[start : start + batch_size]
            batch = tuple(t[idx] for t in tensors)
        else:
            batch = tuple(t[start : start + batch_size] for t in tensors)
        yield batch if isinstance(data, tuple) else batch[0]


def _as_row(out) -> dict[str, float]:
    if out is None:
        return {}
    if isinstance(out, Mapping):
        return {k: float(v) for k, v in out.items()}
    return {"loss": float(out)}


def fit(
    step: Callable,
    data: Tensor | tuple[Tensor, ...] | None = None,
    *,
    epochs: int = 1,
    batch_size: int = 100,
    n_steps: int | None = None,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    desc: str = "fit",
    quiet: bool | None = None,
    callback: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> History:
    """Run ``step`` over minibatches of ``data`` for ``epochs``, or ``n_steps`` times
    without data.

    ``step`` returns ``None``, a number (recorded as ``"loss"``) or a mapping of names
    to numbers; each is recorded in the returned :class:`History` and checked for
    NaN/inf. ``callback(step_index, row)`` may return ``True`` to stop early.
    """
    history = History()
    if data is None:
        if n_steps is None or n_steps < 0:
            raise ValueError(
                "fit without data needs n_steps >= 0 (how many times to call step())"
            )
        n_epochs, total = 1, n_steps
    else:
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0; got {epochs}")
        n = (data[0] if isinstance(data, tuple) else data).shape[0]
        n_epochs, total = epochs, epochs * math.ceil(n / batch_size)
    i = 0
    with progress(total=total, desc=desc, quiet=quiet) as bar:
        for epoch in range(n_epochs):
            if data is None:
                calls = (step() for _ in range(n_steps))
            else:
                calls = (
                    step(b)
                    for b in minibatches(
                        data, batch_size, shuffle=shuffle, generator=generator
                    )
                )
            for out in calls:
                row = _as_row(out)
                bad = {k: v for k, v in row.items() if not math.isfinite(v)}
                if bad:
                    raise NonFiniteError(
                        f"{desc}: non-finite value {bad} at step {i} (epoch {epoch}); "
                        "lower the learning rate or check the data for NaN/inf."
                    )
                history.record(row)
                i += 1
                bar.update(1)
                if row:
                    bar.set_postfix(
                        {k: f"{v:.4g}" for k, v in row.items()}, refresh=False
                    )
                if callback is not None and callback(i - 1, row):
                    history.epoch_ends.append(i)
                    return history
            history.epoch_ends.append(i)
    return history
