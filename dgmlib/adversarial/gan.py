"""Generative adversarial networks (§20.10.4, §20.10.6; lecture 1).

Notation (eq. 20.80-20.81):

    G          generator network, x = G(z), z ~ N(0, I) of size ``latent_dim``
    D          discriminator: a logit l(x), with d(x) = sigmoid(l(x)) = P(real | x);
               for the Wasserstein losses D is a critic f(x), an unbounded score
    v(G, D)    E_data log d(x) + E_z log(1 - d(G(z)))              (eq. 20.81)
    d_loss     what D minimises: -v, the cross-entropy of real-vs-fake
    g_loss     what G minimises: v's second term (minimax), -E log d(G(z))
               (non-saturating) or -1/2 E exp(l(G(z))) (Goodfellow's 2014 cost whose
               expected gradient is the maximum-likelihood one at the optimal D)

Models are plain ``nn.Module`` s; :func:`fit_gan` is the algorithm that plays the game.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.train import History, fit, minibatches

__all__ = [
    "GAN_LOSSES",
    "FIT_LOSSES",
    "gan_losses",
    "gradient_penalty",
    "pack",
    "sample_gan",
    "fit_gan",
]

GAN_LOSSES = ("minimax", "nonsaturating", "ml", "lsgan", "wgan")
FIT_LOSSES = ("nonsaturating", "minimax", "ml", "lsgan", "wgan-gp", "wgan-clip")


def gan_losses(
    d_real_logits: Tensor, d_fake_logits: Tensor, kind: str = "minimax"
) -> tuple[Tensor, Tensor]:
    """The discriminator's and the generator's costs from D's outputs (eq. 20.81).

    Parameters
    ----------
    d_real_logits : Tensor, shape (B,) or (B, 1)
        l(x) on data; d(x) = sigmoid(l(x)).
    d_fake_logits : Tensor, shape (M,) or (M, 1)
        l(G(z)) on generated samples.
    kind : str
        ``"minimax"``: g_loss = E log(1 - d(G(z))), the zero-sum game of eq. 20.80;
        ``"nonsaturating"``: g_loss = -E log d(G(z)) (Goodfellow et al., 2014);
        ``"ml"``: g_loss = -1/2 E exp(l(G(z))) (Goodfellow, 2014: at the optimal D,
        exp(l) = p_data / p_model and the expected gradient is that of maximum
        likelihood); ``"lsgan"``: least squares on the raw outputs (Mao et al.,
        2017); ``"wgan"``: D is a critic, d_loss = E f(G(z)) - E f(x) and
        g_loss = -E f(G(z)) (Arjovsky et al., 2017; add the Lipschitz constraint
        yourself, e.g. :func:`gradient_penalty`).

    Returns
    -------
    (d_loss, g_loss) : two scalar Tensors. For the three cross-entropy kinds
    d_loss = -v (eq. 20.81), the same for all three.
    """
    if kind not in GAN_LOSSES:
        raise ValueError(f"kind must be one of {GAN_LOSSES}; got {kind!r}")
    lr_, lf = _logits(d_real_logits, "d_real_logits"), _logits(d_fake_logits, "fake")
    # [maths:gan.losses]
    if kind == "wgan":  # critic scores, no sigmoid
        return lf.mean() - lr_.mean(), -lf.mean()
    if kind == "lsgan":  # targets 1 for real, 0 for fake
        d_loss = 0.5 * ((lr_ - 1) ** 2).mean() + 0.5 * (lf**2).mean()
        return d_loss, 0.5 * ((lf - 1) ** 2).mean()
    # log d(x) = -softplus(-l), log(1 - d(x)) = -softplus(l)
    d_loss = F.softplus(-lr_).mean() + F.softplus(lf).mean()  # -v, eq. 20.81
    if kind == "minimax":
        g_loss = -F.softplus(lf).mean()  # E log(1 - d(G(z))): saturates as d -> 0
    elif kind == "nonsaturating":
        g_loss = F.softplus(-lf).mean()  # -E log d(G(z))
    else:  # "ml": exp(l) estimates p_data / p_model
        g_loss = -0.5 * lf.exp().mean()
    # [/maths:gan.losses]
    return d_loss, g_loss


def _logits(t: Tensor, name: str) -> Tensor:
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1:
        raise ValueError(
            f"{name} must have shape (B,) or (B, 1) (one logit per example); got "
            f"{tuple(t.shape)}. Make D end in a single output unit."
        )
    return t


def gradient_penalty(
    D: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """E (||grad_x f(x_hat)||_2 - 1)^2 at x_hat = eps x + (1 - eps) x_fake,
    eps ~ U[0, 1] per example (Gulrajani et al., 2017, eq. 3; multiply by lambda).

    ``real`` and ``fake`` are (B, ...) of the same shape; the norm is over all
    non-batch axes. The graph is kept, so the penalty's gradient reaches D's
    parameters.
    """
    if real.shape != fake.shape:
        raise ValueError(
            "gradient_penalty needs real and fake batches of the same shape; got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    eps = _interpolation_weights(real, generator)  # (B, 1, ...)
    # [maths:gan.gradient_penalty]
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    f = D(x_hat)
    (grad,) = torch.autograd.grad(f.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)  # (B,)
    return ((norm - 1) ** 2).mean()
    # [/maths:gan.gradient_penalty]


def _interpolation_weights(real: Tensor, generator) -> Tensor:
    """eps ~ U[0, 1], one per example, shaped to broadcast against ``real``."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    where = generator.device if generator is not None else real.device
    eps = torch.rand(shape, generator=generator, device=where, dtype=real.dtype)
    return eps.to(real.device)


