"""Natural image patches (issue 11, chapter 8's table): test log-likelihood in nats per
8x8 patch of real-valued Boltzmann machines against the baselines of chapter 2.

* ``patches_table``: the patches of :func:`dgmlib.data.natural_image_patches` (10,000
  training, 5,000 test, the fixed spatial split, seed 0; standardised grey levels), one
  table: a full-covariance Gaussian (closed form), a mixture of full-covariance
  Gaussians (EM, scikit-learn's ``GaussianMixture``, k-means start), a GRBM of 20 hidden
  units with exact log Z and by AIS on the same model, a GRBM of 64 hidden units by
  AIS, and an mcRBM (8 mean + 8 covariance units) exact and a larger one by AIS. The
  RBMs are trained on PCA-whitened patches (as Ranzato & Hinton 2010 preprocess) and
  their densities mapped back by the Jacobian of the whitening, so every row is a
  density of the same standardised patches. Also a GRBM with unit precisions on the
  unwhitened patches.

Theis, Gerwinn, Sinz & Bethge (2011, "In all likelihood, deep belief is not enough")
found on van Hateren patches that GRBMs (and DBNs built on them) fall behind a simple
mixture of Gaussians; the target row checks that ordering here.
"""

from __future__ import annotations

import time

import torch
from sklearn.mixture import GaussianMixture

from dgmlib.data import natural_image_patches
from dgmlib.energy import (
    GaussianBernoulliRBM,
    MeanCovarianceRBM,
    fit_covariance_rbm,
    fit_grbm,
    mcrbm_log_partition,
    pca_whitening,
)
from dgmlib.exact import log_partition
from dgmlib.mcmc import GRBMPath, MCRBMPath, ais

from .common import Row

REFERENCE = (
    "Theis et al. (2011): GRBMs behind a mixture of Gaussians on natural patches "
    "(van Hateren, 8x8 and 16x16)"
)
FULL = {
    "n_train": 10000,
    "n_test": 5000,
    "k_mog": 8,
    "em_iter": 200,
    "grbm_epochs": 5,
    "grbm_big": 64,
    "mc_epochs": 2,
    "mc_big": (8, 24),
    "ais_betas": 1000,
    "ais_chains": 100,
}
QUICK = FULL | {
    "n_train": 2000,
    "n_test": 500,
    "k_mog": 2,
    "em_iter": 5,
    "grbm_epochs": 1,
    "grbm_big": 24,
    "mc_epochs": 1,
    "mc_big": (4, 4),
    "ais_betas": 50,
    "ais_chains": 10,
}


def _row(what, value, *, target="", notes=None, reference=REFERENCE, unit="nats"):
    return Row(
        "patches_table",
        what,
        float(value),
        unit,
        target=target,
        reference=reference,
        notes=notes or {},
    )


def patches_table(*, quick: bool) -> list[Row]:
    cfg = QUICK if quick else FULL
    torch.set_default_dtype(torch.float64)
    try:
        return _table(cfg)
    finally:
        torch.set_default_dtype(torch.float32)


