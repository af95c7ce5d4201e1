"""Sampling from denoising autoencoders (book §20.11, with §14.5 and §18.5).

A denoising autoencoder (DAE) is trained to undo a corruption C(x~ | x): it maximises
the denoising log-likelihood log p(x | x~) of a clean example given its corrupted copy.
Its encoder f, decoder g and reconstruction distribution p(x | omega = g(f(x~)))
define a Markov chain (Bengio et al., 2013; figure 20.11)::

    x~ ~ C(x~ | x)             corrupt
    h = f(x~)                  encode
    omega = g(h)               decode
    x' ~ p(x | omega)          sample

whose stationary distribution estimates the data distribution when p(x | x~) estimates
the true conditional consistently. Here:

* :class:`DenoisingAutoencoder`: f, g and a Bernoulli (binary data) or Gaussian (real
  data) reconstruction distribution; :class:`ExactReconstruction`, the true p(x | x~)
  of a known distribution over a small binary space, with the same interface.
* corruptions :class:`GaussianCorruption`, :class:`BitFlipCorruption`,
  :class:`SaltAndPepperCorruption` (``sample``, ``log_prob``, ``matrix`` where the
  space is binary).
* :func:`dae_chain` (with clamping, §20.11.2), :func:`fit_dae` (with walk-back,
  §20.11.3, and the contractive penalty of Rifai et al., 2011).
* exact chains on {0, 1}^d, d <= 10: :func:`reconstruction_matrix`,
  :func:`dae_transition_matrix`, :func:`stationary_distribution`.
* the score: :meth:`DenoisingAutoencoder.score`, (r(x) - x) / sigma^2 ~ grad log p(x)
  (Alain & Bengio, 2014; Vincent, 2011), :func:`langevin`, and :func:`cae_walk`, the
  contractive autoencoder's walk along the manifold (Rifai et al., 2012).

Notation
--------
==================  ============  ==========  =========================================
maths               name          shape       meaning
==================  ============  ==========  =========================================
x, x~               x, x_tilde    (B, D)      clean and corrupted states
C(x~ | x)           corruption    -           the corruption process
h = f(x~)           encode        (B, H)      code
omega = g(h)        decode        (B, D)      logits (Bernoulli) or mean (Gaussian)
r(x~)               reconstruct   (B, D)      E[x | x~] under the reconstruction
sigma_r             log_sigma     (D,)        Gaussian reconstruction's sd (log)
C, R, T             matrices      (2^d, 2^d)  C[x, x~], R[x~, x'] = p(x' | x~), T = C R
==================  ============  ==========  =========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgmlib.checks import check_binary, check_shape
from dgmlib.exact import all_states
from dgmlib.train import History, fit

__all__ = [
    "DenoisingAutoencoder",
    "ExactReconstruction",
    "GaussianCorruption",
    "BitFlipCorruption",
    "SaltAndPepperCorruption",
    "dae_chain",
    "fit_dae",
    "contractive_penalty",
    "reconstruction_matrix",
    "dae_transition_matrix",
    "stationary_distribution",
    "langevin",
    "cae_walk",
    "mass_outside",
]

LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("bernoulli", "gaussian")
ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}
MAX_EXACT_UNITS = 10  # 2**10 states: T is a 1024 x 1024 matrix


def _noise(shape, like: Tensor, generator, kind: str) -> Tensor:
    """Standard normal or uniform noise drawn on ``generator``'s device, moved to
    ``like``'s."""
    where = generator.device if generator is not None else like.device
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=generator, device=where, dtype=like.dtype).to(
        like.device
    )


def _check_level(value, name: str, low: float, high: float, cls: str, hint: str):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (low < float(value) <= high) or not math.isfinite(value):
        raise ValueError(
            f"{cls}: {name} must be a number in ({low}, {high}]; got {value!r}. {hint}"
        )
    return float(value)


