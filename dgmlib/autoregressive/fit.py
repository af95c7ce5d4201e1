"""Maximum likelihood for any model with an exact ``log_prob``: Adam on the mean
negative log-likelihood.

Autoregressive models need nothing else: ``log p(x)`` is exact and differentiable, so
the gradient of the average NLL is an ordinary backward pass (no sampling, no bound, no
partition function, unlike the Boltzmann machines of the earlier chapters).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dgmlib.train import History, fit

__all__ = ["fit_max_likelihood", "mean_log_prob"]


def fit_max_likelihood(
    model: torch.nn.Module,
    data: Tensor,
    *,
    epochs: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    objective: Callable[[Tensor], Tensor] | None = None,
    weight_decay: float = 0.0,
    quiet: bool | None = None,
    desc: str | None = None,
) -> History:
    """Train ``model`` by Adam on minibatches of ``data``, minimising
    ``-objective(x).mean()``.

    Parameters
    ----------
    model : nn.Module
        Anything with ``log_prob(x) -> (B,)``.
    data : (N, D) tensor
    epochs, batch_size, lr, weight_decay
        The usual; Adam with default betas.
    generator : torch.Generator, optional
        Shuffles the minibatches.
    objective : callable (B, D) -> (B,), optional
        The per-example log-likelihood to maximise; default ``model.log_prob``.
        Order-agnostic NADE passes ``lambda x:
        order_agnostic_log_prob(nade, x, generator=g)``, MADE with several masks
        ``made.cycle_log_prob``.

    Returns
    -------
    History with ``"nll"`` (nats per example) for every step.
    """
    # [maths:autoregressive.fit_max_likelihood]
    objective = objective or model.log_prob
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(x: Tensor) -> dict:
        loss = -objective(x).mean()  # average NLL of the minibatch, nats
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"nll": loss.item()}

    # [/maths:autoregressive.fit_max_likelihood]

    return fit(
        step,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        quiet=quiet,
        desc=desc or f"fit {type(model).__name__}",
    )


@torch.no_grad()
def mean_log_prob(model_or_fn, x: Tensor, *, batch_size: int = 1000, **kwargs) -> float:
    """Average exact ``log p(x)`` over the rows of ``x`` in nats, evaluated in chunks
    without gradients.

    ``model_or_fn`` is a model (its ``log_prob`` is used) or a function
    ``(B, D) -> (B,)``; ``kwargs`` go to it (e.g. ``order=``).
    """
    fn = model_or_fn.log_prob if hasattr(model_or_fn, "log_prob") else model_or_fn
    total = sum(
        float(fn(x[i : i + batch_size], **kwargs).sum())
        for i in range(0, len(x), batch_size)
    )
    return total / len(x)
