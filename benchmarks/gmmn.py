"""Implicit generators on digits, judged by their samples (chapter "Generative moment
matching networks").

* ``gmmn_digits``: on the 8x8 digits (grey levels in [0, 1]; chapter 12's split, 1,500
  training and 297 held-out images) four generators are trained in one run:

  - a GAN: an MLP generator 16-256-256-64 (ReLU, sigmoid output) trained by
    ``fit_gan`` (the settings in ``GAN``) against an MLP discriminator;
  - a GMMN (Li et al., 2015): the same generator trained by ``fit_gmmn`` on pixels,
    bandwidths (0.5, 1, 2, 4, 8), batch 300;
  - a GMMN+AE (Li et al., 2015): a denoising autoencoder 64-256-16 (sigmoid code)
    trained first, a GMMN 8-128-128-16 on its codes, samples decoded;
  - the VAE of chapter 12 for grey levels: ``VAE(64, 16, hidden=(128, 128),
    likelihood="gaussian", sigma2=0.15**2)`` trained by ``fit_vae`` (Adam 2e-3, batch
    100, 150 epochs), samples = decoder means clamped to [0, 1], as that chapter shows
    them.

  For each, 297 samples are compared with the 297 held-out digits on the penultimate
  features of ``dgmlib.evaluate.digit_classifier``: the Fréchet distance and
  Kynkäänniemi et al.'s (2019) precision and recall (k = 3). The same numbers for 297
  *training* digits are the floor a perfect model would reach.

There are no published numbers for these features (FIDs are on Inception features of
large images and are not comparable); the references are this run's own data floor.
The target in words: the code-space GMMN's precision above the pixel GMMN's, Li et
al.'s claim that the autoencoder gives better samples.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from dgmlib.adversarial import (
    Autoencoder,
    DecodedGenerator,
    fit_autoencoder,
    fit_gan,
    fit_gmmn,
    sample_gan,
    sample_generator,
)
from dgmlib.data import load_digits
from dgmlib.evaluate import (
    digit_classifier,
    digit_features,
    frechet_distance,
    precision_recall,
)
from dgmlib.latent import VAE, fit_vae

from .common import Row

# fit_gan's keyword arguments beyond the shared ones. The non-saturating cost with these
# MLPs collapsed (recall 0 after 250-2,000 steps); WGAN-GP with fit_gan's defaults
# (lambda 0.1, Adam 1e-3, betas (0.5, 0.9), n_critic 5) trains.
GAN = dict(loss="wgan-gp")


def _mlp(sizes, out=None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1], *([out] if out is not None else []))


def _discriminator() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(64, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 1),
    )


def _split():
    x, _ = load_digits()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:1500]], x[perm[1500:]]


def gmmn_digits(quick: bool = False) -> list[Row]:
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs: one thread beats two that wait
    try:
        return _gmmn_digits(quick)
    finally:
        torch.set_num_threads(n_threads)


def _gmmn_digits(quick: bool) -> list[Row]:
    steps = 40 if quick else 2000
    ae_epochs, vae_epochs = (3, 3) if quick else (100, 150)
    x_train, x_test = _split()
    n = len(x_test)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    clf = digit_classifier()
    phi_test = digit_features(x_test, clf)
    samples, seconds = {}, {}

    t0 = time.perf_counter()
    G = _mlp((16, 256, 256, 64), nn.Sigmoid())
    fit_gan(
        G,
        _discriminator(),
        x_train,
        latent_dim=16,
        steps=steps if not quick else 10,
        batch_size=100,
        generator=g,
        quiet=True,
        **GAN,
    )
    samples["GAN"] = sample_gan(G, n, latent_dim=16, generator=g)
    seconds["GAN"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    G = _mlp((16, 256, 256, 64), nn.Sigmoid())
    fit_gmmn(
        G,
        x_train,
        latent_dim=16,
        bandwidths=(0.5, 1.0, 2.0, 4.0, 8.0),
        batch_size=300,
        steps=steps,
        generator=g,
        quiet=True,
    )
    samples["GMMN"] = sample_generator(G, n, latent_dim=16, generator=g)
    seconds["GMMN"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ae = Autoencoder(64, 16, hidden=(256,))
    fit_autoencoder(ae, x_train, epochs=ae_epochs, noise=0.1, generator=g, quiet=True)
    with torch.no_grad():
        codes = ae.encode(x_train)
    G = _mlp((8, 128, 128, 16), nn.Sigmoid())
    fit_gmmn(
        G,
        codes,
        latent_dim=8,
        bandwidths=(0.1, 0.2, 0.5, 1.0, 2.0),
        batch_size=300,
        steps=steps,
        generator=g,
        quiet=True,
    )
    samples["GMMN+AE"] = sample_generator(
        DecodedGenerator(G, ae), n, latent_dim=8, generator=g
    )
    seconds["GMMN+AE"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    vae = VAE(
        64, 16, hidden=(128, 128), likelihood="gaussian", sigma2=0.15**2, generator=g
    )
    fit_vae(vae, x_train, epochs=vae_epochs, batch_size=100, lr=2e-3, generator=g)
    with torch.no_grad():
        samples["VAE (chapter 12)"] = vae.sample(n, mean=True, generator=g).clamp(0, 1)
    seconds["VAE (chapter 12)"] = time.perf_counter() - t0

    scores = {}
    for name, x in {"training digits": x_train[:n], **samples}.items():
        phi = digit_features(x, clf)
        prec, rec = precision_recall(phi_test, phi, k=3)
        scores[name] = (frechet_distance(phi, phi_test), prec, rec)
    floor = scores.pop("training digits")
    ref = (
        f"297 training digits: Fréchet {floor[0]:.2f}, precision {floor[1]:.2f}, "
        f"recall {floor[2]:.2f} (this run)"
    )
    rows = []
    for name, (fd, prec, rec) in scores.items():
        notes = {"train_s": seconds[name], "steps": steps, "quick": quick}
        rows += [
            Row(
                "gmmn_digits",
                f"{name}: Fréchet distance",
                fd,
                "feature units²",
                "",
                None,
                ref,
                notes,
            ),
            Row(
                "gmmn_digits",
                f"{name}: precision (k = 3)",
                prec,
                "fraction",
                "",
                None,
                ref,
            ),
            Row(
                "gmmn_digits", f"{name}: recall (k = 3)", rec, "fraction", "", None, ref
            ),
            Row("gmmn_digits", f"{name}: training time", seconds[name], "s"),
        ]
    better = scores["GMMN+AE"][1] > scores["GMMN"][1]
    rows.append(
        Row(
            "gmmn_digits",
            "GMMN+AE precision minus GMMN precision",
            scores["GMMN+AE"][1] - scores["GMMN"][1],
            "fraction",
            "> 0 (Li et al.: better samples)",
            better,
            "Li et al. (2015): GMMN+AE samples visibly better than GMMN's (no metric)",
        )
    )
    return rows


BENCHMARKS = {"gmmn_digits": gmmn_digits}
