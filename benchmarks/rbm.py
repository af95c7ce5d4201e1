"""RBM benchmarks (issue: Boltzmann machines I).

* ``rbm_speed``: one PCD-1 epoch, 784 x 500, batch 100, over the 50k binarized-MNIST
training
  set: dgmlib (float32, and with bfloat16 matrix products: ``fit_rbm(..., matmul_dtype=
  torch.bfloat16)``) against scikit-learn's BernoulliRBM (same batch size, learning
  rate, one iteration, float64 and float32 input) and against a floor, the step's five
  matrix products alone in the same precision.
* ``rbm_quality``: a 500-hidden-unit RBM trained with PCD for a fixed wall-clock budget,
test
  log-likelihood by AIS (100 chains, the Salakhutdinov & Murray schedule, base-rate
  model).
* ``rbm_quality_bf16``: the same with bfloat16 matrix products (same seed and budget).
* ``ais_accuracy``: RBMs with 20 hidden units trained on MNIST: exact log Z (timed)
against AIS.
"""

from __future__ import annotations

import math
import time

import torch

from dgmlib.config import device as best_device
from dgmlib.energy import BernoulliRBM, fit_rbm
from dgmlib.exact import log_partition
from dgmlib.mcmc import ais, base_rate_biases, sm_betas

from .common import Row, mnist, timed

PUBLISHED = (
    "Salakhutdinov & Murray (2008), 500 hidden: "
    "CD1 -125.53, CD3 -105.50, CD25 -86.34 nats"
)


def rbm_speed(quick: bool = False) -> list[Row]:
    import numpy as np
    from sklearn.neural_network import BernoulliRBM as SkRBM

    dev = best_device()
    x = mnist("train", dev)
    if quick:
        x = x[:5_000]
    n, d = x.shape
    n_hidden, batch, lr = 500, 100, 0.05
    g = torch.Generator(device=dev).manual_seed(0)

    def ours(matmul_dtype=None):
        rbm = BernoulliRBM(d, n_hidden, generator=g).to(dev)
        return fit_rbm(
            rbm,
            x,
            method="pcd",
            k=1,
            batch_size=batch,
            epochs=1,
            lr=lr,
            monitor=False,
            generator=g,
            quiet=True,
            matmul_dtype=matmul_dtype,
        )

    # the floor: the five matrix products of one PCD-1 update, nothing else
    def floor_of(dtype):
        W = (torch.randn(d, n_hidden, device=dev) * 0.01).to(dtype)
        vb = x[:batch].to(dtype)
        hb = torch.rand(batch, n_hidden, device=dev).to(dtype)

        def floor():
            for _ in range(math.ceil(n / batch)):
                a = vb @ W
                hb @ W.T
                vb @ W
                vb.T @ hb
                out = vb.T @ a
            return out

        return floor

    precisions = {"float32": None, "bfloat16 matmuls": torch.bfloat16}
    t_ours, t_floor, runs = {}, {}, {}
    repeats = 2 if quick else 5
    for name, dt in precisions.items():
        ours(dt)  # warm-up (allocator, kernels)
        floor = floor_of(dt or torch.float32)
        floor()
        # interleaved, best of `repeats`: the ratio is less sensitive to drifting
        # machine load
        ts_ours, ts_floor = [], []
        for _ in range(repeats):
            ts_ours.append(timed(ours, dt)[0])
            ts_floor.append(timed(floor)[0])
        t_ours[name], t_floor[name] = min(ts_ours), min(ts_floor)
        runs[name] = {
            "ours_s": [round(t, 3) for t in ts_ours],
            "floor_s": [round(t, 3) for t in ts_floor],
        }

    # scikit-learn computes in the dtype it is given: float64 (what NumPy loads by
    # default) and float32 (its fastest case) are both measured.
    sk_times = {}
    for np_dtype in (np.float64, np.float32):
        x_np = x.cpu().numpy().astype(np_dtype)
        sk = SkRBM(
            n_components=n_hidden,
            learning_rate=lr,
            batch_size=batch,
            n_iter=1,
            random_state=0,
        )
        ts = [timed(sk.fit, x_np)[0] for _ in range(1 if quick else 3)]
        sk_times[np_dtype.__name__], runs[f"sklearn {np_dtype.__name__}"] = (
            min(ts),
            [round(t, 3) for t in ts],
        )

    rows = []
    for name in precisions:
        rows.append(
            Row(
                "rbm_speed",
                f"dgmlib PCD-1 epoch ({dev.type}, {n} examples, {name})",
                t_ours[name],
                "s",
                notes={"runs": runs[name]},
            )
        )
    for sk_name, t_sk in sk_times.items():
        rows.append(
            Row(
                "rbm_speed",
                f"scikit-learn BernoulliRBM epoch ({sk_name} input)",
                t_sk,
                "s",
                notes={"runs_s": runs[f"sklearn {sk_name}"]},
            )
        )
    for name in precisions:
        rows.append(
            Row(
                "rbm_speed",
                f"floor: the 5 matmuls per update ({name})",
                t_floor[name],
                "s",
            )
        )
    for name in precisions:
        for sk_name, t_sk in sk_times.items():
            rows.append(
                Row(
                    "rbm_speed",
                    f"speed-up of dgmlib ({name}) over scikit-learn ({sk_name} input)",
                    t_sk / t_ours[name],
                    "x",
                    ">= 3x",
                    t_sk / t_ours[name] >= 3,
                )
            )
    for name in precisions:
        r = t_ours[name] / t_floor[name]
        rows.append(
            Row(
                "rbm_speed",
                f"dgmlib ({name}) time relative to its floor",
                r,
                "x",
                "<= 1.5x",
                r <= 1.5,
            )
        )
    return rows


