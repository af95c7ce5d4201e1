"""Exact and statistical analysis of small RBMs (Deep Learning §20.2, §18.2-18.3;
lecture 17).

Tools for the RBM chapter that the model itself does not need: exact model expectations
by enumeration, the exact log-likelihood gradient, the bias and variance of CD-k / PCD
gradient estimates against it, pseudo-likelihood as scikit-learn computes it, and a
checkpointable record of a PCD run.

Notation (as in :mod:`dgmlib.energy.rbm`)::

    v  (B, D)  visible units in {0,1}     W (D, H), b (D,), c (H,)
    h  (B, H)  hidden units in {0,1}      theta = (W, b, c), flattened to (P,),
                                          P = D*H + D + H

    d/dtheta mean_v log P(v) = <dE/dtheta>_model - <dE/dtheta>_data   (eq. 18.4, 18.15)
        dW = <v h^T>_data - <v h^T>_model
        db = <v>_data - <v>_model
        dc = <h>_data - <h>_model
    PL(v) = sum_i log P(v_i | v_-i)                             (§18.3, Besag 1975)

"Data" expectations use P(h | v) for h (eq. 20.14), as
:func:`~dgmlib.energy.rbm.cd_update` does; "model" expectations are exact sums over the
smaller layer (at most about 20 units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..exact import all_states, log_partition
from ..mcmc.gibbs import gibbs_chain
from .rbm import BernoulliRBM, fit_rbm

__all__ = [
    "joint_distribution",
    "posterior_by_enumeration",
    "model_statistics",
    "data_statistics",
    "exact_gradient",
    "log_likelihood",
    "flatten_gradient",
    "gradient_estimates",
    "cd_estimates",
    "BiasVariance",
    "bias_variance",
    "state_index",
    "gibbs_kernel",
    "estimator_moments",
    "cd_moments",
    "exact_gradient_ascent",
    "pseudo_log_likelihood_bruteforce",
    "stochastic_pseudo_log_likelihood",
    "to_sklearn",
    "from_sklearn",
    "PCDRun",
]

MAX_ENUM = 20  # 2**20 states of the smaller layer: about a million rows, a second or so


def _params(rbm: BernoulliRBM, dtype=None) -> tuple[Tensor, Tensor, Tensor]:
    dtype = dtype or rbm.W.dtype
    return rbm.W.detach().to(dtype), rbm.b.detach().to(dtype), rbm.c.detach().to(dtype)


# --- exact distributions by enumeration -----------------------------------------------
def joint_distribution(
    rbm: BernoulliRBM, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor, Tensor]:
    """Every joint state (v, h) and its exact probability P(v, h) = exp(-E(v, h)) / Z
    (eq. 20.4-20.6).

    Returns
    -------
    v : Tensor, shape (2**(D+H), D)
    h : Tensor, shape (2**(D+H), H)
    p : Tensor, shape (2**(D+H),), sums to 1

    Only for tiny RBMs (D + H <= 20): nothing is factorised, so it is the reference the
    factorial formulas are checked against.
    """
    d, k = rbm.n_visible, rbm.n_hidden
    if d + k > MAX_ENUM:
        raise ValueError(
            f"joint_distribution enumerates 2**(D+H) = 2**{d + k} states; it is meant "
            f"for D + H <= {MAX_ENUM}. Use model_statistics / "
            "dgmlib.exact.log_partition instead."
        )
    s = all_states(d + k, dtype=dtype, device=rbm.W.device)
    v, h = s[:, :d], s[:, d:]
    W, b, c = _params(rbm, dtype)
    log_p = v @ b + h @ c + ((v @ W) * h).sum(-1)  # -E(v, h), (N,)
    return v, h, torch.softmax(log_p, 0)


def posterior_by_enumeration(
    rbm: BernoulliRBM, v: Tensor, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """P(h | v) over all 2**H hidden states, from exp(-E(v, h)) normalised over h
    (eq. 20.7-20.9).

    No factorisation is assumed, so comparing the result with the product of
    ``rbm.p_h_given_v(v)`` checks eq. 20.11-20.15.

    Returns
    -------
    h : Tensor, shape (2**H, H)
    p : Tensor, shape (B, 2**H), each row sums to 1
    """
    k = rbm.n_hidden
    if k > MAX_ENUM:
        raise ValueError(
            f"posterior_by_enumeration sums over 2**H = 2**{k} hidden states; H <= "
            f"{MAX_ENUM} please"
        )
    W, b, c = _params(rbm, dtype)
    v = rbm._check_v(v).to(dtype)
    h = all_states(k, dtype=dtype, device=W.device)  # (2**H, H)
    log_p = (v @ b)[:, None] + (h @ c)[None, :] + (v @ W) @ h.T  # -E(v, h), (B, 2**H)
    return h, torch.softmax(log_p, dim=1)


def model_statistics(
    rbm: BernoulliRBM, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact model expectations ``(<v h^T>, <v>, <h>)`` of shapes (D, H), (D,), (H,):
    the negative phase.

    Sums over the smaller layer. With H <= D: P(h) = exp(-F(h)) / Z and E[v | h] =
    sigmoid(b + W h) (eq. 20.16), so <v h^T> = sum_h P(h) sigmoid(b + W h) h^T; the
    mirror image when D < H.
    """
    W, b, c = _params(rbm, dtype)
    swap = W.shape[1] > W.shape[0]
    if swap:  # enumerate v instead
        W, b, c = W.T, c, b
    n = W.shape[1]
    if n > MAX_ENUM:
        raise ValueError(
            f"model_statistics enumerates the smaller layer (2**{n} states); it needs "
            f"a layer of <= {MAX_ENUM} units. Estimate the negative phase with Gibbs "
            "chains instead."
        )
    h = all_states(n, dtype=dtype, device=W.device)  # (S, n) enumerated layer
    pre = h @ W.T + b  # (S, m) other layer's logits
    p = torch.softmax(h @ c + F.softplus(pre).sum(-1), 0)  # (S,)  P(h) = exp(-F(h)) / Z
    mean_other = torch.sigmoid(pre)  # (S, m) E[other | h]
    vh = (mean_other * p[:, None]).T @ h  # (m, n)
    ev, eh = p @ mean_other, p @ h
    return (vh.T, eh, ev) if swap else (vh, ev, eh)


