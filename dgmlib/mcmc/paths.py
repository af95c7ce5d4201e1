"""Annealing paths for :func:`dgmlib.mcmc.ais` beyond the RBM's (§18.7, §20.4.3).

The DBM path (Salakhutdinov & Hinton 2009): a factorial base model with biases
``b_A,l`` on every layer l; in between, the whole energy is tempered,

    log p*_beta(x) = (1 - beta) sum_l b_A,l.x_l - beta E(x),

and one side of the bipartite graph, by default the odd layers (h1, h3, ...), is
summed out analytically, as the hidden layer of an RBM is, so the importance weights
depend on the other side (v, h2, ...) alone:

    log p*_beta(x_even) = sum_{l even} [(1 - beta) b_A,l + beta b_l].x_l
                          + sum_{l odd} sum_j softplus((1 - beta) b_A,lj + beta a_lj)

(a_l the logits of layer l given its neighbours; offsets add -beta mu_l.b_l and
-beta mu_l.a_l). At beta = 0 the layers are independent, so
log Z_0 = sum_l sum_j softplus(b_A,lj) and the base is sampled exactly. The move is
one two-block Gibbs sweep of the tempered joint: the summed side given the kept one,
then the kept side; it leaves the joint, and so the kept side's marginal, invariant.
A state is the list of every layer [v, h1, ..., h_L]; the summed entries are redrawn
before they are read.

The base matters. S&H's has visible biases only, every hidden unit at 1/2; a
trained DBM's hidden units are mostly off (h2 of a 784-500-1000 MNIST DBM: 8 % on),
and annealing from 1/2 to there, the chains fall behind: on that DBM after 86 epochs
of :func:`~dgmlib.energy.fit_dbm`, forward AIS from that base ends 80 nats below
the forward and reverse estimates from :func:`dbm_base_rates` (which agree within
0.03 nats at 14,501 betas; ``benchmarks/dbm.py``; 121 nats after 28 epochs).
:func:`dbm_base_rates` starts every hidden layer at its own mean under the data's
posteriors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..energy.dbm import _parity
from .ais import AnnealingPath, _base_biases, base_rate_biases

__all__ = ["DBMPath", "GRBMPath", "MCRBMPath", "dbm_base_rates"]


class DBMPath(AnnealingPath):
    """The tempered path of a :class:`~dgmlib.energy.DBM` from a factorial base,
    one side of the bipartite graph summed out.

    ``base``: the base's biases. ``"uniform"`` (all zero), a (n_0,) tensor of visible
    biases (hidden units uniform, as in Salakhutdinov & Hinton 2009), or one tensor
    (or None, zero) per layer, e.g. :func:`dbm_base_rates`. ``sum_out``: ``"odd"``
    (h1, h3, ...; the AIS state is then v, h2, ...) or ``"even"`` (v, h2, ...).
    """

    def __init__(self, dbm, base=None, *, sum_out: str = "odd"):
        self.dbm = dbm
        W0 = dbm.W[0]
        self.device, self.dtype = W0.device, W0.dtype
        self.b_a = _layer_base_biases(base, dbm.sizes, self.dtype, self.device)
        self.summed = _parity(sum_out)
        self.log_z_base = float(sum(F.softplus(b.double()).sum() for b in self.b_a))

    def _bern(self, p: Tensor, generator) -> Tensor:
        return torch.bernoulli(p, generator=generator)

    def sample_base(self, n, generator=None):
        """Every layer ~ Bernoulli(sigmoid(b_A,l)), independently: exact."""
        return [
            self._bern(torch.sigmoid(b).expand(n, -1).contiguous(), generator)
            for b in self.b_a
        ]

    def log_p_star(self, x, beta):
        """log sum_{summed side} exp((1 - beta) b_A.x - beta E(x)); (n,)."""
        # [maths:paths.dbm_log_p_star]
        dbm, b_a, out = self.dbm, self.b_a, 0.0
        for l in range(1 - self.summed, dbm.n_layers, 2):  # kept layers
            out = out + x[l] @ ((1 - beta) * b_a[l] + beta * dbm.b[l])
            out = out - beta * (dbm.mu[l] @ dbm.b[l])
        for l in range(self.summed, dbm.n_layers, 2):  # summed-out layers
            a = dbm.logits(x, l)  # (n, n_l)
            z = (1 - beta) * b_a[l] + beta * a
            out = out + (F.softplus(z) - beta * dbm.mu[l] * a).sum(-1)
        # [/maths:paths.dbm_log_p_star]
        return out

    def _sample_side(self, x, side, beta, generator, logits=None):
        dbm = self.dbm
        x = list(x)
        for l in range(side, dbm.n_layers, 2):
            a = dbm.logits(x, l) if logits is None else logits[l]
            x[l] = self._bern(
                torch.sigmoid((1 - beta) * self.b_a[l] + beta * a), generator
            )
        return x

    def transition(self, x, beta, generator=None):
        # two-block Gibbs on the tempered joint: the summed side, then the kept one
        x = self._sample_side(x, self.summed, beta, generator)
        return self._sample_side(x, 1 - self.summed, beta, generator)

    def check_init(self, x, n):
        sizes = self.dbm.sizes
        shapes = [(n, k) for k in sizes]
        if (
            isinstance(x, Tensor)
            or len(x) != len(sizes)
            or any(tuple(t.shape) != s for t, s in zip(x, shapes))
        ):
            got = (
                tuple(x.shape)
                if isinstance(x, Tensor)
                else [tuple(getattr(t, "shape", ())) for t in x]
            )
            raise ValueError(
                f"reverse AIS on a DBM needs init_v = [v, h1, ...] of shapes {shapes}: "
                f"samples of every layer (e.g. from long Gibbs chains); got {got}"
            )
        return [t.to(dtype=self.dtype, device=self.device) for t in x]

    def step(self, x, prev, cur, generator=None):
        # the same draws as AnnealingPath.step, with the summed side's logits shared
        # between the weight and the first Gibbs block. The weight is summed in
        # float64: over 14,501 betas the float32 rounding of softplus(cur a) -
        # softplus(prev a) (sums of hundreds of units) would add up.
        dbm, mu, b_a, s = self.dbm, self.dbm.mu, self.b_a, self.summed
        a = {l: dbm.logits(x, l) for l in range(s, dbm.n_layers, 2)}  # (n, n_l)
        d = cur - prev
        d_log_w = 0.0
        for l in range(1 - s, dbm.n_layers, 2):
            d_log_w = d_log_w + d * (x[l].double() @ (dbm.b[l] - b_a[l]).double())
            d_log_w = d_log_w - d * float(mu[l].double() @ dbm.b[l].double())
        for l, al in a.items():
            a64, ba64 = al.double(), b_a[l].double()
            d_log_w = d_log_w + (
                F.softplus((1 - cur) * ba64 + cur * a64)
                - F.softplus((1 - prev) * ba64 + prev * a64)
                - d * mu[l].double() * a64
            ).sum(-1)
        x = self._sample_side(x, s, cur, generator, logits=a)
        return d_log_w, self._sample_side(x, 1 - s, cur, generator)


def _layer_base_biases(base, sizes, dtype, device) -> list[Tensor]:
    """The base's biases, one (n_l,) tensor per layer, from ``base`` as DBMPath
    takes it."""
    if base is None or isinstance(base, (str, Tensor)):
        first = _base_biases(
            "uniform" if base is None else base, sizes[0], dtype, device
        )
        rest = [torch.zeros(n, dtype=dtype, device=device) for n in sizes[1:]]
        return [first, *rest]
    base = list(base)
    if len(base) != len(sizes):
        raise ValueError(
            f"base needs one bias vector (or None) per layer of the DBM{sizes}: "
            f"{len(sizes)}; got {len(base)}"
        )
    return [
        torch.zeros(n, dtype=dtype, device=device)
        if b is None
        else _base_biases(b, n, dtype, device)
        for b, n in zip(base, sizes)
    ]


@torch.no_grad()
def dbm_base_rates(
    dbm, data: Tensor, *, n_iter: int = 10, smoothing: float = 0.05
) -> list[Tensor]:
    """A base for :class:`DBMPath` close to the DBM's own marginals: every layer's
    biases are the log-odds of its smoothed mean, the visible layer's over ``data``
    (:func:`base_rate_biases`, S&M 2008), each hidden layer's over the mean-field
    posteriors of ``data`` (eq. 20.33-20.34). Annealing then starts where the hidden
    units already are (sparse ones off), not at 1/2.
    """
    layers = [[] for _ in dbm.sizes[1:]]
    for v in data.split(1000):
        for out, m in zip(layers, dbm.mean_field(v, n_iter=n_iter)):
            out.append(m)
    rates = [base_rate_biases(torch.cat(m), smoothing=smoothing) for m in layers]
    return [base_rate_biases(data, smoothing=smoothing), *rates]


class GRBMPath(AnnealingPath):
    """The path of a :class:`~dgmlib.energy.GaussianBernoulliRBM` (§20.5.1) from its
    own Gaussian part: the interaction and the hidden biases are annealed, the
    quadratic term 1/2 sum_i beta_i (v_i - b_i)^2 is kept, and h is summed out,

        log p*_t(v) = -1/2 sum_i beta_i (v_i - b_i)^2
                      + sum_j softplus(t (c_j + (beta v).W_j - t_j)).

    At t = 0 that is N(b, diag(beta)^-1) times 2^H: log Z_0 = H log 2 + D/2 log 2pi -
    1/2 sum_i log beta_i, sampled exactly. The move is one block-Gibbs sweep of the
    tempered joint: h ~ sigmoid(t a(v)), v ~ N(b + t W h, diag(beta)^-1).
    """

    def __init__(self, grbm):
        self.W, self.b = grbm.W.detach(), grbm.b.detach()
        self.c = (grbm.c - grbm.hidden_offset()).detach()
        self.log_beta = grbm.log_beta.detach()
        self.beta = self.log_beta.exp()
        D, H = self.W.shape
        self.device = self.W.device
        self.log_z_base = float(
            H * math.log(2.0)
            + 0.5 * D * math.log(2 * math.pi)
            - 0.5 * self.log_beta.double().sum()
        )

    def _gauss(self, mean: Tensor, generator) -> Tensor:
        noise = torch.randn(
            mean.shape, generator=generator, dtype=mean.dtype, device=mean.device
        )
        return mean + noise * torch.exp(-0.5 * self.log_beta)

    def sample_base(self, n, generator=None):
        return self._gauss(self.b.expand(n, -1), generator)  # (n, D) ~ N(b, 1/beta)

    def log_p_star(self, v, beta):
        # [maths:paths.grbm_log_p_star]
        quad = 0.5 * ((v - self.b) ** 2 * self.beta).sum(-1)  # (n,)
        a = (v * self.beta) @ self.W + self.c  # (n, H)
        return -quad + F.softplus(beta * a).sum(-1)
        # [/maths:paths.grbm_log_p_star]

    def transition(self, v, beta, generator=None):
        a = (v * self.beta) @ self.W + self.c
        h = torch.bernoulli(torch.sigmoid(beta * a), generator=generator)
        return self._gauss(self.b + beta * (h @ self.W.T), generator)

    def check_init(self, v, n):
        D = len(self.b)
        if not isinstance(v, Tensor) or v.shape != (n, D):
            raise ValueError(
                f"reverse AIS on a GRBM needs init_v of shape ({n}, {D}): samples of "
                "the GRBM"
            )
        return v.to(dtype=self.W.dtype, device=self.device)


class MCRBMPath(AnnealingPath):
    """The path of a :class:`~dgmlib.energy.MeanCovarianceRBM` (eq. 20.43-20.47) from
    N(0, I): both hidden groups annealed and summed out,

        log p*_t(x) = -1/2 x.x + sum_j softplus(t (b_m,j + x.W_j))
                      + sum_k softplus(t (b_c,k - 1/2 (x.r_k)^2)),

    log Z_0 = (Hm + Hc) log 2 + D/2 log 2pi. The move is block Gibbs on the tempered
    joint: h | x factorial, then x | h ~ N(C t W h_m, C), C^-1 = I + t R diag(h_c) R^T
    (one batched Cholesky per step: fine for D = 64).
    """

    def __init__(self, mcrbm):
        self.W, self.b_m = mcrbm.W.detach(), mcrbm.b_m.detach()
        self.R, self.b_c = mcrbm.R.detach(), mcrbm.b_c.detach()
        D, Hm = self.W.shape
        Hc = self.R.shape[1]
        self.device = self.W.device
        self.log_z_base = (Hm + Hc) * math.log(2.0) + 0.5 * D * math.log(2 * math.pi)

    def _randn(self, shape, generator):
        where = generator.device if generator is not None else self.device
        z = torch.randn(shape, generator=generator, dtype=self.W.dtype, device=where)
        return z.to(self.device)

    def sample_base(self, n, generator=None):
        return self._randn((n, self.W.shape[0]), generator)

    def log_p_star(self, x, beta):
        mean_part = F.softplus(beta * (x @ self.W + self.b_m)).sum(-1)
        cov_part = F.softplus(beta * (self.b_c - 0.5 * (x @ self.R) ** 2)).sum(-1)
        return -0.5 * (x**2).sum(-1) + mean_part + cov_part

    def transition(self, x, beta, generator=None):
        where = generator.device if generator is not None else self.device
        p_m = torch.sigmoid(beta * (x @ self.W + self.b_m))
        p_c = torch.sigmoid(beta * (self.b_c - 0.5 * (x @ self.R) ** 2))
        h_m = torch.bernoulli(p_m.to(where), generator=generator).to(self.device)
        h_c = torch.bernoulli(p_c.to(where), generator=generator).to(self.device)
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        prec = eye + beta * torch.einsum("dk,nk,ek->nde", self.R, h_c, self.R)
        L = torch.linalg.cholesky(prec)
        mean = torch.cholesky_solve((beta * h_m @ self.W.T)[:, :, None], L)[..., 0]
        z = self._randn(mean.shape, generator)[:, :, None]
        return mean + torch.linalg.solve_triangular(L.mT, z, upper=True)[..., 0]