def _train_rbm(
    x,
    n_hidden,
    budget_s,
    g,
    dev,
    *,
    lr0=0.05,
    weight_decay=1e-4,
    max_epochs=10_000,
    matmul_dtype=None,
):
    """PCD-1 over as many epochs as fit in ``budget_s``, the learning rate decaying
    linearly to zero.

    The number of epochs comes from the fastest epoch so far, re-estimated after each of
    the first three (so one slow epoch, a stall of a shared machine, does not shorten
    the run); the decay follows the current estimate, and a guard stops once the budget
    is spent.
    """
    rbm = BernoulliRBM(x.shape[1], n_hidden, generator=g).to(dev)
    rbm.init_visible_bias_from_data(x)
    t0, fastest = time.perf_counter(), math.inf
    epochs, done = max_epochs, 0
    while done < epochs:
        t_epoch, _ = timed(
            fit_rbm,
            rbm,
            x,
            method="pcd",
            epochs=1,
            lr=lr0 * (1 - done / epochs),
            monitor=False,
            generator=g,
            quiet=True,
            weight_decay=weight_decay,
            matmul_dtype=matmul_dtype,
        )
        done += 1
        if done <= 3:
            fastest = min(fastest, t_epoch)
            epochs = max(done, min(max_epochs, int(budget_s / fastest)))
        if time.perf_counter() - t0 > budget_s:
            break
    return rbm, done, time.perf_counter() - t0


def rbm_quality(
    quick: bool = False, budget_s: float = 540.0, matmul_dtype=None
) -> list[Row]:
    dev = best_device()
    x, test = mnist("train", dev), mnist("test", dev)
    g = torch.Generator(device=dev).manual_seed(1)
    if quick:
        x, budget_s = x[:5000], 10.0
    rbm, epochs, t_train = _train_rbm(
        x, 500, budget_s, g, dev, matmul_dtype=matmul_dtype
    )
    betas = sm_betas() if not quick else torch.linspace(0, 1, 1000, dtype=torch.float64)
    t_ais, res = timed(
        ais, rbm, betas=betas, n_chains=100, base=base_rate_biases(x), generator=g
    )
    ll = float((-rbm.free_energy(test)).mean()) - res.log_z
    name = "rbm_quality" if matmul_dtype is None else "rbm_quality_bf16"
    return [
        Row(
            name,
            f"training time ({epochs} PCD-1 epochs, 784x500)",
            t_train,
            "s",
            "<= 600 s",
            None if quick else t_train <= 600,
        ),
        Row(name, f"AIS time ({len(betas)} betas, 100 chains)", t_ais, "s"),
        Row(
            name,
            "test log-likelihood (AIS)",
            ll,
            "nats",
            ">= -90",
            None if quick else ll >= -90,
            PUBLISHED,
            {
                "log_z": res.log_z,
                "stderr": res.stderr,
                "log_z_low": res.log_z_low,
                "log_z_high": res.log_z_high,
            },
        ),
    ]


def ais_accuracy(quick: bool = False) -> list[Row]:
    dev = best_device()
    x = mnist("train", dev)
    rows = []
    for seed, budget in ((2, 20.0), (3, 60.0)):
        g = torch.Generator(device=dev).manual_seed(seed)
        n_hidden = 12 if quick else 20
        rbm, epochs, _ = _train_rbm(
            x[:5000] if quick else x, n_hidden, 3.0 if quick else budget, g, dev
        )
        t_exact, log_z = timed(log_partition, rbm)
        betas = torch.linspace(0, 1, 1000, dtype=torch.float64) if quick else sm_betas()
        tag = f"784x{n_hidden}, {epochs} epochs"
        rows.append(
            Row(
                "ais_accuracy",
                f"exact log Z time ({tag})",
                t_exact,
                "s",
                "<= 30 s",
                t_exact <= 30,
            )
        )
        # 100 chains as in rbm_quality (the target); 1000 as well, to show the error
        # shrinking
        for n_chains in (100, 1000):
            res = ais(
                rbm,
                betas=betas,
                n_chains=n_chains,
                base=base_rate_biases(x),
                generator=g,
            )
            err = abs(res.log_z - float(log_z))
            rows.append(
                Row(
                    "ais_accuracy",
                    f"|AIS - exact| log Z ({tag}, {n_chains} chains)",
                    err,
                    "nats",
                    "<= 0.3" if n_chains == 100 else "",
                    None if quick or n_chains != 100 else err <= 0.3,
                    "",
                    {
                        "exact": float(log_z),
                        "ais": res.log_z,
                        "stderr": res.stderr,
                        "error_in_stderrs": (res.log_z - float(log_z)) / res.stderr,
                    },
                )
            )
    return rows


def rbm_quality_bf16(quick: bool = False) -> list[Row]:
    """``rbm_quality`` with ``fit_rbm(..., matmul_dtype=torch.bfloat16)``: same seed and
    budget.
    """
    return rbm_quality(quick, matmul_dtype=torch.bfloat16)


BENCHMARKS = {
    "rbm_speed": rbm_speed,
    "rbm_quality": rbm_quality,
    "rbm_quality_bf16": rbm_quality_bf16,
    "ais_accuracy": ais_accuracy,
}
