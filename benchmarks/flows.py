"""Normalizing-flow benchmarks (chapter "Normalizing flows").

* ``flows_digits``: density estimation on scikit-learn's 8x8 digits
(17 grey levels 0..16),
  uniformly dequantized (x = k + u, u ~ U[0, 1), so x in [0, 17)^64; training
  minibatches get fresh noise, valid/test one fixed draw). Split: train [:1000], valid
  [1000:1350], test [1350:] (447 images). RealNVP, MAF and a Glow-style flow (squeeze +
  actnorm + LU 1x1 convolution + convolutional coupling, on the 1x8x8 image) are trained
  with Adam and early stopping on the validation NLL. Reported: test NLL in nats and
  bits/dim against two baselines measured in the same run: an independent 17-level
  categorical per pixel with add-one smoothing (as a density on [0, 17)^64 it is
  constant on unit cells, so its log-density is its log-probability) and a
  full-covariance Gaussian (MLE + ridge chosen on valid). Target: every flow below both.
  The continuous NLL of dequantized data upper-bounds a discrete NLL
  (Theis et al. 2016).
* ``flows_maf_iaf_speed``: one MAF layer and one IAF layer of the same MADE size,
density
  evaluation (x -> z) and sampling (z -> x) of a batch of 1000 at d = 64 and d = 784.
  MAF's density and IAF's sampling are one network pass; the other directions are d
  sequential passes. Target: the sequential direction costs >= d/10 times the one-pass
  direction. One CPU thread (MADE 2x512): the d = 784 sequential directions take about a
  minute each.
"""

from __future__ import annotations

import contextlib

import torch

from dgmlib.config import device as best_device
from dgmlib.data import load_digits
from dgmlib.flows import (
    MAF,
    FullGaussian,
    Glow,
    IAFLayer,
    IndependentCategorical,
    Logit,
    MAFLayer,
    RealNVP,
    bits_per_dim,
    dequantize,
    fit_flow,
    mean_log_prob,
)

from .common import Row, timed

D_DIGITS, LEVELS = 64, 17


@contextlib.contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _digits(dev, g):
    x01, _ = load_digits(dtype=torch.float64)
    k = (x01 * 16).round().to(dev)  # (1797, 64) in 0..16
    x = dequantize(k, generator=g).float()  # one fixed draw for valid/test
    return k[:1000], x[1000:1350], x[1350:]


def flows_digits(quick: bool = False) -> list[Row]:
    dev = best_device()
    g = torch.Generator(device=dev).manual_seed(0)
    k_tr, x_va, x_te = _digits(dev, g)
    rows = []

    # baselines, fitted on the 1000 training images
    cat = IndependentCategorical.fit(k_tr, LEVELS, smoothing=1.0)
    nll_cat = -float(cat.log_prob(x_te).mean())
    x_tr_deq = dequantize(k_tr, generator=g)
    ridges = (1e-3, 1e-2, 1e-1, 1.0)
    best_ridge = min(
        ridges,
        key=lambda r: -float(FullGaussian.fit(x_tr_deq, r).log_prob(x_va).mean()),
    )
    nll_gauss = -float(FullGaussian.fit(x_tr_deq, best_ridge).log_prob(x_te).mean())
    rows += [
        Row(
            "flows_digits",
            "baseline: independent categorical per pixel (add-one), test NLL",
            nll_cat,
            "nats",
            notes={"bits_per_dim": bits_per_dim(nll_cat, D_DIGITS)},
        ),
        Row(
            "flows_digits",
            f"baseline: full-covariance Gaussian (ridge {best_ridge:g} on valid), "
            "test NLL",
            nll_gauss,
            "nats",
            notes={"bits_per_dim": bits_per_dim(nll_gauss, D_DIGITS)},
        ),
    ]
    best_baseline = min(nll_cat, nll_gauss)

    epochs, patience = (
        (3, None) if quick else (30, 10)
    )  # cosine learning rate over the 30 epochs
    pre = lambda: Logit(D_DIGITS, bound=float(LEVELS), alpha=0.01)  # noqa: E731
    makers = {
        "RealNVP (8 couplings, 2x256 MLPs, actnorm)": lambda: RealNVP(
            D_DIGITS, 8, 256, actnorm=True, preprocess=pre()
        ),
        "MAF (8 layers, MADE 1x512, actnorm)": lambda: MAF(
            D_DIGITS, 8, 512, n_hidden_layers=1, actnorm=True, preprocess=pre()
        ),
        "Glow-style (2 levels x 4 steps, 32 channels)": lambda: Glow(
            D_DIGITS,
            4,
            32,
            image_shape=(1, 8, 8),
            n_levels=2,
            preprocess=pre(),
            generator=g,
        ),
    }
    with _threads(1 if dev.type == "cpu" else None):  # small nets: 1 thread is fastest
        for name, make in makers.items():
            torch.manual_seed(0)
            flow = make().to(dev)
            t_train, hist = timed(
                fit_flow,
                flow,
                k_tr.float(),
                epochs=epochs,
                batch_size=100,
                lr=2e-3,
                weight_decay=1e-4,
                valid=x_va,
                patience=patience,
                dequantize=True,
                generator=g,
                quiet=True,
            )
            nll = -mean_log_prob(flow, x_te)
            n_params = sum(p.numel() for p in flow.parameters())
            notes = {
                "bits_per_dim": bits_per_dim(nll, D_DIGITS),
                "best_epoch": hist.values["best_epoch"][0],
                "epochs_run": len(hist.values["valid_nll"]),
                "valid_nll": min(hist.values["valid_nll"]),
                "params": n_params,
                "train_s": t_train,
            }
            rows += [
                Row(
                    "flows_digits",
                    f"{name}: test NLL",
                    nll,
                    "nats",
                    "< both baselines",
                    nll < best_baseline,
                    f"categorical {nll_cat:.2f}, Gaussian {nll_gauss:.2f} nats (same "
                    "run)",
                    notes,
                ),
                Row(
                    "flows_digits",
                    f"{name}: test bits/dim",
                    bits_per_dim(nll, D_DIGITS),
                    "bits/dim",
                    "",
                    None,
                    f"categorical {bits_per_dim(nll_cat, D_DIGITS):.3f}, Gaussian "
                    f"{bits_per_dim(nll_gauss, D_DIGITS):.3f}",
                ),
                Row(
                    "flows_digits",
                    f"{name}: training time ({notes['epochs_run']} epochs)",
                    t_train,
                    "s",
                ),
            ]
    return rows