# --------------------------------------------------------------------------- corruption
class GaussianCorruption:
    """C(x~ | x) = N(x~; x, sigma^2 I), for real-valued data (§14.5, figure 20.11)."""

    def __init__(self, sigma: float):
        self.sigma = _check_level(
            sigma, "sigma", 0.0, math.inf, "GaussianCorruption",
            "It is the corruption's standard deviation: use e.g. 0.1 to 1.",
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"GaussianCorruption(sigma={self.sigma:g})"

    def sample(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return x + self.sigma * _noise(x.shape, x, generator, "normal")  # (B, D)

    def log_prob(self, x_tilde: Tensor, x: Tensor) -> Tensor:
        """log C(x~ | x), summed over units: (B, D), (B, D) -> (B,)."""
        z = (x_tilde - x) / self.sigma
        return -0.5 * (z**2 + LOG_2PI).sum(-1) - x.shape[-1] * math.log(self.sigma)


class _BinaryCorruption:
    """A corruption that acts on each binary unit independently, flipping it with
    probability ``flip``."""

    flip: float

    def sample(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        check_binary(x, "x", type(self).__name__)
        u = _noise(x.shape, x, generator, "uniform")
        return torch.where(u < self.flip, 1 - x, x)  # (B, D)

    def log_prob(self, x_tilde: Tensor, x: Tensor) -> Tensor:
        """log C(x~ | x) = n_flipped log q + n_kept log(1 - q): (B, D), (B, D) ->
        (B,)."""
        flipped = (x_tilde != x).to(x.dtype).sum(-1)
        kept = x.shape[-1] - flipped
        q = self.flip
        return flipped * math.log(q) + kept * (math.log1p(-q) if q < 1 else -math.inf)

    def matrix(
        self, d: int, *, clamp: Tensor | None = None, dtype=torch.float64, device=None
    ) -> Tensor:
        """C[x, x~] over every pair of states of d units (rows sum to 1), d <= 10.
        With ``clamp`` (a (d,) bool mask) the clamped units are left uncorrupted."""
        where = type(self).__name__ + ".matrix"
        _check_exact_units(d, where)
        clamp = _check_clamp(clamp, d, where)
        s = all_states(d, dtype=dtype, device=device)  # (2**d, d)
        free = torch.ones(d, dtype=torch.bool, device=device)
        if clamp is not None:
            free = ~clamp.to(s.device)
        flips = torch.cdist(s[:, free], s[:, free], p=1)  # Hamming distances
        q = torch.tensor(self.flip, dtype=dtype, device=device)
        C = q**flips * (1 - q) ** (int(free.sum()) - flips)
        if clamp is not None:  # x~_o = x_o
            C = C * (s[:, None, ~free] == s[None, :, ~free]).all(-1)
        return C


class BitFlipCorruption(_BinaryCorruption):
    """Flip each binary unit independently with probability ``p`` in (0, 0.5]."""

    def __init__(self, p: float):
        self.p = self.flip = _check_level(
            p, "p", 0.0, 0.5, "BitFlipCorruption",
            "It is the probability of flipping each bit; above 0.5 the corruption "
            "would carry the complement instead.",
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"BitFlipCorruption(p={self.p:g})"


class SaltAndPepperCorruption(_BinaryCorruption):
    """With probability ``p`` in (0, 1], replace each unit by a fair coin (0 or 1)
    (Vincent et al., 2008). On binary units this flips each one with probability p/2.
    """

    def __init__(self, p: float):
        self.p = _check_level(
            p, "p", 0.0, 1.0, "SaltAndPepperCorruption",
            "It is the fraction of units replaced by noise.",
        )  # fmt: skip
        self.flip = self.p / 2

    def __repr__(self) -> str:
        return f"SaltAndPepperCorruption(p={self.p:g})"


# --------------------------------------------------------------------------- the models
class DenoisingAutoencoder(nn.Module):
    """Encoder f, decoder g and reconstruction distribution p(x | omega = g(f(x~))).

    Parameters
    ----------
    x_dim : int
        D, the number of visible units.
    hidden : int or sequence of int
        Widths of the encoder's layers; the last is the code h (the decoder mirrors
        them). ``hidden=(H,)`` is the one-layer autoencoder of Rifai et al. (2011),
        the one :func:`contractive_penalty` and :func:`cae_walk` need.
    likelihood : {"bernoulli", "gaussian"}
        Bernoulli(sigmoid(omega)) for binary data; N(omega, diag sigma_r^2) for real
        data, with sigma_r learned (per unit) unless ``sigma`` fixes it.
    activation : {"tanh", "sigmoid", "relu"}
        Hidden units' nonlinearity (after every encoder layer and every decoder layer
        but the last).
    generator : torch.Generator, optional
        Initial weights U(-1/sqrt(n_in), 1/sqrt(n_in)) drawn from it.
    """

    def __init__(
        self,
        x_dim: int,
        hidden: int | Sequence[int] = (64,),
        likelihood: str = "bernoulli",
        *,
        activation: str = "tanh",
        sigma: float | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if isinstance(x_dim, bool) or not isinstance(x_dim, int) or x_dim < 1:
            raise ValueError(
                f"DenoisingAutoencoder: x_dim must be an int >= 1; got {x_dim!r}"
            )
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        if not hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
        ):
            raise ValueError(
                f"DenoisingAutoencoder: hidden must be positive ints; got {hidden!r}"
            )
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"DenoisingAutoencoder: likelihood must be one of {LIKELIHOODS}; got "
                f"{likelihood!r} (bernoulli for binary data, gaussian for real data)"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                "DenoisingAutoencoder: activation must be one of "
                f"{sorted(ACTIVATIONS)}; got {activation!r}"
            )
        if sigma is not None and (likelihood != "gaussian" or not sigma > 0):
            raise ValueError(
                "DenoisingAutoencoder: sigma fixes the Gaussian reconstruction's sd "
                f"and must be > 0 with likelihood='gaussian'; got {sigma!r}"
            )
        self.x_dim, self.hidden, self.likelihood = x_dim, hidden, likelihood
        self.activation = activation
        sizes = (x_dim, *hidden)
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        back = sizes[::-1]
        self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(back[:-1], back[1:]))
        if likelihood == "gaussian":
            log_sigma = torch.zeros(x_dim) + (0.0 if sigma is None else math.log(sigma))
            if sigma is None:
                self.log_sigma = nn.Parameter(log_sigma)
            else:
                self.register_buffer("log_sigma", log_sigma)
        if generator is not None:
            with torch.no_grad():
                for layer in [*self.enc, *self.dec]:
                    bound = 1.0 / math.sqrt(layer.in_features)
                    for p in (layer.weight, layer.bias):
                        u = torch.rand(
                            p.shape, generator=generator, device=generator.device
                        )
                        p.copy_((2 * u - 1) * bound)

    def _check(self, x: Tensor, name: str) -> None:
        check_shape(x, 2, self.x_dim, name, "DenoisingAutoencoder")

    def encode(self, x_tilde: Tensor) -> Tensor:
        """h = f(x~): (B, D) -> (B, H)."""
        act = ACTIVATIONS[self.activation]
        h = x_tilde
        for layer in self.enc:
            h = act(layer(h))
        return h

    def decode(self, h: Tensor) -> Tensor:
        """omega = g(h): (B, H) -> (B, D), logits (Bernoulli) or mean (Gaussian)."""
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.dec):
            h = layer(h)
            if i < len(self.dec) - 1:
                h = act(h)
        return h

    def reconstruct(self, x_tilde: Tensor) -> Tensor:
        """r(x~) = E[x | x~] under the reconstruction distribution: (B, D) -> (B, D)."""
        omega = self.decode(self.encode(x_tilde))
        return torch.sigmoid(omega) if self.likelihood == "bernoulli" else omega

    def log_prob(self, x: Tensor, x_tilde: Tensor) -> Tensor:
        """Denoising log-likelihood log p(x | omega = g(f(x~))): (B, D), (B, D) -> (B,)
        nats."""
        self._check(x, "x")
        self._check(x_tilde, "x_tilde")
        if x.shape != x_tilde.shape:
            raise ValueError(
                f"DenoisingAutoencoder.log_prob: x {tuple(x.shape)} and x_tilde "
                f"{tuple(x_tilde.shape)} must have the same shape (one corrupted copy "
                "per example)"
            )
        omega = self.decode(self.encode(x_tilde))  # (B, D)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(omega, x, reduction="none").sum(
                -1
            )
        z = (x - omega) / self.log_sigma.exp()
        return -0.5 * (z**2 + LOG_2PI).sum(-1) - self.log_sigma.sum()

    @torch.no_grad()
    def sample(
        self, x_tilde: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """x ~ p(x | omega = g(f(x~))): (B, D) -> (B, D)."""
        self._check(x_tilde, "x_tilde")
        omega = self.decode(self.encode(x_tilde))
        if self.likelihood == "bernoulli":
            u = _noise(omega.shape, omega, generator, "uniform")
            return (u < torch.sigmoid(omega)).to(omega.dtype)
        return omega + self.log_sigma.exp() * _noise(
            omega.shape, omega, generator, "normal"
        )

    def score(self, x: Tensor, sigma: float) -> Tensor:
        """(r(x) - x) / sigma^2, the DAE's estimate of grad log p(x) after training with
        Gaussian corruption of sd ``sigma`` (Alain & Bengio, 2014; Vincent, 2011; the
        connection of §14.5.1 and §18.5): (B, D) -> (B, D)."""
        self._check(x, "x")
        sigma = _check_level(sigma, "sigma", 0.0, math.inf, "score", "Use the "
                             "corruption's sd.")  # fmt: skip
        # [maths:dae.score]
        return (self.reconstruct(x) - x) / sigma**2
        # [/maths:dae.score]


class ExactReconstruction(nn.Module):
    """The true reconstruction distribution p(x | x~) = p(x) C(x~ | x) / p(x~) of a
    known distribution ``p`` over {0, 1}^d (d <= 10) and a binary corruption, with the
    interface of :class:`DenoisingAutoencoder` (``log_prob``, ``sample``,
    ``reconstruct``).

    ``p`` (2**d,) lists probabilities in the order of :func:`dgmlib.exact.all_states`.
    With ``clamp``, the conditional for the corruption that :func:`dae_chain` applies
    when those units are clamped (they stay clean), so that the clamped chain samples
    p(x_free | x_clamped) exactly.
    """

    def __init__(
        self, p: Tensor, corruption: _BinaryCorruption, *, clamp: Tensor | None = None
    ):
        super().__init__()
        p = torch.as_tensor(p)
        d = round(math.log2(p.numel())) if p.numel() > 0 else -1
        if p.ndim != 1 or 2**d != p.numel():
            raise ValueError(
                f"ExactReconstruction: p must have shape (2**d,); got {tuple(p.shape)}"
            )
        _check_exact_units(d, "ExactReconstruction")
        if not isinstance(corruption, _BinaryCorruption):
            raise ValueError(
                "ExactReconstruction needs a binary corruption (BitFlipCorruption or "
                f"SaltAndPepperCorruption); got {corruption!r}"
            )
        if bool((p < 0).any()) or abs(float(p.sum()) - 1) > 1e-6:
            raise ValueError(
                "ExactReconstruction: p must be a probability vector (>= 0, summing to "
                f"1); it sums to {float(p.sum()):.6g} with min {float(p.min()):.3g}"
            )
        self.x_dim = d
        # C[x, x~]; with a clamp, the corruption that the clamped chain applies
        C = corruption.matrix(d, clamp=clamp, dtype=p.dtype, device=p.device)
        # [maths:dae.exact_reconstruction]
        joint = p[:, None] * C  # p(x, x~)  (2**d, 2**d)
        R = joint.T / joint.sum(0)[:, None].clamp_min(torch.finfo(p.dtype).tiny)
        # [/maths:dae.exact_reconstruction]
        self.register_buffer("R", R)  # R[x~, x] = p(x | x~)
        self.register_buffer("states", all_states(d, dtype=p.dtype, device=p.device))
        self.register_buffer("bits", 2 ** torch.arange(d, device=p.device))

    def _codes(self, x: Tensor) -> Tensor:
        check_shape(x, 2, self.x_dim, "x", "ExactReconstruction")
        check_binary(x, "x", "ExactReconstruction")
        return (x.long() * self.bits.to(x.device)).sum(-1)

    def log_prob(self, x: Tensor, x_tilde: Tensor) -> Tensor:
        return self.R[self._codes(x_tilde), self._codes(x)].log()

    def reconstruct(self, x_tilde: Tensor) -> Tensor:
        return self.R[self._codes(x_tilde)] @ self.states  # E[x | x~], (B, D)

    @torch.no_grad()
    def sample(
        self, x_tilde: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        rows = self.R[self._codes(x_tilde)]  # (B, 2**d)
        idx = torch.multinomial(rows.to(generator.device) if generator else rows, 1,
                                generator=generator)[:, 0]  # fmt: skip
        return self.states[idx.to(self.states.device)].to(x_tilde)


# --------------------------------------------------------------------------- the chain
def _check_clamp(clamp: Tensor | None, D: int, where: str) -> Tensor | None:
    if clamp is None:
        return None
    clamp = torch.as_tensor(clamp)
    if clamp.dtype != torch.bool or clamp.shape != (D,):
        raise ValueError(
            f"{where}: clamp must be a bool mask of shape ({D},), one entry per unit "
            f"(True = kept fixed); got dtype {clamp.dtype} and shape "
            f"{tuple(clamp.shape)}"
        )
    return clamp


def dae_chain(
    dae: nn.Module,
    x0: Tensor,
    n_steps: int,
    *,
    corruption,
    clamp: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run B chains of figure 20.11 for ``n_steps`` steps from ``x0`` (B, D).

    Each step corrupts the state, x~ ~ C(x~ | x), and samples the next state from the
    reconstruction distribution, x' ~ p(x | omega = g(f(x~))). With ``clamp`` (a (D,)
    bool mask) the clamped units keep their values in ``x0`` throughout and are not
    corrupted, so that the chain samples the free units given them (§20.11.2).

    Returns
    -------
    Tensor, shape (n_steps + 1, B, D)
        The states, ``x0`` first.
    """
    D = getattr(dae, "x_dim", x0.shape[-1] if x0.ndim else 0)
    check_shape(x0, 2, D, "x0", "dae_chain")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"dae_chain: n_steps must be an int >= 0; got {n_steps!r}")
    clamp = _check_clamp(clamp, D, "dae_chain")
    if clamp is not None:
        clamp = clamp.to(x0.device)
    states = [x0]
    x = x0
    with torch.no_grad():
        for _ in range(n_steps):
            # [maths:dae.chain]
            x_tilde = corruption.sample(x, generator=generator)  # corrupt
            if clamp is not None:
                x_tilde = torch.where(clamp, x0, x_tilde)  # observed units stay clean
            x = dae.sample(x_tilde, generator=generator)  # f, g, then sample
            if clamp is not None:
                x = torch.where(clamp, x0, x)  # only the free units are resampled
            # [/maths:dae.chain]
            states.append(x)
    return torch.stack(states)  # (n_steps + 1, B, D)


# --------------------------------------------------------------------------- training
def contractive_penalty(dae: DenoisingAutoencoder, x: Tensor) -> Tensor:
    """||J_f(x)||_F^2, the squared Frobenius norm of the encoder's Jacobian (Rifai et
    al., 2011), in closed form for a one-layer encoder h = s(W x + b):
    sum_j s'(a_j)^2 sum_i W_ji^2. (B, D) -> (B,)."""
    _check_one_layer(dae, "contractive_penalty")
    W = dae.enc[0].weight  # (H, D)
    h = dae.encode(x)  # (B, H)
    ds = _derivative(dae, h)  # s'(a), (B, H)
    return (ds**2) @ (W**2).sum(1)  # (B,)


def _derivative(dae: DenoisingAutoencoder, h: Tensor) -> Tensor:
    """s'(a) from the unit's output h = s(a), for the encoder's nonlinearity."""
    if dae.activation == "tanh":
        return 1 - h**2
    if dae.activation == "sigmoid":
        return h * (1 - h)
    return (h > 0).to(h.dtype)


def _check_one_layer(dae, where: str) -> None:
    if len(getattr(dae, "hidden", ())) != 1:
        raise ValueError(
            f"{where} needs a one-layer encoder, DenoisingAutoencoder(D, hidden=(H,)); "
            f"got hidden={getattr(dae, 'hidden', None)!r}"
        )


def fit_dae(
    dae: DenoisingAutoencoder,
    data: Tensor,
    *,
    corruption,
    walkback: int = 1,
    contractive: float = 0.0,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    quiet: bool | None = None,
    callback: Callable | None = None,
) -> History:
    """Train ``dae`` by maximising the denoising log-likelihood, with walk-back.

    With ``walkback = k`` each example x starts a short chain (§20.11.3; Bengio et al.,
    2013): x~_1 ~ C(. | x), x*_1 ~ p(. | x~_1), x~_2 ~ C(. | x*_1), ... and the loss is
    the mean over the k steps of -log p(x | x~_j): every reconstruction along the way
    is asked to return to the training example. ``walkback=1`` is the ordinary DAE.
    The sampled states carry no gradient. ``contractive`` > 0 adds lambda ||J_f(x)||^2
    (:func:`contractive_penalty`). Records ``loss`` and ``nll_1`` (the one-step
    denoising NLL, nats per example) each step.
    """
    check_shape(data, 2, dae.x_dim, "data", "fit_dae")
    if isinstance(walkback, bool) or not isinstance(walkback, int) or walkback < 1:
        raise ValueError(f"fit_dae: walkback must be an int >= 1; got {walkback!r}")
    if not contractive >= 0:
        raise ValueError(f"fit_dae: contractive must be >= 0; got {contractive!r}")
    if contractive > 0:
        _check_one_layer(dae, "fit_dae(contractive > 0)")
    opt = optimizer if optimizer is not None else torch.optim.Adam(dae.parameters(), lr)

    def step(x: Tensor) -> dict[str, Tensor]:
        # [maths:dae.fit_dae]
        x_star, nll = x, []
        for j in range(walkback):
            x_tilde = corruption.sample(x_star, generator=generator)
            nll.append(-dae.log_prob(x, x_tilde).mean())  # back to the example x
            if j + 1 < walkback:
                x_star = dae.sample(x_tilde, generator=generator)  # walk on
        loss = torch.stack(nll).mean()
        if contractive > 0:
            loss = loss + contractive * contractive_penalty(dae, x).mean()
        # [/maths:dae.fit_dae]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "nll_1": nll[0].detach()}

    return fit(
        step, data, epochs=epochs, batch_size=batch_size, generator=generator,
        desc="fit_dae", quiet=quiet, callback=callback,
    )  # fmt: skip


# -------------------------------------------------------------------------- exact chain
def _check_exact_units(d, where: str) -> None:
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_EXACT_UNITS:
        raise ValueError(
            f"{where}: exact chains enumerate 2**d states and need 1 <= d <= "
            f"{MAX_EXACT_UNITS}; got d={d!r}. Sample with dae_chain instead."
        )


@torch.no_grad()
def reconstruction_matrix(reconstruction: nn.Module, d: int) -> Tensor:
    """R[x~, x] = p(x | x~) over every pair of states of d <= 10 binary units, from any
    model with ``log_prob(x, x_tilde)`` (a trained :class:`DenoisingAutoencoder` or an
    :class:`ExactReconstruction`), computed in the model's dtype and returned in
    float64. Rows sum to 1 up to the model's rounding."""
    _check_exact_units(d, "reconstruction_matrix")
    like = next(iter(reconstruction.parameters()), None)
    if like is None:
        like = next(iter(reconstruction.buffers()))
    s = all_states(d, dtype=like.dtype, device=like.device)  # (2**d, d)
    rows = [reconstruction.log_prob(s, x_tilde.expand_as(s)) for x_tilde in s]
    return torch.stack(rows).to(torch.float64).exp()  # (2**d, 2**d)


def dae_transition_matrix(
    reconstruction: nn.Module | Tensor,
    corruption: _BinaryCorruption,
    d: int,
    *,
    clamp: Tensor | None = None,
) -> Tensor:
    """T[x, x'] of one step of :func:`dae_chain` on {0, 1}^d (d <= 10): T = C R, the
    corruption's matrix times the reconstruction's (a model, or R itself).

    With ``clamp`` the clamped units are not corrupted and are reset after the sample,
    exactly as in :func:`dae_chain`; T then never changes them. Rows sum to 1.
    """
    _check_exact_units(d, "dae_transition_matrix")
    if not isinstance(corruption, _BinaryCorruption):
        raise ValueError(
            "dae_transition_matrix needs a binary corruption (BitFlipCorruption or "
            f"SaltAndPepperCorruption); got {corruption!r}"
        )
    R = reconstruction if isinstance(reconstruction, Tensor) else None
    if R is None:
        R = reconstruction_matrix(reconstruction, d)
    if R.shape != (2**d, 2**d):
        raise ValueError(f"R must have shape ({2**d}, {2**d}); got {tuple(R.shape)}")
    R = R.to(torch.float64)
    clamp = _check_clamp(clamp, d, "dae_transition_matrix")
    if clamp is None:
        # [maths:dae.transition_matrix]
        C = corruption.matrix(d, device=R.device)  # C[x, x~]
        return C @ R  # T[x, x'] = sum_x~ C(x~ | x) p(x' | x~)
        # [/maths:dae.transition_matrix]
    C = corruption.matrix(d, clamp=clamp, device=R.device)  # x~_o = x_o
    M = C @ R  # (2**d, 2**d): before the clamped units are reset
    bits = 2 ** torch.arange(d, device=R.device)
    code_clamp = int((bits * clamp.to(R.device)).sum())
    codes = torch.arange(2**d, device=R.device)
    target = (codes[None, :] & ~code_clamp) | (codes[:, None] & code_clamp)
    return torch.zeros_like(M).scatter_add_(1, target, M)


def stationary_distribution(T: Tensor) -> Tensor:
    """The stationary distribution pi (pi T = pi, sum pi = 1) of a transition matrix
    (rows sum to 1), by least squares in float64."""
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"T must be square; got shape {tuple(T.shape)}")
    T = T.to(torch.float64)
    n = T.shape[0]
    A = torch.cat([T.T - torch.eye(n, dtype=T.dtype, device=T.device),
                   torch.ones(1, n, dtype=T.dtype, device=T.device)])  # fmt: skip
    b = torch.zeros(n + 1, 1, dtype=T.dtype, device=T.device)
    b[-1] = 1
    pi = torch.linalg.lstsq(A.cpu(), b.cpu()).solution[:, 0].to(T.device)
    pi = pi.clamp_min(0)
    return pi / pi.sum()


