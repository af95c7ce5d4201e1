"""Annealing paths for :func:`dgmlib.mcmc.ais` beyond the RBM's (§18.7, §20.4.3).

The DBM path (Salakhutdinov & Hinton 2009): the base model has visible biases ``b_A``
and nothing else (every hidden unit uniform); in between, the whole energy is tempered,

    log p*_beta(x) = (1 - beta) b_A.v - beta E(x),

and the odd layers (h1, h3, ...) are summed out analytically, as the hidden layer of
an RBM is, so the importance weights depend on the even layers (v, h2, ...) alone:

    log p*_beta(x_even) = (1 - beta) b_A.v + dbm.log_p_star(x, sum_out="odd", beta)

(at beta = 0 that is b_A.v + (n_1 + n_3 + ...) log 2, so
log Z_0 = sum_i softplus(b_A,i) + (n_1 + ... + n_L) log 2). The move is one two-block
Gibbs sweep of the tempered joint: the odd layers given the even ones, then the even
ones given the odd ones; it leaves the joint, and so its even marginal, invariant.
A state is the list of every layer [v, h1, ..., h_L]; the odd entries are redrawn
before they are read.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .ais import AnnealingPath, _base_biases

__all__ = ["DBMPath", "GRBMPath", "MCRBMPath"]


class DBMPath(AnnealingPath):
    """The tempered path of a :class:`~dgmlib.energy.DBM` from a base with visible
    biases ``base`` ("uniform": zero), odd layers summed out.
    """

    def __init__(self, dbm, base: Tensor | str = "uniform"):
        self.dbm = dbm
        W0 = dbm.W[0]
        self.device, self.dtype = W0.device, W0.dtype
        self.b_a = _base_biases(base, dbm.sizes[0], self.dtype, self.device)
        n_hidden = sum(dbm.sizes[1:])
        self.log_z_base = float(
            n_hidden * math.log(2.0) + F.softplus(self.b_a.double()).sum()
        )

    def _bern(self, p: Tensor, generator) -> Tensor:
        return torch.bernoulli(p, generator=generator)

    def sample_base(self, n, generator=None):
        """v ~ Bernoulli(sigmoid(b_A)), every hidden unit ~ Bernoulli(1/2)."""
        v = self._bern(torch.sigmoid(self.b_a).expand(n, -1).contiguous(), generator)
        hidden = [
            self._bern(
                torch.full((n, k), 0.5, dtype=self.dtype, device=self.device),
                generator,
            )
            for k in self.dbm.sizes[1:]
        ]
        return [v, *hidden]

    def log_p_star(self, x, beta):
        """(1 - beta) b_A.v + log sum_{odd} exp(-beta E(x)); (n,)."""
        return (1 - beta) * (x[0] @ self.b_a) + self.dbm.log_p_star(
            x, sum_out="odd", beta=beta
        )

    def _sample_side(self, x, side, beta, generator, logits=None):
        dbm = self.dbm
        x = list(x)
        for l in range(side, dbm.n_layers, 2):
            a = dbm.logits(x, l) if logits is None else logits[l]
            if l == 0:
                p = torch.sigmoid((1 - beta) * self.b_a + beta * a)
            else:
                p = torch.sigmoid(beta * a)
            x[l] = self._bern(p, generator)
        return x

    def transition(self, x, beta, generator=None):
        # two-block Gibbs on the tempered joint: odd layers, then even ones
        x = self._sample_side(x, 1, beta, generator)
        return self._sample_side(x, 0, beta, generator)

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
        # the same draws as AnnealingPath.step, with the odd layers' logits shared
        # between the weight and the first Gibbs block. The weight is summed in
        # float64: over 14,501 betas the float32 rounding of softplus(cur a) -
        # softplus(prev a) (sums of hundreds of units) would add up.
        dbm, mu = self.dbm, self.dbm.mu
        a = {l: dbm.logits(x, l) for l in range(1, dbm.n_layers, 2)}  # (n, n_l)
        d = cur - prev
        d_log_w = d * (x[0].double() @ -self.b_a.double())
        for l in range(0, dbm.n_layers, 2):
            d_log_w = d_log_w + d * ((x[l] - mu[l]).double() @ dbm.b[l].double())
        for l, al in a.items():
            a64 = al.double()
            d_log_w = d_log_w + (
                F.softplus(cur * a64)
                - F.softplus(prev * a64)
                - d * mu[l].double() * a64
            ).sum(-1)
        x = self._sample_side(x, 1, cur, generator, logits=a)
        return d_log_w, self._sample_side(x, 0, cur, generator)


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
