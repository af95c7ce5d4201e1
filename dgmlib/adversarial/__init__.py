"""Implicit generators trained against a critic or a kernel: generative adversarial
networks (§20.10.4) and generative moment matching networks (§20.10.5).
"""

__all__: list[str] = []