# --------------------------------------------------------------------------- the score
@torch.no_grad()
def langevin(
    score: Callable[[Tensor], Tensor],
    x0: Tensor,
    n_steps: int,
    *,
    step_size: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Unadjusted Langevin dynamics x <- x + (eps / 2) score(x) + sqrt(eps) z, z ~ N(0,
    I), with any score function (e.g. a DAE's, :meth:`DenoisingAutoencoder.score`).
    Returns the states (n_steps + 1, B, D), ``x0`` first."""
    check_shape(x0, 2, None, "x0", "langevin")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"langevin: n_steps must be an int >= 0; got {n_steps!r}")
    eps = _check_level(step_size, "step_size", 0.0, math.inf, "langevin",
                       "Use a small step, e.g. 0.01.")  # fmt: skip
    states, x = [x0], x0
    for _ in range(n_steps):
        # [maths:dae.langevin]
        x = (
            x
            + 0.5 * eps * score(x)
            + math.sqrt(eps) * _noise(x.shape, x, generator, "normal")
        )
        # [/maths:dae.langevin]
        states.append(x)
    return torch.stack(states)


@torch.no_grad()
def cae_walk(
    dae: DenoisingAutoencoder,
    x0: Tensor,
    n_steps: int,
    *,
    sigma: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The contractive autoencoder's sampling walk (Rifai et al., 2012): h = f(x), h' =
    h + sigma J_f(x) u with u ~ N(0, I_D) (noise in the code with covariance sigma^2 J
    J^T, large only along directions the encoder is sensitive to: the manifold's
    tangents), x' = r(h'). One-layer encoders. Returns (n_steps + 1, B, D)."""
    _check_one_layer(dae, "cae_walk")
    check_shape(x0, 2, dae.x_dim, "x0", "cae_walk")
    sigma = _check_level(sigma, "sigma", 0.0, math.inf, "cae_walk", "")
    W = dae.enc[0].weight  # (H, D)
    states, x = [x0], x0
    for _ in range(n_steps):
        # [maths:dae.cae_walk]
        h = dae.encode(x)  # (B, H)
        ds = _derivative(dae, h)
        J = ds[:, :, None] * W  # (B, H, D), J_f(x)
        u = _noise(x.shape, x, generator, "normal")  # (B, D)
        h = h + sigma * (J @ u[:, :, None])[:, :, 0]
        omega = dae.decode(h)
        x = torch.sigmoid(omega) if dae.likelihood == "bernoulli" else omega
        # [/maths:dae.cae_walk]
        states.append(x)
    return torch.stack(states)


def mass_outside(x: Tensor, data: Tensor, radius: float) -> float:
    """The fraction of the points ``x`` (N, D) farther than ``radius`` from every point
    of ``data`` (M, D): a chain's mass outside the data's support, for spurious modes
    (§20.11.3)."""
    check_shape(x, 2, data.shape[-1], "x", "mass_outside")
    radius = _check_level(radius, "radius", 0.0, math.inf, "mass_outside", "")
    near = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for chunk in data.split(4096):
        near |= (torch.cdist(x, chunk) <= radius).any(1)
    return float((~near).to(torch.float64).mean())
