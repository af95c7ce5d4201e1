"""Walk-back benchmark (chapter "Sampling from autoencoders", §20.11.3).

* ``chains_walkback``: Gaussian denoising autoencoders (2-64-64-2, ReLU, reconstruction
  noise fixed at sd 0.15) trained on the two-spiral toy (2,000 points) with Gaussian
  corruption of sd 0.2, with one encode-decode step per example and with walk-back over
  k = 5 steps (Bengio et al., 2013), for the same number of parameter updates (Adam,
  learning rate 1e-3, batches of 100). Every 10 updates, 500 chains of figure 20.11
  start uniformly in [-8, 8]^2 and run 50 steps; the chain's *mass outside the
  support* is the fraction of final states farther than 1 from every training point.
  Reported per variant: its mean over the second half of training (after the
  initial transient), averaged over seeds, with the range over seeds; the ratio
  walk-back / one-step (target <= 0.5x: walk-back removes at least half of the
  spurious mass); and the training time (walk-back costs about k times as much per
  update).

Published: Bengio et al. (2013, §3.3 and §4) motivate walk-back by the spurious modes
a one-step DAE leaves far from the data and report it qualitatively; there is no
published number for this measure, so the target is the direction and size of the
effect.
"""

from __future__ import annotations

import torch

from dgmlib.chains import (
    DenoisingAutoencoder,
    GaussianCorruption,
    dae_chain,
    fit_dae,
    mass_outside,
)
from dgmlib.data import toy_2d

from .common import Row, target_met, timed

REFERENCE = (
    "Bengio et al. (2013), walk-back removes spurious modes far from the data "
    "(qualitative; no published number for this measure)"
)


def _curve(walkback: int, seed: int, x, *, epochs: int, n_chains: int):
    gen = torch.Generator().manual_seed(seed)
    ev = torch.Generator().manual_seed(1000 + seed)
    corruption = GaussianCorruption(0.2)
    dae = DenoisingAutoencoder(
        2, (64, 64), "gaussian", activation="relu", sigma=0.15, generator=gen
    )
    out: list[float] = []

    def measure(i, row):
        if (i + 1) % 10 == 0:
            x0 = 16 * torch.rand(n_chains, 2, generator=ev) - 8
            xs = dae_chain(dae, x0, 50, corruption=corruption, generator=ev)
            out.append(mass_outside(xs[-1], x, 1.0))

    fit_dae(
        dae,
        x,
        corruption=corruption,
        walkback=walkback,
        epochs=epochs,
        lr=1e-3,
        generator=gen,
        quiet=True,
        callback=measure,
    )
    return torch.tensor(out, dtype=torch.float64)


def chains_walkback(*, quick: bool = False) -> list[Row]:
    torch.set_num_threads(1)
    seeds = range(2) if quick else range(8)
    epochs, n_chains = (4, 200) if quick else (10, 500)
    x = toy_2d("spiral", 2000, generator=torch.Generator().manual_seed(3))
    rows, late = [], {}
    for k in (1, 5):
        seconds, curves = timed(
            lambda k=k: [
                _curve(k, s, x, epochs=epochs, n_chains=n_chains) for s in seeds
            ]
        )
        per_seed = [float(c[len(c) // 2 :].mean()) for c in curves]
        late[k] = sum(per_seed) / len(per_seed)
        name = "one-step DAE" if k == 1 else f"walk-back k = {k}"
        rows.append(
            Row(
                benchmark="chains_walkback",
                what=f"{name}: mass outside the support, second half of training",
                value=late[k],
                unit="fraction",
                reference=REFERENCE,
                notes={
                    "per_seed": per_seed,
                    "seeds": len(per_seed),
                    "epochs": epochs,
                    "chains": n_chains,
                    "train_and_measure_s": round(seconds, 1),
                },
            )
        )
    ratio = late[5] / max(late[1], 1e-12)
    rows.append(
        Row(
            benchmark="chains_walkback",
            what="walk-back / one-step spurious mass (same number of updates)",
            value=ratio,
            unit="x",
            target="<= 0.5x",
            passed=target_met(ratio, "<= 0.5x"),
            reference=REFERENCE,
            notes={"one_step": late[1], "walkback": late[5]},
        )
    )
    return rows


BENCHMARKS = {"chains_walkback": chains_walkback}
