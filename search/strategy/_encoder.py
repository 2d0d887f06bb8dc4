"""Architectures as the Optuna params the sampler hands out, and as the vectors the models fit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna

from search.strategy._costs import model_costs
from space.search_space import AXES, SearchSpace
from space.spec import ArchSpec, split_key


def arch_params(space: SearchSpace, arch: Mapping[str, Any]) -> dict[str, Any]:
    """An ArchSpec dict -> the Optuna params `space.sample` suggests for it (a split as
    "1/2,1/4,1/4")."""
    params = {}
    for key in AXES:
        choices = space.axes.get(key, ())
        if len(choices) > 1 and space.active(key, arch):
            params[key] = split_key(arch[key]) if key == "branch_split" else arch[key]
    return params


def params_arch(space: SearchSpace, params: Mapping[str, Any]) -> ArchSpec:
    """A trial's params -> the arch `space.sample` builds from them (ConfigError if invalid)."""
    return space.sample(optuna.trial.FixedTrial(dict(params)))


class Encoder:
    """Archs as vectors: one-hot per choice of each searched axis, plus log params and FLOPs."""

    def __init__(self, space: SearchSpace):
        self.columns = [
            (k, v) for k in AXES for v in space.axes.get(k, ()) if len(space.axes[k]) > 1
        ]

    def onehot(self, arch: Mapping[str, Any]) -> np.ndarray:
        return np.array(
            [1.0 if _plain(k, arch.get(k)) == _plain(k, v) else 0.0 for k, v in self.columns]
        )

    def matrix(self, archs: Sequence[Mapping], costs: Sequence[Mapping]) -> np.ndarray:
        """The rows of `archs`, given their costs (`model_costs`)."""
        logs = np.array([[math.log(c["params"]), math.log(c["flops"])] for c in costs])
        logs = logs.reshape(-1, 2)
        onehots = np.array([self.onehot(a) for a in archs]).reshape(len(archs), -1)
        return np.hstack([onehots, logs])

    def encode(self, archs: Sequence[Mapping]) -> np.ndarray:
        """The rows of `archs`, their costs counted (or taken from the cache)."""
        return self.matrix(archs, [model_costs(a) for a in archs])


def _plain(key: str, value: Any) -> Any:
    # splits come as ["1/2", "1/4", "1/4"] in arch dicts and as Fractions in the space: compare keys
    return split_key(value) if key == "branch_split" and value is not None else value