def _table(cfg) -> list[Row]:
    g = torch.Generator().manual_seed(0)
    f64 = torch.float64
    x_tr, x_te = natural_image_patches(
        cfg["n_train"], cfg["n_test"], generator=g, dtype=f64
    )
    rows, ll = [], {}
    # full-covariance Gaussian, maximum likelihood
    mvn = torch.distributions.MultivariateNormal(x_tr.mean(0), torch.cov(x_tr.T))
    ll["Gaussian"] = float(mvn.log_prob(x_te).mean())
    rows.append(_row("full-covariance Gaussian, test log-likelihood", ll["Gaussian"]))
    # mixture of Gaussians by EM (chapter 2)
    t0 = time.perf_counter()
    mog = GaussianMixture(
        cfg["k_mog"], covariance_type="full", max_iter=cfg["em_iter"], random_state=0
    ).fit(x_tr.numpy())
    ll["MoG"] = float(mog.score(x_te.numpy()))
    rows.append(
        _row(
            f"mixture of {cfg['k_mog']} full-covariance Gaussians (EM), test "
            "log-likelihood",
            ll["MoG"],
            notes={"seconds": time.perf_counter() - t0},
        )
    )
    # RBMs on whitened patches; log p(x) = log p(z) + log|det A|
    mean, A, log_det = pca_whitening(x_tr)
    z_tr, z_te = (x_tr - mean) @ A, (x_te - mean) @ A

    raw = GaussianBernoulliRBM(64, 20, dtype=f64, generator=g)
    fit_grbm(raw, x_tr, epochs=cfg["grbm_epochs"], lr=0.01, generator=g, quiet=True)
    ll["GRBM raw"] = float(raw.log_prob(x_te, log_partition(raw)).mean())
    rows.append(
        _row(
            "GRBM, 20 hidden, unit precisions, unwhitened patches, exact",
            ll["GRBM raw"],
        )
    )

    grbm = GaussianBernoulliRBM(64, 20, dtype=f64, generator=g)
    fit_grbm(grbm, z_tr, epochs=cfg["grbm_epochs"], lr=0.01, generator=g, quiet=True)
    log_z = float(log_partition(grbm))
    ll["GRBM exact"] = float(grbm.log_prob(z_te, log_z).mean()) + log_det
    rows.append(_row("GRBM, 20 hidden, whitened, exact log Z", ll["GRBM exact"]))
    res = ais(
        GRBMPath(grbm),
        n_betas=cfg["ais_betas"],
        n_chains=cfg["ais_chains"],
        generator=g,
    )
    rows.append(
        _row(
            "GRBM, 20 hidden: |AIS log Z - exact log Z|",
            abs(res.log_z - log_z),
            target="<= 0.1 nats",
            notes={"ais_stderr": res.stderr, "exact_log_z": log_z},
            reference="exact enumeration of the 2^20 hidden states",
        )
    )

    big = GaussianBernoulliRBM(64, cfg["grbm_big"], dtype=f64, generator=g)
    fit_grbm(big, z_tr, epochs=cfg["grbm_epochs"], lr=0.01, generator=g, quiet=True)
    res = ais(
        GRBMPath(big), n_betas=cfg["ais_betas"], n_chains=cfg["ais_chains"], generator=g
    )
    ll["GRBM big"] = float(big.log_prob(z_te, res.log_z).mean()) + log_det
    rows.append(
        _row(
            f"GRBM, {cfg['grbm_big']} hidden, whitened, AIS log Z",
            ll["GRBM big"],
            notes={"ais_stderr": res.stderr},
        )
    )

    mc = MeanCovarianceRBM(64, 8, 8, dtype=f64, generator=g, init_std=0.05)
    fit_covariance_rbm(mc, z_tr, epochs=cfg["mc_epochs"], generator=g, quiet=True)
    with torch.no_grad():
        log_z_mc = float(mcrbm_log_partition(mc))
        ll["mcRBM exact"] = float((-mc.free_energy(z_te)).mean()) - log_z_mc + log_det
    rows.append(_row("mcRBM, 8 mean + 8 cov units, exact log Z", ll["mcRBM exact"]))

    hm, hc = cfg["mc_big"]
    mc_big = MeanCovarianceRBM(64, hm, hc, dtype=f64, generator=g, init_std=0.05)
    fit_covariance_rbm(mc_big, z_tr, epochs=cfg["mc_epochs"], generator=g, quiet=True)
    res = ais(
        MCRBMPath(mc_big),
        n_betas=cfg["ais_betas"],
        n_chains=cfg["ais_chains"],
        generator=g,
    )
    with torch.no_grad():
        ll["mcRBM big"] = (
            float((-mc_big.free_energy(z_te)).mean()) - res.log_z + log_det
        )
    rows.append(
        _row(
            f"mcRBM, {hm} mean + {hc} cov units, AIS log Z",
            ll["mcRBM big"],
            notes={"ais_stderr": res.stderr},
        )
    )

    best_rbm = max(v for k, v in ll.items() if "RBM" in k)
    rows.append(
        _row(
            "mixture of Gaussians minus the best RBM (positive: the mixture wins)",
            ll["MoG"] - best_rbm,
            target="> 0 nats",
            notes={k: round(v, 3) for k, v in ll.items()},
        )
    )
    return rows


BENCHMARKS = {"patches_table": patches_table}

__all__ = ["BENCHMARKS", "patches_table"]
