"""Energy-based models: Boltzmann machines and their restricted, deep and real-valued kin (§20.1-20.8)."""

from .rbm import BernoulliRBM, RBMStep, cd_update, fit_rbm

__all__ = ["BernoulliRBM", "RBMStep", "cd_update", "fit_rbm"]
