"""The transform contract and the :class:`Flow` model (change of variables, eq.
20.72-20.73).

Notation
--------
x : (B, D)          data (or images (B, C, H, W) inside Glow), the *density* side
z : (B, D)          base variables, z ~ N(0, I), the *sampling* side
log_det : (B,)      log |det dz/dx| of the forward map, per example

A flow is an invertible, differentiable map between x and z. The textbook writes the
generator direction x = g(z) and the density it implies (eq. 20.72-20.73),

    p_x(x) = p_z(g^{-1}(x)) / |det dg/dz| = p_z(f(x)) |det df/dx|,   f = g^{-1}.

Every :class:`Transform` here implements the *density* direction ``f`` as ``forward``
and the generator ``g`` as ``inverse``:

* ``forward(x) -> (z, log_det)`` with ``log_det = log |det df/dx|`` (B,);
* ``inverse(z) -> (x, log_det)`` with ``log_det = log |det dg/dz|`` (B,), the log-det of
the
  inverse map at ``z`` (so it is minus the forward log-det at ``x = g(z)``).

A :class:`Flow` composes transforms ``f = f_K o ... o f_1`` over a standard-normal base:
log-dets add up, ``log p(x) = log N(f(x); 0, I) + sum_k log|det df_k/dx_(k-1)|``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "Transform",
    "Flow",
    "Reverse",
    "Permutation",
    "ElementwiseAffine",
    "ActNorm",
    "Logit",
    "Reshape",
    "standard_normal_log_prob",
    "check_input",
]

LOG_2PI = math.log(2 * math.pi)


_INSIDE_FLOW = [
    0
]  # > 0 while a Flow runs its transforms: it has checked finiteness once already


def check_input(
    x: Tensor, shape: Sequence[int | None], who: str, name: str = "x"
) -> None:
    """Raise a ``ValueError`` unless ``x`` is a finite floating tensor of shape
    ``(B, *shape)``.

    ``shape`` lists the expected sizes after the batch dimension; ``None`` accepts any
    size. Inside a :class:`Flow` (which checks its input once) the per-layer finiteness
    check is skipped.
    """
    if not isinstance(x, Tensor):
        raise ValueError(
            f"{who} expects {name} as a torch.Tensor; got {type(x).__name__}"
        )
    want = "(B, " + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if x.ndim != len(shape) + 1 or any(
        s is not None and s != n for s, n in zip(shape, x.shape[1:])
    ):
        hint = ""
        if x.ndim == len(shape) and all(
            s is None or s == n for s, n in zip(shape, x.shape)
        ):
            hint = f" Add a batch dimension: {name}.unsqueeze(0)."
        elif (
            len(shape) == 1
            and x.ndim > 2
            and shape[0] is not None
            and x[0].numel() == shape[0]
        ):
            hint = f" Flatten each example: {name}.reshape(len({name}), -1)."
        raise ValueError(
            f"{who} expects {name} of shape {want}; got shape {tuple(x.shape)}.{hint}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{who} expects a floating-point {name}; got dtype {x.dtype}. Use "
            f"{name}.float()."
        )
    if not _INSIDE_FLOW[0] and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{who} got {n_bad} non-finite value(s) (NaN or inf) in {name}; a flow "
            "needs finite input."
        )


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over every dimension but the batch: (B, ...) -> (B,)."""
    return -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)


