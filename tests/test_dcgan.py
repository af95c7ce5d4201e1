"""Tests for dgmlib.adversarial.dcgan (DCGANGenerator, DCGANDiscriminator).

Shapes and ranges of both networks, unconditional and conditional; the label really
reaching each network (checked against a named broken variant that ignores it); dropout
active in training mode only; bad input shapes and labels rejected; and a few steps of
fit_gan with the conditional pair. Float64, fixed seeds.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dgmlib.adversarial import fit_gan, sample_gan
from dgmlib.adversarial.dcgan import DCGANDiscriminator, DCGANGenerator

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def test_generator_shapes_range_and_architecture():
    torch.manual_seed(0)
    G = DCGANGenerator(5, width=4).to(DT)
    x = G(torch.randn(7, 5, dtype=DT)).detach()
    assert x.shape == (7, 64) and x.dtype == DT
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    # Radford et al.: strided transposed convolutions and batch norm in G
    kinds = {type(m) for m in G.modules()}
    assert nn.ConvTranspose2d in kinds and nn.BatchNorm2d in kinds
    assert nn.MaxPool2d not in kinds and nn.Upsample not in kinds
    Gc = DCGANGenerator(5, width=4, n_classes=10).to(DT)
    assert Gc(torch.randn(3, 5, dtype=DT), torch.tensor([0, 4, 9])).shape == (3, 64)


def test_discriminator_shapes_and_dropout_only_in_training():
    torch.manual_seed(0)
    D = DCGANDiscriminator(width=4, dropout=0.5).to(DT)
    x = torch.rand(6, 64, dtype=DT)
    assert D(x).shape == (6, 1)
    assert not torch.equal(D(x), D(x))  # training mode: units dropped at random
    D.eval()
    assert torch.equal(D(x), D(x))  # eval mode: the deterministic network
    Dc = DCGANDiscriminator(width=4, n_classes=10).to(DT)
    assert Dc(x, torch.arange(6)).shape == (6, 1)


class LabelBlindGenerator(DCGANGenerator):
    """Broken variant: the one-hot label is replaced by zeros, so y never matters."""

    def forward(self, z, y=None):
        h = torch.cat([z, torch.zeros(z.shape[0], self.n_classes, dtype=z.dtype)], 1)
        h = F.relu(self.bn0(self.project(h).view(-1, 2 * self.width, 2, 2)))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.sigmoid(self.up2(h)).flatten(1)


@pytest.mark.parametrize("variant", ["correct", "label_blind"])
def test_label_reaches_the_generator(variant):
    torch.manual_seed(0)
    cls = DCGANGenerator if variant == "correct" else LabelBlindGenerator
    G = cls(5, width=4, n_classes=10).to(DT).eval()
    z = torch.randn(10, 5, dtype=DT)
    with torch.no_grad():
        a, b = G(z, torch.zeros(10, dtype=torch.long)), G(z, torch.arange(10))
    ok = float((a - b).abs().max()) > 1e-6  # deterministic: no tolerance to tune
    assert ok == (variant == "correct")


def test_label_reaches_the_discriminator():
    torch.manual_seed(0)
    D = DCGANDiscriminator(width=4, n_classes=10).to(DT)
    x = torch.rand(10, 64, dtype=DT)
    with torch.no_grad():
        diff = D(x, torch.zeros(10, dtype=torch.long)) - D(x, torch.arange(10))
    assert float(diff.abs().max()) > 1e-6


def test_bad_inputs_rejected():
    G = DCGANGenerator(5, width=4)
    with pytest.raises(ValueError, match=r"z of shape \(B, 5\)"):
        G(torch.randn(3, 6))
    with pytest.raises(ValueError, match="n_classes=0"):
        G(torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    Gc = DCGANGenerator(5, width=4, n_classes=10)
    with pytest.raises(ValueError, match=r"labels of shape \(3,\)"):
        Gc(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"integers in \[0, 10\)"):
        Gc(torch.randn(3, 5), torch.tensor([0, 1, 10]))
    D = DCGANDiscriminator(width=4)
    with pytest.raises(ValueError, match=r"shape \(B, 64\)"):
        D(torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"0 <= dropout < 1"):
        DCGANDiscriminator(dropout=1.0)
    with pytest.raises(ValueError, match="latent_dim >= 1"):
        DCGANGenerator(0)


def test_conditional_pair_trains_with_fit_gan():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 64), torch.randint(0, 10, (64,), generator=g)
    G = DCGANGenerator(4, width=4, n_classes=10)
    D = DCGANDiscriminator(width=4, n_classes=10, dropout=0.5)
    hist = fit_gan(G, D, (x, y), latent_dim=4, steps=3, batch_size=16, generator=g)
    assert len(hist["d_loss"]) == 3
    s = sample_gan(G, 5, latent_dim=4, labels=torch.arange(5), generator=g)
    assert s.shape == (5, 64)
