"""A recurrent autoregressive network: an RNN reads x_<t and outputs p(x_t | x_<t)
(§20.10.7, §10.2.3).

The state ``s_t`` summarises the whole prefix ``x_<t`` with a fixed number of
parameters, whatever ``t`` is (parameter sharing across time, chapter 10 of the
textbook). Evaluating ``log p(x)`` is one pass of the recurrence over the sequence (the
input is known, *teacher forcing*); sampling carries the state forward, so each new
value costs one step of the cell, not a pass over the whole prefix.

Notation: x (B, D) binary; the input at step t is (x_{t-1}, 1[t = 0]); s_t (B, H) GRU
state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_binary, check_shape

from .base import _uniform, bernoulli_log_prob, marginal_log_odds

__all__ = ["RecurrentAR"]


class RecurrentAR(nn.Module):
    """A GRU over binary sequences with a logistic output: ``p(x_t = 1 | x_<t) =
    sigmoid(w . s_t + b_t)``.

    Parameters
    ----------
    length : int
        ``D``.
    n_hidden : int
        ``H``, the state size.
    """

    def __init__(self, length: int, n_hidden: int = 64):
        super().__init__()
        self.n_in, self.n_hidden = length, n_hidden
        self.cell = nn.GRU(2, n_hidden, batch_first=True)
        self.out = nn.Linear(n_hidden, 1)
        self.bias = nn.Parameter(torch.zeros(length))  # one output bias per position

    @torch.no_grad()
    def init_bias_from_data(self, x: Tensor) -> None:
        """Start as independent values: the per-position output biases = the data's
        log-odds.
        """
        self.bias.copy_(marginal_log_odds(x.to(self.bias)))

    def _inputs(self, x: Tensor) -> Tensor:
        start = torch.zeros_like(x)
        start[:, 0] = 1.0
        return torch.stack(
            [F.pad(x, (1, 0))[:, :-1], start], -1
        )  # (B, D, 2): (x_{t-1}, 1[t=0])

    def logits(self, x: Tensor) -> Tensor:
        """``logits[:, t] = logit p(x_t = 1 | x_<t)``, (B, D) -> (B, D): one pass of the
        GRU.
        """
        check_shape(x, 2, self.n_in, name="x", model="RecurrentAR")
        check_binary(x, name="x", model="RecurrentAR")
        s, _ = self.cell(self._inputs(x))  # (B, D, H): s_t
        return self.out(s)[..., 0] + self.bias

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, (B, D) -> (B,)."""
        return bernoulli_log_prob(self.logits(x), x).sum(1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        record_every: int | None = None,
    ):
        """Samples (n, D): the state is carried forward, one GRU step per new value."""
        p = self.out.weight
        out = torch.zeros(n, self.n_in, device=p.device, dtype=p.dtype)
        inp = torch.zeros(n, 1, 2, device=p.device, dtype=p.dtype)
        inp[:, 0, 1] = 1.0  # the start flag
        state = None
        frames = [out.clone()] if record_every else None
        for t in range(self.n_in):
            s, state = self.cell(inp, state)  # one step: (n, 1, H)
            prob = torch.sigmoid(self.out(s[:, 0])[:, 0] + self.bias[t])
            out[:, t] = (_uniform(n, generator, p.device) < prob).to(p.dtype)
            inp = torch.stack([out[:, t], torch.zeros_like(out[:, t])], -1)[:, None]
            if record_every and ((t + 1) % record_every == 0 or t == self.n_in - 1):
                frames.append(out.clone())
        return (out, frames) if record_every else out
