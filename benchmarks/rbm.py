"""RBM benchmarks (issue: Boltzmann machines I; issue 10: the recipe in the library).

* ``rbm_speed``: one PCD-1 epoch, 784 x 500, batch 100, over the 50k binarized-MNIST
  training set: ``fit_rbm`` with its defaults (float32, and with bfloat16 matrix
  products: ``matmul_dtype=torch.bfloat16``) against a plain ten-line eager PyTorch
  loop of the same step in the same precision, against scikit-learn's BernoulliRBM
  (same batch size and rate, one iteration, float64 and float32 input) and against a
  floor, the step's five matrix products alone in the same precision.
* ``rbm_quality``: a 500-hidden-unit RBM trained by ``fit_rbm`` with its defaults for a
  wall-clock budget (``seconds=``; no recipe of the benchmark's own), test
  log-likelihood by AIS (100 chains, the Salakhutdinov & Murray schedule, base-rate
  model).
* ``rbm_quality_bf16``: the same with bfloat16 matrix products (same seed and budget).
* ``rbm_centered``: the centered RBM (``fit_rbm(..., centered=True)``, Melchior et al.
  2016) against the uncentered one, same seed and budget, both by AIS as above.
* ``ais_accuracy``: RBMs with 20 hidden units trained on MNIST: exact log Z (timed)
  against AIS.
"""

from __future__ import annotations

import math

import torch

from dgmlib.config import device as best_device
from dgmlib.energy import BernoulliRBM, fit_rbm
from dgmlib.exact import log_partition
from dgmlib.mcmc import ais, base_rate_biases, sm_betas

from .common import Row, fastest_matmul_dtype, mnist, timed

CENTERED_PUBLISHED = (
    "Melchior et al. (2016), 500 hidden, 200 epochs: centered -84.86 nats; "
    "Salakhutdinov & Murray (2008) CD25 -86.34"
)
PUBLISHED = (
    "Salakhutdinov & Murray (2008), 500 hidden: "
    "CD1 -125.53, CD3 -105.50, CD25 -86.34 nats"
)


def plain_pcd_epoch(x, W, b, c, *, lr=0.05, batch=100, matmul_dtype=None, g=None):
    """What a user could write in ten lines: one eager PCD-1 epoch, plain SGD, the
    products in ``matmul_dtype`` when given (the baseline fit_rbm must not lose to).
    """
    lo = matmul_dtype or W.dtype
    v_neg = x[:batch].clone()
    for i in range(0, len(x), batch):
        v, W_lo = x[i : i + batch], W.to(lo)
        ph = torch.sigmoid((v.to(lo) @ W_lo).float() + c)
        h = (torch.rand(ph.shape, generator=g) < torch.sigmoid(
            (v_neg.to(lo) @ W_lo).float() + c)).float()  # fmt: skip
        p_v = torch.sigmoid((h.to(lo) @ W_lo.T).float() + b)
        v_neg = (torch.rand(p_v.shape, generator=g) < p_v).float()
        ph_neg = torch.sigmoid((v_neg.to(lo) @ W_lo).float() + c)
        W += lr * ((v.T.to(lo) @ ph.to(lo)).float()
                   - (v_neg.T.to(lo) @ ph_neg.to(lo)).float()) / len(v)  # fmt: skip
        b += lr * (v.mean(0) - v_neg.mean(0))
        c += lr * (ph.mean(0) - ph_neg.mean(0))


