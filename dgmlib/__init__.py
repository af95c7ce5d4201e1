"""dgmlib: the deep generative models of *Deep Learning* chapter 20, small and tested.

Models hold parameters and compute exact quantities (energies, conditionals,
log-probabilities); samplers, objectives and estimators are functions that take a model.
"""

__version__ = "0.1.0"