class Transform(nn.Module):
    """An invertible map with a tractable Jacobian determinant: the contract every flow
    layer keeps.

    Subclasses implement ``forward(x) ->
    (z, log|det dz/dx|)`` (the density direction) and ``inverse(z) ->
    (x, log|det dx/dz|)`` (the sampling direction); both log-dets are (B,).
    """

    def forward(
        self, x: Tensor
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def inverse(
        self, z: Tensor
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


class Flow(nn.Module):
    """A normalizing flow: transforms ``f_1, ..., f_K`` from data x to a standard-normal
    z.

    Parameters
    ----------
    transforms : sequence of Transform
        Applied in order by :meth:`forward` (x -> z) and in reverse by :meth:`inverse`.
    dim : int
        ``D``, the size of x and z (both (B, D)).

    ``log_prob(x)`` is exact (eq. 20.73); ``sample(n, generator=)`` draws z ~ N(0, I)
    and returns g(z) = f^{-1}(z).
    """

    def __init__(self, transforms: Sequence[Transform], dim: int):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"Flow: dim must be a positive int; got {dim!r}")
        self.transforms = nn.ModuleList(transforms)
        self.dim = dim

    @property
    def name(self) -> str:
        return type(self).__name__

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f(x) and log|det dz/dx| (B,): the density direction, (B, D) -> ((B, D),
        (B,)).
        """
        check_input(x, (self.dim,), self.name)
        log_det = x.new_zeros(x.shape[0])
        _INSIDE_FLOW[0] += 1
        try:
            for t in self.transforms:
                x, ld = t(x)
                log_det = log_det + ld
        finally:
            _INSIDE_FLOW[0] -= 1
        return x, log_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """x = g(z) = f^{-1}(z) and log|det dx/dz| (B,): the sampling direction."""
        check_input(z, (self.dim,), self.name, "z")
        log_det = z.new_zeros(z.shape[0])
        _INSIDE_FLOW[0] += 1
        try:
            for t in reversed(self.transforms):
                z, ld = t.inverse(z)
                log_det = log_det + ld
        finally:
            _INSIDE_FLOW[0] -= 1
        return z, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = log N(f(x); 0, I) + log|det df/dx| (eq. 20.73): (B, D) -> (B,), in
        nats.
        """
        z, log_det = self.forward(x)
        return standard_normal_log_prob(z) + log_det

    def _base(self, n: int, generator: torch.Generator | None) -> Tensor:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(
                f"{self.name}.sample: n must be a non-negative int; got {n!r}"
            )
        p = next(self.parameters(), None)
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        device = p.device if p is not None else torch.device("cpu")
        where = generator.device if generator is not None else device
        return torch.randn(
            n, self.dim, generator=generator, device=where, dtype=dtype
        ).to(device)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples x = g(z), z ~ N(0, I): (n, D). No gradients (see
        :meth:`rsample_with_log_prob`).
        """
        with torch.no_grad():
            return self.inverse(self._base(n, generator))[0]

    def rsample_with_log_prob(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Reparametrised samples x = g(z) and their log q(x) = log N(z) - log|det
        dg/dz|, with gradients.

        This is what variational inference needs (Rezende & Mohamed 2015): samples that
        carry gradients to the flow's parameters, and their exact log-density.
        """
        z = self._base(n, generator)
        x, log_det = self.inverse(z)
        return x, standard_normal_log_prob(z) - log_det

    def trajectory(self, z: Tensor) -> list[Tensor]:
        """The states from the base to the data: ``[z, g_K(z), g_(K-1)(g_K(z)), ...,
        x]`` (K+1 tensors).
        """
        check_input(z, (self.dim,), self.name, "z")
        states = [z]
        with torch.no_grad():
            for t in reversed(self.transforms):
                z, _ = t.inverse(z)
                states.append(z)
        return states


# --------------------------------------------------------------------------- simple
# transforms
class Permutation(Transform):
    """z = x[:, perm]: a fixed permutation of the coordinates, log|det| = 0."""

    def __init__(self, perm):
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long).flatten()
        if not torch.equal(torch.sort(perm).values, torch.arange(perm.numel())):
            raise ValueError(
                f"Permutation: perm must be a permutation of 0..{perm.numel() - 1}; "
                f"got {perm.tolist()[:12]}"
            )
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.perm.numel(),), type(self).__name__)
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (self.perm.numel(),), type(self).__name__, "z")
        return z[:, self.inv_perm], z.new_zeros(z.shape[0])


class Reverse(Permutation):
    """z = x reversed along the features: the permutation between
    autoregressive/coupling layers.
    """

    def __init__(self, dim: int):
        super().__init__(torch.arange(dim - 1, -1, -1))


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """Broadcast shape of a per-channel parameter for (B, C) or (B, C, H, W) input."""
    return (1, -1) + (1,) * (x.ndim - 2)


