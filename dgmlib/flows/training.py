"""Maximum-likelihood training of a flow, with early stopping on a validation set.

The loss is the exact negative log-likelihood -log p(x) (eq. 20.73) averaged over a
minibatch; nothing is approximated, so the training curve *is* the model's NLL in nats.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from ..train import History, fit
from .base import ActNorm, Flow
from .dequantize import dequantize as dequantize_pixels

__all__ = ["fit_flow", "mean_log_prob", "initialize_actnorm"]


@torch.no_grad()
def mean_log_prob(flow: Flow, x: Tensor, batch_size: int = 1000) -> float:
    """Average log p(x) over the rows of ``x`` (nats), in batches, in eval mode."""
    was = flow.training
    flow.eval()
    total = sum(
        float(flow.log_prob(x[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    flow.train(was)
    return total / len(x)


@torch.no_grad()
def initialize_actnorm(flow: Flow, x: Tensor) -> None:
    """Data-dependent initialisation of every :class:`ActNorm` of ``flow`` from the
    batch ``x``.
    """
    was = flow.training
    flow.train()
    for m in flow.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(False)
    flow.forward(x)
    flow.train(was)


def fit_flow(
    flow: Flow,
    x: Tensor,
    *,
    epochs: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    valid: Tensor | None = None,
    patience: int | None = None,
    clip: float | None = 10.0,
    dequantize: bool = False,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    desc: str = "flow",
) -> History:
    """Maximum likelihood: Adam on the mean of -log p(x) over minibatches of ``x``
    (N, D).

    Parameters
    ----------
    flow : Flow
    x : (N, D) tensor
        Training data on the flow's device.
    epochs, batch_size, lr, weight_decay : training settings (cosine-decayed learning
    rate).
    valid : (M, D) tensor, optional
        Validation data: its mean NLL is recorded after every epoch
        (``history.values["valid_nll"]``) and, with ``patience``, training stops when it
        has not improved for ``patience`` epochs and the best parameters are restored
        (early stopping).
    clip : float or None
        Gradient-norm clipping.
    dequantize : bool
        ``x`` holds integer pixels k; every minibatch is trained on k + u with *fresh*
        noise u ~ U[0, 1) (``valid`` must already be dequantized). Fresh noise keeps the
        flow from fitting one particular draw of u.
    generator : torch.Generator, optional
        Shuffles the minibatches (and draws the dequantization noise).

    Returns
    -------
    History with ``"loss"`` (per-step training NLL, nats) and, with ``valid``,
    ``"valid_nll"`` per epoch and ``best_epoch`` stored in
    ``history.values["best_epoch"]``.
    """
    if ActNorm in {type(m) for m in flow.modules()}:
        first = x[: max(batch_size, 500)]
        initialize_actnorm(
            flow, dequantize_pixels(first, generator=generator) if dequantize else first
        )
    opt = torch.optim.Adam(
        flow.parameters(), lr=lr, weight_decay=weight_decay, foreach=True
    )
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(1, epochs * steps_per_epoch)
    )
    flow.train()

    def step(batch):
        if dequantize:
            batch = dequantize_pixels(batch, generator=generator)
        opt.zero_grad()
        loss = -flow.log_prob(batch).mean()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
        opt.step()
        sched.step()
        return float(loss.detach())

    if valid is None:
        history = fit(
            step,
            x,
            epochs=epochs,
            batch_size=batch_size,
            generator=generator,
            desc=desc,
            quiet=quiet,
        )
        flow.eval()
        return history

    history = History()
    best, best_state, best_epoch, bad = math.inf, None, -1, 0
    for epoch in range(epochs):
        h = fit(
            step,
            x,
            epochs=1,
            batch_size=batch_size,
            generator=generator,
            desc=f"{desc} {epoch}",
            quiet=quiet,
        )
        for k, v in h.values.items():
            history.values.setdefault(k, []).extend(v)
        history.epoch_ends.append(len(history))
        nll = -mean_log_prob(flow, valid)
        history.values.setdefault("valid_nll", []).append(nll)
        if nll < best:
            best, best_epoch, bad = nll, epoch, 0
            best_state = copy.deepcopy(flow.state_dict())
        else:
            bad += 1
            if patience is not None and bad >= patience:
                break
    if best_state is not None:
        flow.load_state_dict(best_state)
    history.values["best_epoch"] = [best_epoch]
    flow.eval()
    return history
