"""MADE masks: the autoregressive property checked through the autograd Jacobian."""

import pytest
import torch
from torch import nn

from dgmlib.masked import MaskedMLP, made_degrees, made_masks


def dependency(net: MaskedMLP, d: int) -> torch.Tensor:
    """(D, P, D) boolean: output (i, p) has a non-zero derivative with respect to input
    j.
    """
    x = torch.randn(
        3, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    jac = torch.autograd.functional.jacobian(lambda v: net(v).sum(0), x)  # (D, P, B, D)
    return jac.abs().sum(2) > 0


@pytest.mark.parametrize("n_params", [1, 2])
@pytest.mark.parametrize("seeded", [False, True])
def test_outputs_depend_only_on_earlier_inputs(n_params, seeded):
    d = 7
    g = torch.Generator().manual_seed(3)
    order = torch.randperm(d, generator=g)
    torch.manual_seed(0)
    # tanh, not ReLU: a dead ReLU would hide an allowed edge from the Jacobian
    net = MaskedMLP(
        d,
        [20, 20],
        n_params,
        order=order,
        activation=nn.Tanh,
        generator=g if seeded else None,
    ).double()
    dep = dependency(net, d)
    pos = torch.empty(d, dtype=torch.long)
    pos[order] = torch.arange(d)
    allowed = pos[None, :] < pos[:, None]  # input j before output i
    assert not (dep & ~allowed[:, None, :]).any()
    # with 20 hidden units per layer and evenly spread degrees every allowed edge exists
    if not seeded:
        assert (dep == allowed[:, None, :]).all()


def test_reset_masks_changes_order_and_keeps_property():
    d = 5
    torch.manual_seed(0)
    net = MaskedMLP(d, [16], 1, activation=nn.Tanh).double()
    new = torch.tensor([4, 2, 0, 1, 3])
    net.reset_masks(order=new)
    dep = dependency(net, d)[:, 0, :]
    assert not dep[4].any()  # the first generated sees nothing
    assert (
        not dep[3].all() and dep[3, [4, 2, 0, 1]].all()
    )  # the last sees all the others  # noqa: E712


def test_context_and_bad_input():
    net = MaskedMLP(4, [8], 2, context_dim=3)
    out = net(torch.randn(6, 4), context=torch.randn(6, 3))
    assert out.shape == (6, 4, 2)
    with pytest.raises(ValueError, match="permutation"):
        net.reset_masks(order=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="features"):
        net(torch.randn(2, 5), context=torch.randn(2, 3))
    with pytest.raises(ValueError, match="context"):
        net(torch.randn(2, 4))
    with pytest.raises(ValueError, match="hidden"):
        MaskedMLP(4, [], 1)


def test_masks_shapes():
    deg = made_degrees(6, [10, 12])
    masks = made_masks(deg, n_params=3)
    assert [tuple(m.shape) for m in masks] == [(10, 6), (12, 10), (18, 12)]
