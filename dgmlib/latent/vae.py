"""Variational autoencoders and importance-weighted bounds (book §20.10.3).

A VAE is a directed latent-variable model with a neural decoder (Kingma & Welling, 2014;
Rezende et al., 2014)::

    z ~ p(z) = N(0, I_q),
    x | z ~ p(x | z) = Bernoulli(sigmoid(g(z)))  or  N(g(z), sigma^2 I)

trained together with an encoder, the approximate posterior q(z | x) = N(mu(x), diag
sigma^2(x)), by maximising the evidence lower bound (ELBO) of §20.10.3 with the
reparametrization z = mu(x) + sigma(x) * eps, eps ~ N(0, I) (§20.9):

* eq. 20.76:  L(q) = E_{z~q(z|x)} [log p(z, x)] + H(q(z|x))
* eq. 20.77:       = E_{z~q(z|x)} [log p(x|z)] - KL(q(z|x) || p(z))
* eq. 20.78:       <= log p(x)

:meth:`VAE.elbo` estimates it with ``kl="analytic"`` (eq. 20.77, the KL in closed form,
one sample for the expected log-likelihood) or ``kl="mc"`` (log p(x, z) - log q(z|x) at
the sample, a Monte-Carlo estimate of eq. 20.76). Both have the same expectation.
:func:`iwae_bound` is the importance-weighted bound of Burda et al. (2016), L_k = E log
(1/k) sum_i p(x, z_i)/q(z_i|x), which is the ELBO's expectation for k = 1, increases
with k and tends to log p(x).

Notation
--------
=======================  ==========  ===========  ==================================
maths                    name        shape        meaning
=======================  ==========  ===========  ==================================
x                        x           (B, D)       observations
z                        z           (B, q),      latent code; prior p(z) = N(0, I_q)
                                     (K, B, q)
mu(x), log sigma^2(x)    mu, logvar  (B, q)       encoder: q(z|x) =
                                                  N(mu, diag exp(logvar))
eps                      eps         (K, B, q)    N(0, I) noise;
                                                  z = mu + exp(logvar/2) eps
g(z)                     decode(z)   (..., D)     decoder logits (Bernoulli) or
                                                  mean (Gaussian)
sigma_x^2                log_sigma2  ()           Gaussian decoder's noise variance
                                                  (log)
log p(x,z) - log q(z|x)  log_w       (K, B)       log importance weights
L(q), L_k                elbo, iwae  (B,)         bounds on log p(x), nats
=======================  ==========  ===========  ==================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_binary, check_shape
from dgmlib.latent.linear import PPCA
from dgmlib.train import History, fit

__all__ = [
    "VAE",
    "gaussian_kl",
    "log_importance_weights",
    "iwae_bound",
    "fit_vae",
    "active_units",
    "kl_per_dimension",
    "mlp",
]

LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian")
_ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU}
_CHUNK_ELEMENTS = (
    1 << 22
)  # iwae_bound: about this many floats in the widest activation per chunk


def mlp(sizes: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """Linear layers of the given ``sizes`` with ``activation`` between them
    (none after the last).
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}"
        )
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per dimension, in closed form.

    KL_j = 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)  (Kingma & Welling, 2014,
    appendix B). Sum over the last axis for the KL term of eq. 20.77.

    Parameters
    ----------
    mu, logvar : Tensor, shape (..., q)

    Returns
    -------
    Tensor, shape (..., q), nats
    """
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)


class VAE(nn.Module):
    """A variational autoencoder with one stochastic layer (§20.10.3).

    Encoder: an MLP x -> (mu, logvar) of q(z|x) = N(mu, diag exp(logvar)) (amortised
    inference: one network gives the posterior approximation of every x). Decoder: an
    MLP z -> g(z), the logits of p(x|z) = prod_d Bernoulli(x_d; sigmoid(g_d(z))) or the
    mean of p(x|z) = N(x; g(z), sigma_x^2 I). Prior p(z) = N(0, I).

    Parameters
    ----------
    x_dim : int
        D, the number of observed variables.
    z_dim : int
        q, the number of latent variables.
    hidden : int or sequence of int
        Widths of the encoder's hidden layers (the decoder uses them reversed). ``()``
        makes both maps linear: with ``likelihood="gaussian"`` the model is then
        probabilistic PCA (:meth:`from_ppca`, :meth:`to_ppca`).
    likelihood : {"bernoulli", "gaussian"}
        The decoder's distribution. Bernoulli needs binary x.
    activation : {"tanh", "softplus", "relu"}
    sigma2 : float, optional
        Gaussian decoder only: a fixed noise variance sigma_x^2. ``None`` learns it (one
        shared variance, initialised at 1).
    generator : torch.Generator, optional
        Draws the initial weights (PyTorch's default uniform(+-1/sqrt(fan_in)));
        ``None`` uses torch's global generator like ``nn.Linear``.
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: int,
        hidden: int | Sequence[int] = (200, 200),
        likelihood: str = "bernoulli",
        *,
        activation: str = "tanh",
        sigma2: float | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        for name, value in (("x_dim", x_dim), ("z_dim", z_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VAE: {name} must be an int >= 1; got {value!r}")
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"VAE: hidden must be positive ints; got {hidden!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"VAE: likelihood must be one of {LIKELIHOODS}; got {likelihood!r}"
            )
        if sigma2 is not None and (likelihood != "gaussian" or not sigma2 > 0):
            raise ValueError(
                "VAE: sigma2 is a positive variance for likelihood='gaussian'; got "
                f"{sigma2!r}"
            )
        self.x_dim, self.z_dim, self.hidden, self.likelihood = (
            x_dim,
            z_dim,
            hidden,
            likelihood,
        )
        self.encoder = mlp(
            (x_dim, *hidden, 2 * z_dim), activation
        )  # x (B, D) -> [mu, logvar] (B, 2q)
        self.decoder = mlp(
            (z_dim, *reversed(hidden), x_dim), activation
        )  # z (..., q) -> g(z) (..., D)
        if likelihood == "gaussian":
            if sigma2 is None:
                self.log_sigma2 = nn.Parameter(torch.zeros(()))
            else:
                self.register_buffer("log_sigma2", torch.tensor(math.log(sigma2)))
        if generator is not None:
            with torch.no_grad():
                for layer in self.modules():
                    if isinstance(layer, nn.Linear):
                        bound = 1.0 / math.sqrt(layer.in_features)
                        for p in (layer.weight, layer.bias):
                            p.copy_(
                                (
                                    torch.rand(
                                        p.shape,
                                        generator=generator,
                                        device=generator.device,
                                    )
                                    * 2
                                    - 1
                                )
                                * bound
                            )

    # ------------------------------------------------------------------ the model's
    # pieces
    @property
    def _like(self) -> dict:
        p = self.decoder[-1].weight
        return dict(dtype=p.dtype, device=p.device)

    def _check_x(self, x: Tensor) -> Tensor:
        """Validate a (B, D) batch (binary for Bernoulli) and cast it to the model's
        dtype and device.
        """
        who = f"VAE(likelihood={self.likelihood!r})"
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        check_shape(x, ndim=2, last_dim=self.x_dim, name="x", model=who)
        if self.likelihood == "bernoulli":
            check_binary(x, name="x", model=who)
        return x.to(**self._like)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's q(z|x) = N(mu, diag exp(logvar)). (B, D) -> (mu (B, q), logvar
        (B, q)).
        """
        mu, logvar = self.encoder(self._check_x(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """g(z): the logits (Bernoulli) or the mean (Gaussian) of p(x|z). (..., q) ->
        (..., D).
        """
        return self.decoder(z)

    def decode_mean(self, z: Tensor) -> Tensor:
        """E[x | z]: sigmoid(g(z)) (Bernoulli) or g(z) (Gaussian).

        (..., q) -> (..., D).
        """
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) of the decoder, summed over the D variables.

        Bernoulli: sum_d [x_d log sigmoid(g_d) + (1 - x_d) log sigmoid(-g_d)], through
        ``binary_cross_entropy_with_logits``. Gaussian: log N(x; g(z), sigma_x^2 I).

        Parameters
        ----------
        x : Tensor, shape (B, D)
        z : Tensor, shape (B, q) or (K, B, q)
            K samples of z for every x broadcast against x.

        Returns
        -------
        Tensor, shape (B,) or (K, B), nats
        """
        return self._log_lik(self._check_x(x), z)

    def _log_lik(self, x: Tensor, z: Tensor) -> Tensor:  # x already checked
        out = self.decode(z)  # (..., B, D)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(
                out, x.expand_as(out), reduction="none"
            ).sum(-1)
        sq = ((x - out) ** 2).sum(-1)  # (..., B)
        return -0.5 * (
            sq * torch.exp(-self.log_sigma2) + self.x_dim * (self.log_sigma2 + LOG_2PI)
        )

    @staticmethod
    def log_prior(z: Tensor) -> Tensor:
        """log p(z) = log N(z; 0, I). (..., q) -> (...)."""
        return -0.5 * (z**2 + LOG_2PI).sum(-1)

    @staticmethod
    def log_q(eps: Tensor, logvar: Tensor) -> Tensor:
        """log q(z|x) at z = mu + exp(logvar/2) eps, written through eps. (..., q) ->
        (...).
        """
        return -0.5 * (eps**2 + logvar + LOG_2PI).sum(-1)

    @staticmethod
    def reparametrize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
        """z = mu + sigma * eps, sigma = exp(logvar / 2) (the reparametrization trick,
        §20.9).
        """
        return mu + torch.exp(0.5 * logvar) * eps

    # ------------------------------------------------------------------ the bound
    def elbo(
        self,
        x: Tensor,
        *,
        n_samples: int = 1,
        kl: str = "analytic",
        beta: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The evidence lower bound L(q) of each x (eq. 20.76-20.77), a reparametrized
        estimate.

        * ``kl="analytic"`` (eq. 20.77): mean over the samples of log p(x|z), minus
          ``beta`` * KL(q(z|x) || p(z)) in closed form (:func:`gaussian_kl`).
        * ``kl="mc"`` (eq. 20.76): mean over the samples of log p(x|z) - ``beta`` *
          [log q(z|x) - log p(z)]; with ``beta=1`` this is log p(x, z) - log q(z|x).

        Both are unbiased for the same L(q); at the exact posterior the ``"mc"``
        estimate has zero variance (every sample gives log p(x)). ``beta != 1`` gives
        the beta-VAE objective (Higgins et al., 2017), no longer a bound on log p(x) for
        beta < 1.

        Parameters
        ----------
        x : Tensor, shape (B, D)
        n_samples : int
            Samples of z per x (default one, as in training).
        kl : {"analytic", "mc"}
        beta : float, >= 0
            Weight of the KL term.
        generator : torch.Generator, optional
            Draws eps.

        Returns
        -------
        Tensor, shape (B,), nats. Differentiable (the reparametrization trick).
        """
        if kl not in ("analytic", "mc"):
            raise ValueError(
                "elbo: kl must be 'analytic' (eq. 20.77) or 'mc' (eq. 20.76); got "
                f"{kl!r}"
            )
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, int)
            or n_samples < 1
        ):
            raise ValueError(f"elbo: n_samples must be an int >= 1; got {n_samples!r}")
        if not beta >= 0:
            raise ValueError(f"elbo: beta must be >= 0; got {beta!r}")
        x = self._check_x(x)
        # [maths:vae.elbo]
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, q) each
        # (S, B, q) standard-normal noise, then z = mu + sigma * eps
        eps = torch.randn((n_samples, *mu.shape), generator=generator, **self._like)
        z = self.reparametrize(mu, logvar, eps)  # (S, B, q)
        log_lik = self._log_lik(x, z)  # (S, B)
        if kl == "analytic":  # eq. 20.77
            return log_lik.mean(0) - beta * gaussian_kl(mu, logvar).sum(-1)  # (B,)
        log_q_over_p = self.log_q(eps, logvar) - self.log_prior(z)  # (S, B)
        return (log_lik - beta * log_q_over_p).mean(0)  # (B,), eq. 20.76
        # [/maths:vae.elbo]

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self, n: int, *, mean: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Ancestral samples: z ~ N(0, I), then x ~ p(x|z), or E[x|z] if ``mean``.
        Returns (n, D).
        """
        z = torch.randn(n, self.z_dim, generator=generator, **self._like)  # (n, q)
        m = self.decode_mean(z)  # (n, D)
        if mean:
            return m
        if self.likelihood == "bernoulli":
            return (torch.rand(m.shape, generator=generator, **self._like) < m).to(
                m.dtype
            )
        return m + torch.exp(0.5 * self.log_sigma2) * torch.randn(
            m.shape, generator=generator, **self._like
        )

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x | z = mu(x)], the decoder's mean at the encoder's; (B, D) -> (B, D)."""
        return self.decode_mean(self.encode(x)[0])

    # ------------------------------------------------------------------ linear-Gaussian
    # case
    @classmethod
    def from_ppca(cls, ppca: PPCA) -> VAE:
        """A linear Gaussian VAE equal to ``ppca``, with the exact posterior as its
        encoder.

        The decoder is g(z) = W z + mu with sigma_x^2 = sigma^2, so p(x) =
        N(mu, W W^T + sigma^2 I). The exact posterior p(z|x) = N(M^-1 W^T (x - mu),
        sigma^2 M^-1), M = W^T W + sigma^2 I, is Gaussian with a mean linear in x; it is
        *diagonal* once W is rotated so that W^T W is diagonal (W -> W V with W^T W = V
        Lambda V^T, which leaves p(x) unchanged; done here only when needed, so the
        latent axes can differ from ``ppca``'s: use :meth:`to_ppca` for the PPCA in the
        VAE's own coordinates). Then the encoder represents the posterior exactly and
        the ELBO equals log p(x) (eq. 20.78 with equality).
        """
        if not isinstance(ppca, PPCA):
            raise ValueError(
                f"VAE.from_ppca expects a dgmlib.latent.PPCA; got {type(ppca).__name__}"
            )
        W, mu, sigma2 = ppca.W, ppca.mu, ppca.sigma2
        D, q = W.shape
        WtW = W.T @ W  # (q, q)
        if (
            WtW - torch.diag(torch.diagonal(WtW))
        ).abs().max() > 1e-12 * WtW.abs().max():
            _, V = torch.linalg.eigh(WtW)
            W = W @ V.flip(1)  # (D, q), W^T W diagonal, largest first
        # [maths:vae.from_ppca]
        M = W.T @ W + sigma2 * torch.eye(q, dtype=W.dtype, device=W.device)
        m_diag = torch.diagonal(M)  # M is diagonal now
        A = W / m_diag  # (D, q): posterior mean = (x - mu) @ A
        vae = cls(D, q, hidden=(), likelihood="gaussian").to(
            dtype=W.dtype, device=W.device
        )
        with torch.no_grad():
            enc, dec = vae.encoder[0], vae.decoder[0]
            enc.weight.zero_()
            enc.weight[:q] = A.T  # mu(x) = A^T x - A^T mu
            enc.bias[:q] = -(mu @ A)
            # logvar: constant, log diag(sigma^2 M^-1)
            enc.bias[q:] = torch.log(sigma2 / m_diag)
            dec.weight.copy_(W)
            dec.bias.copy_(mu)
            vae.log_sigma2.copy_(torch.log(sigma2))
        # [/maths:vae.from_ppca]
        return vae

    def to_ppca(self) -> PPCA:
        """The PPCA that a linear Gaussian VAE's decoder defines (for its exact log
        p(x)).
        """
        if self.hidden != () or self.likelihood != "gaussian":
            raise ValueError(
                "to_ppca needs a linear Gaussian VAE (hidden=(), "
                f"likelihood='gaussian'); this one has hidden={self.hidden}, "
                f"likelihood={self.likelihood!r}"
            )
        dec = self.decoder[0]
        return PPCA(
            dec.weight.detach().clone(),
            dec.bias.detach().clone(),
            self.log_sigma2.detach().exp(),
        )

    def extra_repr(self) -> str:
        dims = f"x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}"
        return f"{dims}, likelihood={self.likelihood!r}"


# ---------------------------------------------------------------------- importance
# weighting
def log_importance_weights(vae: VAE, x: Tensor, eps: Tensor) -> Tensor:
    """log w = log p(x, z) - log q(z|x) at z = mu(x) + sigma(x) eps. Differentiable.

    torch.logsumexp(log_w, 0) - log K is the IWAE objective of Burda et al. (2016).

    Parameters
    ----------
    x : Tensor, shape (B, D)
    eps : Tensor, shape (K, B, q), standard normal noise

    Returns
    -------
    Tensor, shape (K, B), nats
    """
    x = vae._check_x(x)
    mu, logvar = vae.encoder(x).chunk(2, dim=-1)
    return _log_w(vae, x, mu, logvar, eps)


def _log_w(vae: VAE, x: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    z = vae.reparametrize(mu, logvar, eps)  # (K, B, q)
    return vae._log_lik(x, z) + vae.log_prior(z) - vae.log_q(eps, logvar)  # (K, B)


@torch.no_grad()
def iwae_bound(
    vae: VAE,
    x: Tensor,
    k: int = 5000,
    *,
    chunk_size: int | None = None,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The importance-weighted bound L_k = log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~
    q(z|x).

    Burda et al. (2016): E[L_1] is the ELBO, E[L_k] <= E[L_{k+1}] <= log p(x), and L_k
    -> log p(x) as k -> infinity; with large k (5000 in their paper) it estimates the
    test log-likelihood. The k samples are processed ``chunk_size`` at a time with a
    running log-sum-exp, so memory does not grow with k; the result does not depend on
    ``chunk_size`` given the same noise. Evaluation only (no gradients): for the IWAE
    training objective use :func:`log_importance_weights`.

    Parameters
    ----------
    vae : VAE
    x : Tensor, shape (B, D)
    k : int, >= 1
        Number of importance samples.
    chunk_size : int, optional
        Samples per chunk; default: enough for about 4M numbers in the widest layer.
    eps : Tensor, shape (k, B, q), optional
        The standard-normal noise to use (for reproducibility checks); default: drawn
        chunk by chunk from ``generator``.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor, shape (B,), nats
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"iwae_bound: k must be an int >= 1 (k = 1 is the ELBO); got {k!r}"
        )
    x = vae._check_x(x)
    B = x.shape[0]
    if eps is not None and tuple(eps.shape) != (k, B, vae.z_dim):
        raise ValueError(
            f"iwae_bound: eps must have shape (k, B, q) = {(k, B, vae.z_dim)}; got "
            f"{tuple(eps.shape)}"
        )
    if chunk_size is None:
        width = max(vae.x_dim, vae.z_dim, *vae.hidden)
        chunk_size = max(1, min(k, _CHUNK_ELEMENTS // max(1, B * width)))
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(
            f"iwae_bound: chunk_size must be an int >= 1; got {chunk_size!r}"
        )
    # [maths:vae.iwae_bound]
    mu, logvar = vae.encoder(x).chunk(2, dim=-1)  # (B, q)
    acc = torch.full((B,), -math.inf, dtype=mu.dtype, device=mu.device)  # log sum_i w_i
    for start in range(0, k, chunk_size):
        n = min(chunk_size, k - start)
        if eps is None:
            e = torch.randn(
                (n, B, vae.z_dim), generator=generator, dtype=mu.dtype, device=mu.device
            )
        else:
            e = eps[start : start + n].to(mu)
        log_w = _log_w(vae, x, mu, logvar, e)  # (n, B) log p(x, z_i) - log q(z_i | x)
        acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))  # (B,)
    return acc - math.log(k)  # L_k = log (1/k) sum_i w_i
    # [/maths:vae.iwae_bound]


# ---------------------------------------------------------------------- training and
# diagnostics
def fit_vae(
    vae: VAE,
    x: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    beta: float = 1.0,
    kl: str = "analytic",
    n_samples: int = 1,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
) -> History:
    """Maximise the mean ELBO over minibatches of ``x`` with Adam (or ``optimizer``).

    Each step draws ``n_samples`` reparametrized samples per example and ascends mean_b
    L(q; x_b) (``beta`` weights the KL term). Returns the :class:`~dgmlib.train.History`
    with ``"elbo"`` (the minibatch mean, nats) per step.
    """
    opt = optimizer or torch.optim.Adam(vae.parameters(), lr=lr)
    # fail before training starts, and cast to the model's dtype and device
    x = vae._check_x(x)

    # [maths:vae.fit_vae]
    def step(batch: Tensor) -> dict:
        loss = -vae.elbo(
            batch, n_samples=n_samples, kl=kl, beta=beta, generator=generator
        ).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"elbo": -loss.item()}

    # [/maths:vae.fit_vae]
    return fit(
        step,
        x,
        epochs=epochs,
        batch_size=batch_size,
        generator=generator,
        desc="vae",
        quiet=quiet,
    )


@torch.no_grad()
def kl_per_dimension(vae: VAE, x: Tensor) -> Tensor:
    """Mean over ``x`` of KL(q(z_j|x) || p(z_j)) for each latent dimension j. (B, D) ->
    (q,), nats.
    """
    mu, logvar = vae.encode(x)
    return gaussian_kl(mu, logvar).mean(0)


@torch.no_grad()
def active_units(
    vae: VAE, x: Tensor, *, threshold: float = 1e-2
) -> tuple[Tensor, Tensor]:
    """Activity A_j = Var_x(E_{q(z|x)}[z_j]) and which units are active
    (A_j > threshold).

    Burda et al. (2016, section 5.2): a unit whose posterior mean does not move with x
    carries no information about x; its posterior stays at the prior and its KL is ~0.

    Returns
    -------
    activity : Tensor, shape (q,)
    active : Tensor, shape (q,), bool
    """
    mu, _ = vae.encode(x)
    activity = mu.var(0, unbiased=False)
    return activity, activity > threshold
