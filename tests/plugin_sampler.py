"""A sampler plugin for tests/test_samplers.py, loaded by import path:
`sampler: {name: "tests.plugin_sampler:FixedChoiceSampler", options: {index: 1}}` (docs/search.md)."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution


class FixedChoiceSampler(optuna.samplers.BaseSampler):
    """Every categorical parameter takes its choice number `index`; anything else is sampled at random.

    The plugin of docs/search.md ("A sampler by import path"): a small wrapper of RandomSampler.
    """

    def __init__(self, index: int = 0, seed: int | None = None) -> None:
        self.index = index
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        if isinstance(param_distribution, CategoricalDistribution):
            return param_distribution.choices[self.index % len(param_distribution.choices)]
        return self._random.sample_independent(study, trial, param_name, param_distribution)


NotASampler = dict  # for the "not a BaseSampler subclass" error
