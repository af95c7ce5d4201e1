"""dgmlib.draws: Bernoulli draws from 64-bit random words.

Statistical checks use fixed seeds and 5-standard-error bounds: a correct sampler
fails one point with probability 5.7e-7, so each test below (at most 44 points) fails
by chance with probability below 3e-5.
"""

from __future__ import annotations

import pytest
import torch

from dgmlib.draws import bernoulli, uniform_ints

N = 400_000  # draws per probability


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def within(freq: torch.Tensor, p: torch.Tensor, n: int, k: float = 5.0) -> bool:
    se = (p * (1 - p) / n).sqrt().clamp_min(1 / n)
    return bool(((freq - p).abs() <= k * se).all())


def frequencies(draw, ps: torch.Tensor, seed: int) -> torch.Tensor:
    p = ps.repeat_interleave(N).reshape(len(ps), N)
    return draw(p, gen(seed)).double().mean(1)


GRID = torch.tensor([1e-4, 0.01, 0.1, 0.25, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_zero_and_one_are_exact(dtype):
    p = torch.tensor([0.0, 1.0], dtype=dtype).repeat(N)
    x = bernoulli(p, gen(0))
    assert x.dtype == torch.bool
    assert not x[0::2].any() and x[1::2].all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_frequencies_match_p(dtype):
    got = frequencies(bernoulli, GRID.to(dtype), seed=1)
    assert within(got, GRID.double(), N)


def test_a_threshold_without_the_grid_offset_fails_the_frequency_test():
    """The named broken variant: u is centred on 0, so ``u < p 2^24`` (no -2^23)
    draws 1 with probability 1/2 + p, which the check above must reject.
    """

    def no_offset(p, g):
        return uniform_ints(p.shape, g) < p * 2.0**24

    assert not within(frequencies(no_offset, GRID, seed=1), GRID.double(), N)


def test_uniform_ints_cover_the_24_bit_grid_with_balanced_bits():
    u = uniform_ints((2, N), gen(2))
    assert u.dtype == torch.int32 and u.shape == (2, N)
    lo, hi = -(2**23), 2**23
    assert int(u.min()) >= lo and int(u.max()) < hi
    j = (u.long() - lo).flatten()  # uniform on {0, ..., 2^24 - 1}
    bits = torch.stack([(j >> k) & 1 for k in range(24)]).double().mean(1)
    assert within(bits, torch.full((24,), 0.5, dtype=torch.float64), j.numel())


def test_the_two_draws_from_one_word_are_independent():
    # entries 2i and 2i+1 share a 64-bit word: their joint frequency is p^2
    p = torch.full((4 * N,), 0.5)
    x = bernoulli(p, gen(3)).view(-1, 2).double()
    both = (x[:, 0] * x[:, 1]).mean()
    assert within(both.view(1), torch.tensor([0.25], dtype=torch.float64), len(x))


def test_buffers_and_out_give_the_same_draws():
    p = torch.rand(30, 17, generator=gen(4))
    want = bernoulli(p, gen(5))
    bufs, out = {}, torch.empty(30, 17, dtype=torch.bfloat16)
    for _ in range(2):  # the second call reuses the buffers
        got = bernoulli(p, gen(5), out=out, buffers=bufs)
        assert got is out and torch.equal(got.bool(), want)
    assert bernoulli(p, gen(5), out=p) is p and torch.equal(p.bool(), want)