def rbm_speed(quick: bool = False) -> list[Row]:
    import numpy as np
    from sklearn.neural_network import BernoulliRBM as SkRBM

    dev = best_device()
    x = mnist("train", dev)
    if quick:  # runs the code only (bfloat16 products are slow without AVX-512 BF16)
        x = x[:1_000]
    n, d = x.shape
    n_hidden, batch, lr = 500, 100, 0.05
    g = torch.Generator(device=dev).manual_seed(0)

    def ours(matmul_dtype=None):  # fit_rbm's defaults (momentum, weight decay, ...)
        rbm = BernoulliRBM(d, n_hidden, generator=g).to(dev)
        return fit_rbm(
            rbm,
            x,
            epochs=1,
            lr=lr,
            monitor=False,
            generator=g,
            quiet=True,
            matmul_dtype=matmul_dtype,
        )

    def plain(matmul_dtype=None):
        W = 0.01 * torch.randn(d, n_hidden, generator=g, device=dev)
        b, c = torch.zeros(d, device=dev), torch.zeros(n_hidden, device=dev)
        plain_pcd_epoch(x, W, b, c, lr=lr, batch=batch, matmul_dtype=matmul_dtype, g=g)

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
    t_ours, t_plain, t_floor, runs = {}, {}, {}, {}
    repeats = 1 if quick else 5
    for name, dt in precisions.items():
        floor = floor_of(dt or torch.float32)
        ours(dt), plain(dt), floor()  # warm-up (allocator, kernels)
        # interleaved, best of `repeats`: the ratios are less sensitive to drifting
        # machine load
        ts = {"ours": [], "plain": [], "floor": []}
        for _ in range(repeats):
            ts["ours"].append(timed(ours, dt)[0])
            ts["plain"].append(timed(plain, dt)[0])
            ts["floor"].append(timed(floor)[0])
        t_ours[name], t_plain[name] = min(ts["ours"]), min(ts["plain"])
        t_floor[name] = min(ts["floor"])
        runs[name] = {f"{k}_s": [round(t, 3) for t in v] for k, v in ts.items()}

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
                f"dgmlib fit_rbm PCD-1 epoch, defaults ({dev.type}, {n} examples, "
                f"{name})",
                t_ours[name],
                "s",
                notes={"runs": runs[name]},
            )
        )
        rows.append(
            Row(
                "rbm_speed",
                f"plain ten-line eager PyTorch PCD-1 epoch ({name})",
                t_plain[name],
                "s",
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
        r = t_ours[name] / t_plain[name]
        rows.append(
            Row(
                "rbm_speed",
                f"dgmlib ({name}) time relative to the plain loop",
                r,
                "x",
                "<= 1x",
                r <= 1,
            )
        )
        for sk_name, t_sk in sk_times.items():
            rows.append(
                Row(
                    "rbm_speed",
                    f"speed-up of dgmlib ({name}) over scikit-learn ({sk_name} input)",
                    t_sk / t_ours[name],
                    "x",
                    ">= 3x" if sk_name == "float64" else "",
                    t_sk / t_ours[name] >= 3 if sk_name == "float64" else None,
                )
            )
        r = t_ours[name] / t_floor[name]
        rows.append(
            Row(
                "rbm_speed",
                f"dgmlib ({name}) time relative to its floor",
                r,
                "x",
                "<= 2x",
                r <= 2,
            )
        )
    return rows


def _train_rbm(x, n_hidden, budget_s, g, dev, *, matmul_dtype=None, centered=False):
    """``fit_rbm`` with its defaults (the library's recipe) and a wall-clock budget;
    returns the model, the epochs it ran and the training time.
    """
    rbm = BernoulliRBM(x.shape[1], n_hidden, generator=g).to(dev)
    t_train, hist = timed(
        fit_rbm,
        rbm,
        x,
        seconds=budget_s,
        monitor=False,
        generator=g,
        quiet=True,
        matmul_dtype=matmul_dtype,
        centered=centered,
    )
    return rbm, hist.updates / math.ceil(len(x) / 100), t_train


def _ais_log_likelihood(rbm, x, test, g, quick):
    # quick: a short schedule and 1,000 test images, only to run the code
    betas = sm_betas() if not quick else torch.linspace(0, 1, 100, dtype=torch.float64)
    test = test[:1000] if quick else test
    t_ais, res = timed(
        ais, rbm, betas=betas, n_chains=100, base=base_rate_biases(x), generator=g
    )
    ll = float((-rbm.free_energy(test)).mean()) - res.log_z
    notes = {
        "log_z": res.log_z,
        "stderr": res.stderr,
        "log_z_low": res.log_z_low,
        "log_z_high": res.log_z_high,
    }
    return ll, t_ais, len(betas), notes


def rbm_quality(
    quick: bool = False, budget_s: float = 480.0, matmul_dtype=None
) -> list[Row]:
    dev = best_device()
    x, test = mnist("train", dev), mnist("test", dev)
    g = torch.Generator(device=dev).manual_seed(1)
    if quick:
        x, budget_s = x[:5000], 5.0
    rbm, epochs, t_train = _train_rbm(
        x, 500, budget_s, g, dev, matmul_dtype=matmul_dtype
    )
    ll, t_ais, n_betas, notes = _ais_log_likelihood(rbm, x, test, g, quick)
    name = "rbm_quality" if matmul_dtype is None else "rbm_quality_bf16"
    return [
        Row(
            name,
            f"training time (fit_rbm defaults, {epochs:.1f} PCD-1 epochs, 784x500)",
            t_train,
            "s",
            "<= 600 s",
            None if quick else t_train <= 600,
        ),
        Row(name, f"AIS time ({n_betas} betas, 100 chains)", t_ais, "s"),
        Row(
            name,
            "test log-likelihood (AIS)",
            ll,
            "nats",
            ">= -90",
            None if quick else ll >= -90,
            PUBLISHED,
            notes,
        ),
    ]


def rbm_centered(quick: bool = False, budget_s: float = 540.0) -> list[Row]:
    """The centered RBM against the uncentered one: ``fit_rbm`` defaults, the same
    seed and budget, ``centered=True`` the only difference; both with bfloat16
    products where they are faster (twice the epochs in the budget on this project's
    CPU machines).
    """
    dev = best_device()
    x, test = mnist("train", dev), mnist("test", dev)
    if quick:
        x, budget_s = x[:5000], 5.0
    dt = None if quick else fastest_matmul_dtype(dev)
    rows, lls = [], {}
    for centered in (True, False):
        g = torch.Generator(device=dev).manual_seed(1)
        tag = "centered" if centered else "uncentered (baseline)"
        rbm, epochs, t_train = _train_rbm(
            x, 500, budget_s, g, dev, centered=centered, matmul_dtype=dt
        )
        ll, t_ais, n_betas, notes = _ais_log_likelihood(rbm, x, test, g, quick)
        notes |= {"epochs": epochs, "matmul_dtype": str(dt or torch.float32)}
        lls[centered] = ll
        rows.append(
            Row(
                "rbm_centered",
                f"{tag}: training time (PCD-1, 784x500)",
                t_train,
                "s",
                "<= 600 s",
                None if quick else t_train <= 600,
                f"{epochs:.1f} epochs, products in {dt or torch.float32}",
            )
        )
        rows.append(
            Row(
                "rbm_centered",
                f"{tag}: test log-likelihood (AIS, 100 chains)",
                ll,
                "nats",
                "> -86.34" if centered else "",
                None if quick or not centered else ll > -86.34,
                CENTERED_PUBLISHED,
                notes,
            )
        )
    rows.append(
        Row(
            "rbm_centered",
            "centered minus uncentered test log-likelihood",
            lls[True] - lls[False],
            "nats",
        )
    )
    return rows


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
        tag = f"784x{n_hidden}, {epochs:.1f} epochs"
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
    "rbm_centered": rbm_centered,
    "ais_accuracy": ais_accuracy,
}