def flows_maf_iaf_speed(quick: bool = False) -> list[Row]:
    dev = best_device()
    batch, hidden = (200, 128) if quick else (1000, 512)
    dims = (16, 64) if quick else (64, 784)
    g = torch.Generator(device=dev).manual_seed(0)
    rows = []
    with _threads(
        1 if dev.type == "cpu" else None
    ):  # one thread: no contention noise in the ratios
        for d in dims:
            torch.manual_seed(0)
            maf, iaf = MAFLayer(d, hidden).to(dev), IAFLayer(d, hidden).to(dev)
            v = torch.randn(batch, d, generator=g, device=dev)
            t = {}
            with torch.no_grad():
                for what, fn, one_pass in (
                    ("MAF density", lambda: maf(v), True),
                    ("MAF sampling", lambda: maf.inverse(v), False),
                    ("IAF density", lambda: iaf(v), False),
                    ("IAF sampling", lambda: iaf.inverse(v), True),
                ):
                    if one_pass:
                        fn()  # warm-up
                    repeats = (
                        5 if one_pass else (1 if d > 100 else 2)
                    )  # d passes are their own warm-up
                    t[what] = min(timed(fn)[0] for _ in range(repeats))
            threads = torch.get_num_threads()
            where = (
                f"d={d}, batch {batch}, MADE 2x{hidden}, {dev.type}, {threads} threads"
            )
            for what, sec in t.items():
                rows.append(Row("flows_maf_iaf_speed", f"{what} ({where})", sec, "s"))
            for ratio_name, ratio in (
                ("MAF sampling / MAF density", t["MAF sampling"] / t["MAF density"]),
                ("IAF density / IAF sampling", t["IAF density"] / t["IAF sampling"]),
            ):
                rows.append(
                    Row(
                        "flows_maf_iaf_speed",
                        f"{ratio_name} (d={d})",
                        ratio,
                        "x",
                        f">= {d / 10:g}x (d/10)",
                        ratio >= d / 10,
                        f"{d} sequential passes vs 1",
                    )
                )
            same = t["MAF density"] / t["IAF sampling"]
            rows.append(
                Row(
                    "flows_maf_iaf_speed",
                    f"MAF density / IAF sampling (d={d}, both one pass)",
                    same,
                    "x",
                    "0.5x-2x",
                    0.5 <= same <= 2,
                )
            )
    return rows


BENCHMARKS = {"flows_digits": flows_digits, "flows_maf_iaf_speed": flows_maf_iaf_speed}
