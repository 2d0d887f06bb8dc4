"""CostAwareSampler: Optuna's sampler interface over the strategy's parts (see the package doc)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from search.strategy._acquisition import best_candidate
from search.strategy._candidates import CandidatePool, front_archs
from search.strategy._costs import EXACT_COSTS, within_limits
from search.strategy._encoder import Encoder, arch_params
from search.strategy._history import History
from search.strategy._objectives import Roles
from search.strategy._scaling import best_cell, next_width
from search.strategy._surrogate import Surrogate
from space.references import REFERENCES, references_in_space
from space.search_space import SearchSpace
from space.spec import ArchSpec


class CostAwareSampler(optuna.samplers.BaseSampler):
    """Warm start with the reference designs, then the candidate of largest expected HV improvement.

    It picks whole architectures in `before_trial` and hands each parameter out in
    `sample_independent`, so storage, resume, the dashboard and Ray are untouched."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[tuple[str, str]],
        limits: Mapping[str, float] | None = None,
        *,
        warm_start: bool = True,
        cost_aware: bool = True,
        references: Sequence[str] = tuple(REFERENCES),
        reference_sizes: str = "smallest",
        reference_widths: Sequence[int] | None = None,
        per_second: bool = True,
        scale_widths: bool = False,
        candidates: int = 64,
        startup: int = 4,
        seed: int | None = None,
    ):
        self.space, self.seed = space, seed
        self.roles = Roles.of(objectives, space.source)
        self.limits = {k: v for k, v in (limits or {}).items() if k in EXACT_COSTS}
        self.warm = (
            references_in_space(space, references, reference_sizes, reference_widths)
            if warm_start
            else []
        )
        self.cost_aware, self.per_second, self.startup = cost_aware, per_second, startup
        self.scale_widths = scale_widths
        self.encoder = Encoder(space)
        self.candidates = CandidatePool(space, candidates, self.limits, seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._chosen: dict[int, dict[str, Any]] = {}

    # -- optuna's sampler interface -------------------------------------------------------------
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        arch = self.choose(study)
        if arch is not None:
            self._chosen[trial.number] = arch_params(self.space, arch)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        params = self._chosen.get(trial.number, {})
        choices = getattr(param_distribution, "choices", ())
        if param_name in params and params[param_name] in choices:
            return params[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._chosen.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self.candidates.reseed()

    # -- the strategy ---------------------------------------------------------------------------
    def choose(self, study: optuna.Study) -> dict | None:
        """The architecture for the next trial (None: let the random sampler draw it)."""
        history = History.read(study, self.space, self.roles)
        for arch in self.warm:
            arch_id = ArchSpec.from_dict(arch).arch_id
            if arch_id not in history.seen and within_limits(arch, self.limits):
                return arch
        scaled = self.scaled(history)
        if scaled is not None:
            return scaled
        if not self.cost_aware:
            return None
        pool = self.candidates.build(history.seen, front_archs(history.done, self.roles))
        if not pool:
            return None
        if len(history.done) < self.startup:
            return self.candidates.pick(pool)
        return self.best_candidate(pool, history)

    def scaled(self, history: History) -> dict | None:
        """With `scale_widths`, every other trial: the best cell at a width it has not had
        (search/strategy/_scaling.py); None on the other trials or when there is none."""
        if not self.scale_widths or len(history.seen) % 2 == 0:
            return None
        cell = best_cell(history.done, self.warm, self.roles)
        if cell is None:
            return None
        return next_width(cell, self.space, history.seen, self.limits)

    def best_candidate(self, pool: Sequence[dict], history: History) -> dict:
        """The candidate to train next, by the models fitted to `history`."""
        model = Surrogate(self.encoder, self.roles, history, self.seed, self.per_second)
        return best_candidate(pool, history, model)