class ElementwiseAffine(Transform):
    """Per-feature affine map, generator x = shift + exp(log_scale) * z.

    Density direction: z = (x - shift) * exp(-log_scale), log|det dz/dx| =
    -sum(log_scale) (times H*W for images, where the parameters are per channel). With
    one layer and a standard-normal base, ``Flow([ElementwiseAffine(D)], D)`` is the
    diagonal Gaussian N(shift, diag(exp(2 log_scale))).

    Parameters
    ----------
    num_features : int
        ``D`` for (B, D) input, or ``C`` for (B, C, H, W) images.
    """

    def __init__(self, num_features: int):
        super().__init__()
        if num_features < 1:
            raise ValueError(
                f"{type(self).__name__}: num_features must be >= 1; got {num_features}"
            )
        self.num_features = num_features
        self.shift = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))

    def _check(self, x: Tensor, name: str) -> None:
        if x.ndim == 4:
            check_input(x, (self.num_features, None, None), type(self).__name__, name)
        else:
            check_input(x, (self.num_features,), type(self).__name__, name)

    def _pixels(self, x: Tensor) -> int:
        return math.prod(x.shape[2:]) if x.ndim > 2 else 1

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x, "x")
        shape = _channel_shape(x)
        z = (x - self.shift.view(shape)) * torch.exp(-self.log_scale).view(shape)
        log_det = -self.log_scale.sum() * self._pixels(x)
        return z, log_det.expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        self._check(z, "z")
        shape = _channel_shape(z)
        x = self.shift.view(shape) + torch.exp(self.log_scale).view(shape) * z
        log_det = self.log_scale.sum() * self._pixels(z)
        return x, log_det.expand(z.shape[0])


class ActNorm(ElementwiseAffine):
    """Activation normalisation (Glow; Kingma & Dhariwal 2018): a per-channel affine map
    whose parameters are set from the first batch it sees in training mode so that its
    output has zero mean and unit variance per channel; afterwards they are ordinary
    parameters.

    ``initialize(x)`` does the data-dependent initialisation explicitly. Until
    initialised (and in eval mode) the layer is the identity.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-6):
        super().__init__(num_features)
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set shift = per-channel mean and log_scale = log per-channel std of ``x``."""
        self._check(x, "x")
        if x.shape[0] < 2:
            raise ValueError(
                "ActNorm.initialize needs a batch of at least 2 examples to estimate "
                "a variance"
            )
        flat = x.transpose(0, 1).reshape(self.num_features, -1)  # (C, B*H*W)
        self.shift.copy_(flat.mean(1))
        self.log_scale.copy_(torch.log(flat.std(1, unbiased=False) + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        return super().forward(x)


class Logit(Transform):
    """Preprocessing for data in a box [0, bound)^D: z = logit(alpha + (1 - 2 alpha) x /
    bound).

    Dinh et al. (2017) model dequantized pixels this way: the squashing keeps the logit
    away from +-inf at the edges. log|det dz/dx| = sum_i log((1 - 2 alpha) / bound) -
    log y_i - log(1 - y_i), with y = alpha + (1 - 2 alpha) x / bound. Its inverse
    (a scaled sigmoid) maps any real z into (0, bound), so samples land in the data box.

    Parameters
    ----------
    dim : int
        ``D``.
    bound : float
        Upper end of the data box; dequantized 17-level digits live in [0, 17).
    alpha : float
        Margin in (0, 0.5).
    """

    def __init__(self, dim: int, bound: float = 1.0, alpha: float = 0.05):
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"Logit: alpha must be in (0, 0.5); got {alpha}")
        if not bound > 0:
            raise ValueError(f"Logit: bound must be positive; got {bound}")
        self.dim, self.bound, self.alpha = dim, float(bound), float(alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, (self.dim,), "Logit")
        if bool((x < 0).any() | (x > self.bound).any()):
            raise ValueError(
                f"Logit expects x in [0, {self.bound:g}]; got values in "
                f"[{float(x.min()):.4g}, {float(x.max()):.4g}]. Dequantize/rescale "
                "the data first."
            )
        y = self.alpha + (1 - 2 * self.alpha) * x / self.bound
        z = torch.log(y) - torch.log1p(-y)
        log_det = (
            math.log((1 - 2 * self.alpha) / self.bound) - torch.log(y) - torch.log1p(-y)
        ).sum(1)
        return z, log_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, (self.dim,), "Logit", "z")
        y = torch.sigmoid(z)
        x = (y - self.alpha) * self.bound / (1 - 2 * self.alpha)
        # dx/dz = bound / (1 - 2 alpha) * y (1 - y)
        log_det = (
            math.log(self.bound / (1 - 2 * self.alpha))
            + nn.functional.logsigmoid(z)
            + nn.functional.logsigmoid(-z)
        ).sum(1)
        return x, log_det


class Reshape(Transform):
    """z = x.reshape(B, *out_shape): a change of view with log|det| = 0
    (vectors <-> images).
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]):
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(
                f"Reshape: {self.in_shape} and {self.out_shape} hold different "
                "numbers of values"
            )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_input(x, self.in_shape, "Reshape")
        return x.reshape(x.shape[0], *self.out_shape), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        check_input(z, self.out_shape, "Reshape", "z")
        return z.reshape(z.shape[0], *self.in_shape), z.new_zeros(z.shape[0])
