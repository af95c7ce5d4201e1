"""Training a diffusion's reverse process: Adam on one of its losses."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..train import History, fit

__all__ = ["fit_diffusion", "OBJECTIVES"]

OBJECTIVES = ("simple", "bound", "hybrid")


def fit_diffusion(
    diffusion: nn.Module,
    model: nn.Module,
    data: Tensor,
    *,
    objective: str = "simple",
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    hybrid_weight: float = 1e-3,
    clip: float | None = 1.0,
    transform: Callable[[Tensor, torch.Generator | None], Tensor] | None = None,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    desc: str = "diffusion",
) -> History:
    """Fit ``model`` as the reverse process of ``diffusion`` on ``data`` (N, ...).

    objective : ``"simple"`` (Ho et al.'s eps loss, eq. 14 there; for binomial data the
        cross-entropy of x_0), ``"bound"`` (the negative variational bound, -K, as
        Sohl-Dickstein et al. 2015 train) or ``"hybrid"`` (simple + ``hybrid_weight``
        times the bound with the mean's gradient stopped, so the bound trains only
        the learned variance; Nichol & Dhariwal 2021).
    transform : applied to every minibatch with ``generator`` (e.g. fresh
        dequantization noise and scaling for pixels).
    The learning rate decays along a cosine to zero; gradients are clipped to norm
    ``clip``. History records per step ``loss`` (the objective), ``nll`` (the bound
    estimate, nats per example) and ``simple``.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = max(1, epochs * math.ceil(len(data) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    kw = {"detach_mean": True} if objective == "hybrid" else {}
    model.train()

    def step(x0: Tensor) -> dict[str, float]:
        if transform is not None:
            x0 = transform(x0, generator)
        nll, simple = diffusion.loss(model, x0, generator=generator, **kw)
        if objective == "simple":
            loss = simple.mean()
        elif objective == "bound":
            loss = nll.mean()
        else:
            loss = simple.mean() + hybrid_weight * nll.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        return {
            "loss": loss.item(),
            "nll": nll.mean().item(),
            "simple": simple.mean().item(),
        }

    history = fit(
        step,
        data,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc=desc,
        quiet=quiet,
    )
    model.eval()
    return history
