"""Judging generative models by their samples and their likelihoods (§20.14): mode
coverage, maximum mean discrepancy tests, Fréchet distance, precision and recall for
distributions, Parzen windows (and what each misses).
"""

__all__: list[str] = []
