"""WaveNet-style dilated causal convolutions for binary sequences
(van den Oord et al. 2016).

A *causal* convolution of width ``k`` and dilation ``r`` gives output ``t`` from inputs
``t, t - r, ..., t - (k-1) r`` only (left padding, no look-ahead). Feeding the sequence
shifted right by one place, ``(0, x_0, ..., x_{D-2})``, makes output ``t`` a function of
``x_<t``: a valid conditional ``p(x_t | x_<t)``. Stacking ``L`` layers with dilations
``1, 2, 4, ..., 2^(L-1)`` and width 2 sees ``2^L`` past values at the cost of ``L``
layers: the receptive field grows exponentially with depth, linearly without dilation.

Notation: x (B, D) binary sequence; logits (B, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_binary, check_shape

from .base import BinaryAutoregressive, marginal_log_odds

__all__ = ["CausalConv1d", "WaveNet"]


class CausalConv1d(nn.Conv1d):
    """``Conv1d`` padded on the left only: output ``t`` sees inputs
    ``t - (k-1) r .. t``, (B, C, T) -> (B, C', T).

    Computed as ``y[t] = bias + sum_j W[:, :, k-1-j] x[t - j
    r]`` (``x`` is 0 before the start): ``k`` batched matrix products, the same numbers
    as ``F.conv1d(F.pad(x, ((k-1) r, 0)), W, dilation=r)`` (a CPU runs ``conv1d`` in
    float64, and dilated ones, far more slowly).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 2,
        dilation: int = 1,
    ):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        T, r, k = x.shape[-1], self.dilation[0], self.kernel_size[0]
        xt = x.transpose(1, 2)  # (B, T, C): one matrix product over B*T rows
        y = xt @ self.weight[:, :, k - 1].T + self.bias  # (B, T, C'): the tap on x[t]
        for j in range(1, k):
            if j * r < T:  # the tap on x[t - j r]
                y[:, j * r :] += xt[:, : T - j * r] @ self.weight[:, :, k - 1 - j].T
        return y.transpose(1, 2)


class Conv1x1(nn.Conv1d):
    """A pointwise ``Conv1d`` (kernel 1) computed as one batched matrix product,
    (B, C, T) -> (B, C', T).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return (x.transpose(1, 2) @ self.weight[:, :, 0].T + self.bias).transpose(1, 2)


class WaveNet(BinaryAutoregressive):
    """A small WaveNet for binary sequences: gated residual blocks of dilated causal
    convolutions.

    Parameters
    ----------
    length : int
        ``D``, the sequence length (a flattened 8x8 image is a sequence of 64).
    channels : int
        Residual channels.
    dilations : sequence of int
        One gated block per dilation (default ``1, 2, 4, ..., 32``: receptive field 64).
    kernel_size : int
        Width of every causal convolution.

    Block: ``z = tanh(conv_f(f)) * sigmoid(conv_g(f))``; ``f <- f + 1x1(z)``; skips
    summed into the output, plus one output bias per position.
    """

    def __init__(
        self,
        length: int,
        channels: int = 32,
        dilations=(1, 2, 4, 8, 16, 32),
        kernel_size: int = 2,
    ):
        super().__init__()
        self.n_in, self.dilations, self.kernel_size = (
            length,
            tuple(dilations),
            kernel_size,
        )
        self.inp = Conv1x1(1, channels)
        self.filt = nn.ModuleList(
            CausalConv1d(channels, channels, kernel_size, r) for r in self.dilations
        )
        self.gate = nn.ModuleList(
            CausalConv1d(channels, channels, kernel_size, r) for r in self.dilations
        )
        self.res = nn.ModuleList(Conv1x1(channels, channels) for _ in self.dilations)
        self.out = nn.Sequential(
            nn.ReLU(), Conv1x1(channels, channels), nn.ReLU(), Conv1x1(channels, 1)
        )
        self.bias = nn.Parameter(torch.zeros(length))  # one output bias per position

    @torch.no_grad()
    def init_bias_from_data(self, x: Tensor) -> None:
        """Start as independent values: the per-position output biases = the data's
        log-odds.
        """
        self.bias.copy_(marginal_log_odds(x.to(self.bias)))

    @property
    def receptive_field(self) -> int:
        """How many past values ``x_{t-1}, x_{t-2}, ...`` the conditional of ``x_t`` can
        see: ``1 + sum_l (k-1) r_l``.
        """
        return 1 + sum((self.kernel_size - 1) * r for r in self.dilations)

    def logits(self, x: Tensor) -> Tensor:
        """``logits[:, t] = logit p(x_t = 1 | x_<t)``, (B, D) -> (B, D)."""
        check_shape(x, 2, self.n_in, name="x", model="WaveNet")
        check_binary(x, name="x", model="WaveNet")
        shifted = F.pad(x, (1, 0))[:, :-1]  # (B, D): position t holds x_{t-1}
        f = self.inp(shifted[:, None, :])  # (B, C, D)
        skip = 0
        for filt, gate, res in zip(self.filt, self.gate, self.res):
            z = torch.tanh(filt(f)) * torch.sigmoid(gate(f))
            f = f + res(z)
            skip = skip + z
        return self.out(skip)[:, 0] + self.bias  # (B, D)
