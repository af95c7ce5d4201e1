"""Implicit generators trained against a critic or a kernel: generative adversarial
networks (§20.10.4) and generative moment matching networks (§20.10.5).
"""

__all__: list[str] = []
from dgmlib.adversarial.mmd import (  # noqa: E402
    Autoencoder,
    DecodedGenerator,
    fit_autoencoder,
    fit_gmmn,
    gaussian_kernel,
    mmd2,
    sample_generator,
)

__all__ += [
    "mmd2",
    "gaussian_kernel",
    "fit_gmmn",
    "sample_generator",
    "Autoencoder",
    "fit_autoencoder",
    "DecodedGenerator",
]

from dgmlib.adversarial.gan import (  # noqa: E402
    fit_gan,
    gan_losses,
    gradient_penalty,
    pack,
    sample_gan,
)

__all__ += ["gan_losses", "fit_gan", "gradient_penalty", "pack", "sample_gan"]

from dgmlib.adversarial.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402

__all__ += ["DCGANGenerator", "DCGANDiscriminator"]
