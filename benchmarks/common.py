"""What every benchmark shares: a result row, timing, the machine, the data."""

from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class Row:
    """One measured number, with what it is compared against."""

    benchmark: str
    what: str
    value: float
    unit: str
    target: str = ""  # e.g. ">= 3x", "<= 1.5x", ">= -90"
    passed: bool | None = None
    reference: str = ""  # published number or baseline, in words
    notes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


_TARGET = re.compile(
    r"^\s*(?:(?P<op><=|>=|<|>)\s*(?P<bound>-?[\d.]+)"
    r"|(?P<lo>-?[\d.]+)x?\s*-\s*(?P<hi>-?[\d.]+))\s*(?:x|s|nats)?\b"
)


def target_met(value: float, target: str) -> bool | None:
    """Whether ``value`` meets a target written as in :class:`Row`: ``">= 3x"``,
    ``"<= 1.5x"``, ``">= -90"``, ``"<= 600 s"``, ``"0.5x-2x"`` (inclusive), anything
    after the number and unit ignored (``">= 6.4x (d/10)"``). None for a target in
    words (``"< both baselines"``) or none at all.
    """
    m = _TARGET.match(target)
    if m is None:
        return None
    if m["op"] is None:
        return float(m["lo"]) <= value <= float(m["hi"])
    bound = float(m["bound"])
    return {
        "<=": value <= bound,
        ">=": value >= bound,
        "<": value < bound,
        ">": value > bound,
    }[m["op"]]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call, on the wall clock, synchronising CUDA."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import sklearn

        info["sklearn"] = sklearn.__version__
    except ImportError:
        pass
    return info


def mnist(split: str, device=None) -> torch.Tensor:
    """Binarized MNIST as float32 on ``device``; a clear error if it cannot be had."""
    from dgmlib.data import load_binarized_mnist

    return load_binarized_mnist(split).to(device or "cpu", torch.float32)


def fastest_matmul_dtype(dev) -> torch.dtype | None:
    """bfloat16 products when they are at least 1.5x faster than float32 here (CPUs
    with AMX or AVX-512 BF16, GPUs), else None (float32): timed on the DBM's largest
    product.
    """
    a, W = torch.rand(100, 1000, device=dev), torch.rand(1000, 500, device=dev)

    def best(dt):
        x, w = a.to(dt), W.to(dt)
        x @ w
        return min(timed(lambda: [x @ w for _ in range(20)])[0] for _ in range(3))

    return torch.bfloat16 if best(torch.bfloat16) * 1.5 <= best(torch.float32) else None