def data_statistics(rbm: BernoulliRBM, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Data expectations ``(<v h^T>, <v>, <h>)`` with h replaced by P(h = 1 | v): the
    positive phase.
    """
    v = rbm._check_v(v)
    ph = rbm.p_h_given_v(v)  # (B, H)
    return v.T @ ph / len(v), v.mean(0), ph.mean(0)


def exact_gradient(
    rbm: BernoulliRBM, v: Tensor, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor, Tensor]:
    """The exact gradient of the mean log-likelihood, ``(dW, db, dc)``: positive minus
    negative phase.

    Equals ``cd_update(rbm, v, v_neg)`` in the limit of infinitely many exact model
    samples ``v_neg``, and the autograd gradient of ``log_likelihood(rbm, v).mean()``
    (eq. 18.4, 18.15).
    """
    W, b, c = _params(rbm, dtype)
    v = rbm._check_v(v).to(dtype)
    ph = torch.sigmoid(v @ W + c)
    pos = (v.T @ ph / len(v), v.mean(0), ph.mean(0))
    neg = model_statistics(rbm, dtype=dtype)
    return tuple(p - n for p, n in zip(pos, neg))


def log_likelihood(
    rbm: BernoulliRBM, v: Tensor, *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Exact log P(v) = -F(v) - log Z for each row of ``v``, (B, D) -> (B,), in nats.

    log Z comes from :func:`dgmlib.exact.log_partition` (enumerating the smaller layer),
    so one of the layers must have at most about 25 units. Differentiable in ``W, b, c``
    when they require grad.
    """
    W, b, c = rbm.W.to(dtype), rbm.b.to(dtype), rbm.c.to(dtype)
    v = rbm._check_v(v).to(dtype)
    free = -(v @ b) - F.softplus(v @ W + c).sum(-1)  # F(v), (B,)
    log_z = log_partition(rbm, dtype=dtype)  # differentiable
    return -free - log_z


def flatten_gradient(grads: tuple[Tensor, Tensor, Tensor] | list[Tensor]) -> Tensor:
    """Concatenate ``(dW, db, dc)`` into one vector of length D*H + D + H
    (dW row-major first).
    """
    return torch.cat([t.reshape(-1) for t in grads])


# --- stochastic gradient estimates and their bias / variance --------------------------
def gradient_estimates(rbm: BernoulliRBM, v_pos: Tensor, v_neg: Tensor) -> Tensor:
    """One CD/SML gradient estimate per group of negative samples.

    Parameters
    ----------
    v_pos : Tensor, shape (B, D)
        The positive-phase (data) batch, shared by every estimate.
    v_neg : Tensor, shape (R, M, D)
        R groups of M negative (model) samples.

    Returns
    -------
    Tensor, shape (R, P)
        ``flatten_gradient(cd_update(rbm, v_pos, v_neg[r]))`` for each r, computed for
        all groups at once (the tests check it against that loop).
    """
    if v_neg.ndim != 3 or v_neg.shape[-1] != rbm.n_visible:
        raise ValueError(
            f"v_neg must have shape (R, M, {rbm.n_visible}): R groups of M negative "
            f"samples; got {tuple(v_neg.shape)}"
        )
    v_pos, v_neg = rbm._check_v(v_pos), v_neg.to(rbm.W.dtype)
    n_reps, m = v_neg.shape[:2]
    pos = flatten_gradient(data_statistics(rbm, v_pos))  # (P,) shared positive phase
    ph = rbm.p_h_given_v(v_neg.reshape(n_reps * m, -1)).reshape(
        n_reps, m, -1
    )  # (R, M, H)
    neg = torch.cat(
        [
            torch.einsum("rmd,rmh->rdh", v_neg, ph).reshape(n_reps, -1) / m,
            v_neg.mean(1),
            ph.mean(1),
        ],
        dim=1,
    )  # (R, P)
    return pos - neg


def cd_estimates(
    rbm: BernoulliRBM,
    v_pos: Tensor,
    k: int,
    n_reps: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n_reps`` independent CD-k gradient estimates on the batch ``v_pos``
    (Algorithm 18.2).

    Each estimate starts one chain at every row of ``v_pos``, runs ``k`` block-Gibbs
    sweeps (:func:`~dgmlib.mcmc.gibbs.gibbs_chain`) and returns
    ``cd_update(rbm, v_pos, v_k)``. All ``n_reps * B`` chains run as one batch. Returns
    (n_reps, P).
    """
    if k < 1 or n_reps < 1:
        raise ValueError(
            f"cd_estimates needs k >= 1 and n_reps >= 1; got k={k}, n_reps={n_reps}"
        )
    v_pos = rbm._check_v(v_pos)
    v0 = v_pos.repeat(n_reps, 1)  # (R*B, D)
    v_neg = gibbs_chain(rbm, v0, k, generator=generator)
    return gradient_estimates(rbm, v_pos, v_neg.reshape(n_reps, len(v_pos), -1))


@dataclass
class BiasVariance:
    """Bias and variance of R estimates ``g_r`` (R, P) of a vector ``g`` (P,).

    ``bias_norm = ||mean_r g_r - g||``; with probability at least ``1 - exp(-t**2 / 2)``
    (for a Gaussian mean, i.e. large R) the true ``||E g_r - g||`` lies in
    ``[bias_low, bias_high]``. ``variance`` is the trace of the covariance of ONE
    estimate (its expected squared distance from its own mean),
    ``mse = bias_norm**2 + variance``; ``cosine`` is between the mean estimate and
    ``g``.
    """

    mean: Tensor
    bias_norm: float
    bias_low: float
    bias_high: float
    variance: float
    cosine: float
    n: int

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def mse(self) -> float:
        return self.bias_norm**2 + self.variance


def bias_variance(estimates: Tensor, exact: Tensor, *, t: float = 4.0) -> BiasVariance:
    """Summarise ``estimates`` (R, P) of the vector ``exact`` (P,): bias with bounds,
    variance, cosine.

    The bounds use Gaussian concentration of the norm of the mean's error e = mean - E
    g_r: ``||e||`` is a ``sqrt(lambda_max / R)``-Lipschitz function of a standard
    Gaussian, with ``E||e|| <= sqrt(tr Sigma / R)``, so
    ``P(||e|| > r) <= exp(-t**2 / 2)`` for ``r = sqrt(tr Sigma / R) + t
    sqrt(lambda_max / R)`` (Sigma estimated from the R samples). By the triangle
    inequality the true bias norm lies within ``r`` of ``bias_norm``. With t = 4 the
    interval fails with probability <= exp(-8) = 3.4e-4.
    """
    if estimates.ndim != 2 or exact.ndim != 1 or estimates.shape[1] != exact.shape[0]:
        raise ValueError(
            "bias_variance needs estimates (R, P) and exact (P,); got "
            f"{tuple(estimates.shape)} and {tuple(exact.shape)}"
        )
    n = estimates.shape[0]
    if n < 2:
        raise ValueError(
            "bias_variance needs at least 2 estimates to measure a variance"
        )
    est = estimates.to(torch.float64)
    g = exact.to(torch.float64).to(est.device)
    mean = est.mean(0)
    centred = est - mean
    # covariance eigenvalues through the (R, P) Gram matrix: tr = sum, lambda_max =
    # largest
    sv = torch.linalg.svdvals(centred) ** 2 / (n - 1)  # eigenvalues of Sigma
    trace, lam_max = float(sv.sum()), float(sv.max())
    radius = math.sqrt(trace / n) + t * math.sqrt(lam_max / n)
    bias = float((mean - g).norm())
    cosine = (
        float(F.cosine_similarity(mean, g, dim=0))
        if float(g.norm()) > 0
        else float("nan")
    )
    return BiasVariance(
        mean=mean,
        bias_norm=bias,
        bias_low=max(bias - radius, 0.0),
        bias_high=bias + radius,
        variance=trace,
        cosine=cosine,
        n=n,
    )


# --- exact distributions of Gibbs chains ----------------------------------------------
def state_index(v: Tensor) -> Tensor:
    """Row of each binary state in :func:`dgmlib.exact.all_states` order: sum_i v_i
    2**i; (B, D) -> (B,) int64.
    """
    if v.ndim != 2:
        raise ValueError(
            f"state_index expects states of shape (B, D); got {tuple(v.shape)}"
        )
    powers = 2 ** torch.arange(v.shape[1], device=v.device)
    return (v.round().long() * powers).sum(1)


def gibbs_kernel(
    rbm: BernoulliRBM, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """The two halves of one block-Gibbs sweep as exact tables over all states.

    Returns ``A`` (2**D, 2**H) with ``A[v, h] = P(h | v)`` (eq. 20.15) and ``B``
    (2**H, 2**D) with ``B[h, v'] = P(v' | h)`` (eq. 20.16), rows in
    :func:`dgmlib.exact.all_states` order. The visible-to-visible transition matrix of
    :func:`~dgmlib.mcmc.gibbs.gibbs_step` is ``A @ B``; a distribution ``q`` (.., 2**D)
    over chain states moves to ``(q @ A) @ B``.
    """
    d, k = rbm.n_visible, rbm.n_hidden
    if d > 16 or k > 16:
        raise ValueError(
            f"gibbs_kernel tabulates 2**D x 2**H = 2**{d} x 2**{k} entries; it needs "
            "D, H <= 16"
        )
    W, b, c = _params(rbm, dtype)
    vs = all_states(d, dtype=dtype, device=W.device)  # (S, D)
    hs = all_states(k, dtype=dtype, device=W.device)  # (K, H)

    def table(a: Tensor, states: Tensor) -> Tensor:
        # log prod_j sigmoid(a_j)^x_j sigmoid(-a_j)^(1-x_j) = a.x + sum_j log
        # sigmoid(-a_j)
        return (
            a @ states.T + F.logsigmoid(-a).sum(-1, keepdim=True)
        ).exp()  # (N, n_states)

    return table(vs @ W + c, hs), table(hs @ W.T + b, vs)


def estimator_moments(
    rbm: BernoulliRBM, v_pos: Tensor, q: Tensor, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, float]:
    """Exact mean and variance of the estimate ``cd_update(rbm, v_pos, v_neg)`` when the
    M negative samples are independent with ``v_neg[m] ~ q[m]``.

    Parameters
    ----------
    v_pos : Tensor, shape (B, D)
        The positive-phase batch (its statistics are fixed).
    q : Tensor, shape (M, 2**D)
        The distribution of each negative sample over all visible states
        (:func:`dgmlib.exact.all_states` order): one-hot rows of the data times ``T**k``
        for CD-k, a persistent chain's distribution for PCD, P(v) for exact samples.

    Returns
    -------
    mean : Tensor, shape (P,)
        The expected estimate (compare with :func:`exact_gradient` for the bias).
    variance : float
        The trace of the covariance of one estimate, sum_m (E||s||^2 - ||E s||^2)_m /
        M**2, with s(v) = (v h(v)^T, v, h(v)) the negative-phase statistics and h(v) =
        P(h = 1 | v).
    """
    d = rbm.n_visible
    if q.ndim != 2 or q.shape[1] != 2**d:
        raise ValueError(
            f"q must hold one distribution over the 2**{d} visible states per "
            f"negative sample, shape (M, {2**d}); got {tuple(q.shape)}"
        )
    W, b, c = _params(rbm, dtype)
    vs = all_states(d, dtype=dtype, device=W.device)
    ph = torch.sigmoid(vs @ W + c)  # (S, H)
    s = torch.cat(
        [(vs[:, :, None] * ph[:, None, :]).reshape(len(vs), -1), vs, ph], 1
    )  # (S, P)
    q = q.to(dtype)
    mean_each = q @ s  # (M, P)
    second = q @ (s * s).sum(1)  # (M,)
    m = q.shape[0]
    pos = flatten_gradient(data_statistics(rbm, rbm._check_v(v_pos).to(dtype)))
    variance = float((second - (mean_each**2).sum(1)).sum() / m**2)
    return pos - mean_each.mean(0), variance


def cd_moments(
    rbm: BernoulliRBM, v_pos: Tensor, ks, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Exact mean and variance of the CD-k estimate on the batch ``v_pos`` for every k
    in ``ks``.

    CD-k starts one chain at each row of ``v_pos`` (Algorithm 18.2); after k sweeps
    chain m is distributed as ``onehot(v_pos[m]) @ T**k`` with T the exact transition
    matrix (:func:`gibbs_kernel`), which :func:`estimator_moments` turns into moments.

    Returns
    -------
    means : Tensor, shape (len(ks), P)
        In the order of ``ks``.
    variances : Tensor, shape (len(ks),)
        Trace of the covariance of one estimate.
    """
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 0:
        raise ValueError(
            f"ks must be a non-empty list of numbers of sweeps >= 0; got {ks}"
        )
    A, B = gibbs_kernel(rbm, dtype=dtype)
    q = F.one_hot(state_index(rbm._check_v(v_pos)), 2**rbm.n_visible).to(
        dtype
    )  # (M, 2**D)
    moments, done = {}, 0
    for k in sorted(set(ks)):  # sweep once, in order
        for _ in range(k - done):
            q = (q @ A) @ B
        done = k
        moments[k] = estimator_moments(rbm, v_pos, q, dtype=dtype)
    return (
        torch.stack([moments[k][0] for k in ks]),
        torch.tensor([moments[k][1] for k in ks], dtype=dtype),
    )


@torch.no_grad()
def exact_gradient_ascent(
    rbm: BernoulliRBM,
    data: Tensor,
    *,
    n_steps: int,
    lr: float,
    chain_dist: Tensor | None = None,
    record_every: int = 1,
) -> tuple[list[float], Tensor | None]:
    """Train ``rbm`` in place by full-batch gradient ascent on the exact mean
    log-likelihood.

    ``theta <- theta + lr *
    exact_gradient(rbm, data)`` for ``n_steps`` steps. If ``chain_dist`` (.., 2**D) is
    given, it is the distribution of a persistent chain; at every step, before the
    update, it takes one exact block-Gibbs sweep with the current parameters
    (``q <- q @ A @ B``, :func:`gibbs_kernel`), as PCD's chains do (Algorithm 18.3). It
    comes back as the exact distribution of a PCD chain that followed this learning
    trajectory. Returns the exact mean log-likelihood (nats) every ``record_every``
    steps, starting with the initial value, and the chain distribution.
    """
    if n_steps < 0 or record_every < 1:
        raise ValueError(
            f"need n_steps >= 0 and record_every >= 1; got {n_steps}, {record_every}"
        )
    data = rbm._check_v(data)
    ll = [float(log_likelihood(rbm, data).mean())]
    for t in range(1, n_steps + 1):
        if chain_dist is not None:
            A, B = gibbs_kernel(rbm, dtype=chain_dist.dtype)
            chain_dist = (chain_dist @ A) @ B
        for p, d in zip(
            (rbm.W, rbm.b, rbm.c), exact_gradient(rbm, data, dtype=rbm.W.dtype)
        ):
            p.add_(d, alpha=lr)
        if t % record_every == 0:
            ll.append(float(log_likelihood(rbm, data).mean()))
    return ll, chain_dist


# --- pseudo-likelihood ----------------------------------------------------------------
def pseudo_log_likelihood_bruteforce(rbm: BernoulliRBM, v: Tensor) -> Tensor:
    """sum_i log P(v_i | v_-i) by its definition, one unit at a time (§18.3); (B, D) ->
    (B,).

    For each i, P(v_i | v_-i) = P*(v) / (P*(v with v_i = 0) + P*(v with v_i = 1)) with
    P*(v) = exp(-F(v)). A slow reference for ``rbm.pseudo_log_likelihood``.
    """
    v = rbm._check_v(v)
    log_p = -rbm.free_energy(v)  # (B,)
    total = torch.zeros_like(log_p)
    for i in range(rbm.n_visible):
        v0, v1 = v.clone(), v.clone()
        v0[:, i], v1[:, i] = 0, 1
        both = torch.stack([-rbm.free_energy(v0), -rbm.free_energy(v1)], 1)  # (B, 2)
        total += log_p - torch.logsumexp(both, 1)
    return total


def stochastic_pseudo_log_likelihood(
    rbm: BernoulliRBM,
    v: Tensor,
    *,
    index: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """D * log P(v_i | v_-i) at ONE unit i per example: scikit-learn's
    ``score_samples``.

    ``i`` is ``index`` (B,) when given, else uniform from ``generator``. Averaged over i
    this is exactly the pseudo-log-likelihood, so it is an unbiased (and noisy) estimate
    of it; it is not log P(v). Returns (B,).
    """
    v = rbm._check_v(v)
    if index is None:
        gen_dev = generator.device if generator is not None else torch.device("cpu")
        index = torch.randint(
            rbm.n_visible, (len(v),), generator=generator, device=gen_dev
        )
    index = torch.as_tensor(index, device=v.device).long()
    if (
        index.shape != (len(v),)
        or int(index.min()) < 0
        or int(index.max()) >= rbm.n_visible
    ):
        raise ValueError(
            f"index must hold one unit in [0, {rbm.n_visible}) per example, shape "
            f"({len(v)},); got shape {tuple(index.shape)}"
        )
    flipped = v.clone()
    rows = torch.arange(len(v), device=v.device)
    flipped[rows, index] = 1 - flipped[rows, index]
    return rbm.n_visible * F.logsigmoid(rbm.free_energy(flipped) - rbm.free_energy(v))


def to_sklearn(rbm: BernoulliRBM, *, random_state: int = 0, **kwargs):
    """A fitted-looking ``sklearn.neural_network.BernoulliRBM`` with this RBM's
    parameters.

    ``components_ = W.T``, ``intercept_visible_ = b``, ``intercept_hidden_ = c``
    (float64), so its ``score_samples`` and ``transform`` can be compared with ours.
    """
    from sklearn.neural_network import BernoulliRBM as SkRBM

    est = SkRBM(n_components=rbm.n_hidden, random_state=random_state, **kwargs)
    W, b, c = (t.to("cpu", torch.float64).numpy() for t in _params(rbm))
    est.components_, est.intercept_visible_, est.intercept_hidden_ = (
        W.T.copy(),
        b.copy(),
        c.copy(),
    )
    est.n_features_in_ = rbm.n_visible
    est._n_features_out = rbm.n_hidden
    return est


def from_sklearn(est, *, dtype: torch.dtype = torch.float64) -> BernoulliRBM:
    """Our :class:`BernoulliRBM` with the parameters of a fitted scikit-learn
    ``BernoulliRBM``.
    """
    if not hasattr(est, "components_"):
        raise ValueError(
            "from_sklearn needs a fitted sklearn BernoulliRBM (call est.fit(X) first)"
        )
    W = torch.as_tensor(est.components_.T, dtype=dtype)  # (D, H)
    rbm = BernoulliRBM(W.shape[0], W.shape[1], dtype=dtype)
    rbm.W = W.clone()
    rbm.b = torch.as_tensor(est.intercept_visible_, dtype=dtype).clone()
    rbm.c = torch.as_tensor(est.intercept_hidden_, dtype=dtype).clone()
    return rbm


# --- a PCD run that dgmlib.cache.train_or_load can store ------------------------------
class PCDRun(nn.Module):
    """An RBM with what PCD training leaves besides its weights, as buffers
    (so it caches).

    ``rbm`` is the model; ``chains`` (n_chains, D) the final persistent fantasy
    particles (``History.chains`` of :func:`~dgmlib.energy.rbm.fit_rbm`);
    ``recon_error`` (epochs,) the mean reconstruction error of each epoch. Build it
    untrained, then :meth:`fit`::

        run = train_or_load("rbm-digits", cfg, build=lambda:
        PCDRun(BernoulliRBM(64, 100), 100, 30),
                            train=lambda r: r.fit(x, lr=0.05, generator=g))
    """

    def __init__(self, rbm: BernoulliRBM, n_chains: int, epochs: int):
        super().__init__()
        if n_chains < 1 or epochs < 1:
            raise ValueError(
                f"PCDRun needs n_chains >= 1 and epochs >= 1; got {n_chains}, {epochs}"
            )
        self.rbm = rbm
        self.register_buffer(
            "chains",
            torch.zeros(
                n_chains, rbm.n_visible, dtype=rbm.W.dtype, device=rbm.W.device
            ),
        )
        self.register_buffer(
            "recon_error", torch.zeros(epochs, dtype=torch.float64, device=rbm.W.device)
        )

    def fit(self, data: Tensor, **kwargs) -> PCDRun:
        """``fit_rbm(self.rbm, data, method="pcd", n_chains=..., epochs=...,
        **kwargs)``; keeps chains and errors.
        """
        for key in ("method", "n_chains", "epochs"):
            if key in kwargs:
                raise ValueError(
                    f"PCDRun.fit sets {key} itself (from the constructor); do not "
                    "pass it"
                )
        hist = fit_rbm(
            self.rbm,
            data,
            method="pcd",
            n_chains=len(self.chains),
            epochs=len(self.recon_error),
            **kwargs,
        )
        self.chains.copy_(hist.chains)
        if "recon_error" in hist:  # absent with monitor=False
            self.recon_error.copy_(
                torch.tensor(hist.epoch_mean("recon_error"), dtype=torch.float64)
            )
        return self