def pack(x: Tensor, m: int) -> Tensor:
    """Concatenate each run of ``m`` consecutive examples along axis 1 (PacGAN, Lin et
    al., 2018): (B, d) -> (B/m, m d); (B, C, H, W) -> (B/m, m C, H, W).
    """
    if m < 1 or x.shape[0] % m:
        raise ValueError(
            f"pack needs m >= 1 dividing the batch size; got m={m}, batch "
            f"{x.shape[0]}. Choose batch_size a multiple of pack."
        )
    if m == 1:
        return x
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


def _randn(shape, generator, like: Tensor) -> Tensor:
    where = generator.device if generator is not None else like.device
    z = torch.randn(shape, generator=generator, device=where, dtype=like.dtype)
    return z.to(like.device)


def _first_param(m: nn.Module) -> Tensor:
    p = next(itertools.chain(m.parameters(), m.buffers()), None)
    return p if p is not None else torch.empty(0)


@torch.no_grad()
def sample_gan(
    G: nn.Module,
    n: int,
    *,
    latent_dim: int,
    labels: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """n samples x = G(z), z ~ N(0, I) (or G(z, labels) for a conditional G), in eval
    mode; G's training mode is restored afterwards.
    """
    p = _first_param(G)
    z = _randn((n, latent_dim), generator, p)
    was = G.training
    G.eval()
    try:
        return G(z) if labels is None else G(z, labels.to(p.device))
    finally:
        G.train(was)


_DEFAULTS = {  # loss: (optimizer, lr, betas, n_critic)
    # DCGAN's settings (Radford et al., 2015)
    "nonsaturating": ("adam", 2e-4, (0.5, 0.999), 1),
    "minimax": ("adam", 2e-4, (0.5, 0.999), 1),
    "ml": ("adam", 2e-4, (0.5, 0.999), 1),
    "lsgan": ("adam", 2e-4, (0.5, 0.999), 1),
    # Gulrajani et al. (2017): n_critic 5 and betas (0.5, 0.9) of the authors' toy
    # script (with gp_weight 0.1), at a faster rate, 1e-3 (see fit_gan's docstring)
    "wgan-gp": ("adam", 1e-3, (0.5, 0.9), 5),
    # Arjovsky et al. (2017), algorithm 1: RMSProp 5e-5, clip 0.01, n_critic = 5
    "wgan-clip": ("rmsprop", 5e-5, None, 5),
}


def _optimizer(kind, params, lr, betas):
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    return torch.optim.RMSprop(params, lr=lr)


def fit_gan(
    G: nn.Module,
    D: nn.Module,
    data: Tensor | tuple[Tensor, Tensor],
    *,
    latent_dim: int,
    loss: str = "nonsaturating",
    steps: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    lr: float | None = None,
    lr_d: float | None = None,
    betas: tuple[float, float] | None = None,
    n_critic: int | None = None,
    gp_weight: float = 0.1,
    clip: float = 0.01,
    pack_size: int = 1,
    unroll: int = 0,
    unroll_lr: float | None = None,
    dropout_in_g_step: bool = True,
    lr_decay: bool = False,
    ema: float | None = None,
    callback: Callable[[int, dict[str, float]], bool | None] | None = None,
    quiet: bool | None = None,
) -> History:
    """Play the GAN game (eq. 20.80) for ``steps`` generator updates.

    Each step takes ``n_critic`` discriminator updates (each on a fresh data batch and
    fresh z), then one generator update. ``data`` is (N, ...) or, for a conditional
    GAN (Mirza & Osindero, 2014), a pair (x, y): then G is called as G(z, y) and D as
    D(x, y), the fake samples reusing the real batch's labels.

    Parameters
    ----------
    loss : ``"nonsaturating"`` (default), ``"minimax"``, ``"ml"``, ``"lsgan"`` (see
        :func:`gan_losses`), ``"wgan-gp"`` (critic + ``gp_weight`` x
        :func:`gradient_penalty`, Gulrajani et al., 2017) or ``"wgan-clip"`` (critic
        weights clipped to [-clip, clip] after each update, Arjovsky et al., 2017).
    lr, betas, n_critic : None picks each loss's defaults: Adam 2e-4, betas
        (0.5, 0.999), n_critic 1 (DCGAN's settings) for the cross-entropy losses;
        RMSProp 5e-5, n_critic 5 for wgan-clip (Arjovsky et al.'s algorithm 1); Adam
        1e-3, betas (0.5, 0.9), n_critic 5 with ``gp_weight=0.1`` for wgan-gp. The
        last are the settings of Gulrajani et al.'s own toy script at a ten times
        faster rate, not those of their paper's algorithm 1 (``gp_weight=10,
        lr=1e-4, betas=(0, 0.9)``, for large images): with three-layer MLPs the
        paper's settings reach 0-1 of the 8 modes of a 2-D ring in 2,000 steps and
        train 8x8 digits more slowly, where these cover the ring in 1,500 and give
        better digits (chapter 13, "Defaults that work"). ``lr_d`` overrides the
        discriminator's rate.
    gp_weight : lambda, the weight of the gradient penalty (wgan-gp only).
    pack_size : m > 1 shows D m samples at once, concatenated along axis 1 (PacGAN);
        D must take m times the features (or channels); batch_size must divide by m.
    unroll : k > 0 makes the generator's loss that of D after k differentiable SGD
        steps (rate ``unroll_lr``, default the D rate x 10) on the current batch (Metz
        et al., 2017, with SGD instead of Adam in the unrolled steps); D itself still
        takes one ordinary update.
    lr_decay : if True both rates fall linearly to zero over the ``steps``, which
        lets the samples settle on the modes at the end of training.
    ema : a decay beta in (0, 1) keeps an exponential moving average of G's
        parameters, theta_bar <- beta_t theta_bar + (1 - beta_t) theta after each
        generator step, with the warm-up beta_t = min(beta, (1 + t) / (10 + t)) at
        step t = 0, 1, ... so that the initial weights do not linger; at the end the
        average is copied into G (Yazici et al., 2019, "The unusual effectiveness
        of averaging in GAN training"). Averaging damps the orbiting of the game
        (§20.10.4): with a constant rate, beta = 0.99 pulls the samples of a
        mixture much closer to its modes. G's buffers are those of the last step.
    dropout_in_g_step : if False, D is put in eval mode (dropout off, the
        deterministic "weights scaled" network) while the generator's gradient is
        computed, the variant the textbook (§20.10.4) says works worse.
    generator : the torch.Generator for z, the minibatches and the penalty's eps.

    Returns
    -------
    History with ``d_loss`` and ``g_loss`` per step (and ``gp`` for wgan-gp).
    """
    if loss not in FIT_LOSSES:
        raise ValueError(f"loss must be one of {FIT_LOSSES}; got {loss!r}")
    if steps < 0 or batch_size < 1 or latent_dim < 1:
        raise ValueError(
            "fit_gan needs steps >= 0, batch_size >= 1 and latent_dim >= 1; got "
            f"steps={steps}, batch_size={batch_size}, latent_dim={latent_dim}"
        )
    pack(torch.empty(batch_size, 1), pack_size)  # checks pack_size | batch_size
    if ema is not None and not 0 < ema < 1:
        raise ValueError(
            f"ema must be a decay in (0, 1) (e.g. 0.99) or None; got {ema!r}"
        )
    conditional = isinstance(data, tuple)
    if conditional and pack_size > 1:
        raise ValueError(
            "fit_gan packs unconditional GANs only; got data=(x, y) with "
            f"pack_size={pack_size}. Use pack_size=1 for a conditional GAN."
        )
    x_all = data[0] if conditional else data
    if x_all.shape[0] < batch_size:
        raise ValueError(
            f"data has {x_all.shape[0]} examples, fewer than batch_size={batch_size}"
        )
    kind, lr0, betas0, n_critic0 = _DEFAULTS[loss]
    lr = lr0 if lr is None else lr
    lr_d = lr if lr_d is None else lr_d
    betas = betas0 if betas is None else betas
    n_critic = n_critic0 if n_critic is None else n_critic
    unroll_lr = 10 * lr_d if unroll_lr is None else unroll_lr
    gan_kind = {"wgan-gp": "wgan", "wgan-clip": "wgan"}.get(loss, loss)
    p = _first_param(G)
    data = tuple(t.to(p.device) for t in data) if conditional else data.to(p.device)
    opt_g = _optimizer(kind, G.parameters(), lr, betas)
    opt_d = _optimizer(kind, D.parameters(), lr_d, betas)
    decay = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda i: max(0.0, 1 - i / steps))
        for o in ((opt_g, opt_d) if lr_decay else ())
    ]

    def batches():  # endless reshuffled epochs, full batches only
        while True:
            for b in minibatches(data, batch_size, generator=generator):
                if (b[0] if conditional else b).shape[0] == batch_size:
                    yield b

    stream = batches()
    g_params = list(G.parameters())
    average = [w.detach().clone() for w in g_params] if ema is not None else None
    n_done = [0]  # generator steps taken, for the average's warm-up

    def fake_of(b):
        x = b[0] if conditional else b
        z = _randn((batch_size, latent_dim), generator, x)
        out = G(z, b[1]) if conditional else G(z)
        if out.shape != x.shape:
            raise ValueError(
                f"G returned shape {tuple(out.shape)} for z of shape "
                f"{tuple(z.shape)}; expected {tuple(x.shape)}, the shape of a data "
                f"batch. G must map (B, latent_dim={latent_dim}) to (B, "
                f"*data.shape[1:]) = {tuple(x.shape)}."
            )
        return out

    def logits(net, x, b):  # D on packed inputs, one score per pack
        xp = pack(x, pack_size)
        if conditional:
            return _logits(net(xp, b[1]), "D's output")
        return _logits(net(xp), "D's output")

    def step() -> dict[str, float]:
        row: dict[str, float] = {}
        for _ in range(n_critic):
            b = next(stream)
            x = b[0] if conditional else b
            with torch.no_grad():
                fake = fake_of(b)
            d_loss, _ = gan_losses(logits(D, x, b), logits(D, fake, b), gan_kind)
            if loss == "wgan-gp":
                gp = gradient_penalty(
                    (lambda t, y=b[1]: D(t, y)) if conditional else D,
                    pack(x, pack_size),
                    pack(fake, pack_size),
                    generator=generator,
                )
                row["gp"] = gp.item()
                d_loss = d_loss + gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            if loss == "wgan-clip":
                with torch.no_grad():
                    for w in D.parameters():
                        w.clamp_(-clip, clip)
        row["d_loss"] = d_loss.item()
        b = next(stream)
        x = b[0] if conditional else b
        fake = fake_of(b)
        was = D.training
        if not dropout_in_g_step:
            D.eval()
        if unroll > 0:
            lf = _unrolled_logits(D, logits, x, fake, b, unroll, unroll_lr, gan_kind)
        else:
            lf = logits(D, fake, b)
        D.train(was)
        _, g_loss = gan_losses(lf.detach(), lf, gan_kind)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)  # G's step left gradients in D
        if average is not None:
            t = n_done[0]
            _ema_update(average, g_params, min(ema, (1 + t) / (10 + t)))
        n_done[0] += 1
        row["g_loss"] = g_loss.item()
        for sched in decay:
            sched.step()
        return row

    history = fit(
        step, n_steps=steps, desc=f"fit_gan ({loss})", quiet=quiet, callback=callback
    )
    if average is not None:
        with torch.no_grad():
            for w, a in zip(g_params, average):
                w.copy_(a)
    return history


@torch.no_grad()
def _ema_update(average: list[Tensor], params: list[Tensor], beta: float) -> None:
    """theta_bar <- beta theta_bar + (1 - beta) theta, in place."""
    for a, w in zip(average, params):
        a.mul_(beta).add_(w.detach(), alpha=1 - beta)


def _unrolled_logits(D, logits, x, fake, b, k, rate, gan_kind) -> Tensor:
    """D's logits on ``fake`` after k differentiable SGD steps of D on (x, fake)
    (Metz et al., 2017): the generator sees how D would answer its move.
    """
    from torch.func import functional_call

    params = dict(D.named_parameters())

    def net(theta):
        return lambda t, *y: functional_call(D, theta, (t, *y))

    theta = {n: w for n, w in params.items()}
    for _ in range(k):
        d_loss, _ = gan_losses(
            logits(net(theta), x, b), logits(net(theta), fake, b), gan_kind
        )
        grads = torch.autograd.grad(d_loss, list(theta.values()), create_graph=True)
        theta = {n: w - rate * gw for (n, w), gw in zip(theta.items(), grads)}
    return logits(net(theta), fake, b)
