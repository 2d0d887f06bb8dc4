"""What the study has tried so far, read once per ask from its trials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.strategy._costs import EXACT_COSTS, model_costs
from search.strategy._encoder import params_arch
from search.strategy._objectives import Roles
from space.errors import ConfigError
from space.search_space import SearchSpace
from space.spec import ArchSpec

TRAIN_SECONDS = "train_s"  # the user attr with a trial's proxy training seconds


class Scored(NamedTuple):
    """An arch with its trained value and its cost value (in the study's own directions)."""

    arch: dict
    value: float
    cost: float


class Timed(NamedTuple):
    """An arch trained to the end, and how many seconds its training took."""

    arch: dict
    seconds: float


@dataclass
class History:
    """The study's trials as the strategy needs them."""

    seen: set[str] = field(default_factory=set)  # arch ids of every trial: none is trained twice
    done: list[Scored] = field(default_factory=list)  # the trials with a trained value and a cost
    running: list[dict] = field(default_factory=list)  # the archs of running trials not yet scored
    timed: list[Timed] = field(default_factory=list)  # one per arch: its first full training

    @classmethod
    def read(cls, study: optuna.Study, space: SearchSpace, roles: Roles) -> History:
        history, timed = cls(), {}
        for t in study.get_trials(deepcopy=False):
            arch = _arch(space, t)
            if arch is None:
                continue
            arch_id = ArchSpec.from_dict(arch).arch_id
            history.seen.add(arch_id)
            value = trained_value(roles, t)
            if value is not None:
                cost = cost_value(roles, t, arch)
                if cost is not None:
                    history.done.append(Scored(arch, value, cost))
            elif t.state == TrialState.RUNNING:
                history.running.append(arch)
            seconds = train_seconds(t)
            if seconds is not None:
                timed.setdefault(arch_id, Timed(arch, seconds))
        history.timed = list(timed.values())
        return history


def _arch(space: SearchSpace, t: FrozenTrial) -> dict | None:
    """The trial's arch; None before its params are sampled, or for params of another space."""
    if not t.params and t.state != TrialState.COMPLETE:
        return None
    try:
        return params_arch(space, t.params).to_dict()
    except (ConfigError, ValueError, KeyError):
        return None


def trained_value(roles: Roles, t: FrozenTrial) -> float | None:
    if t.state == TrialState.COMPLETE:
        return float(t.values[roles.order.index(roles.trained)])
    if t.state == TrialState.PRUNED and roles.trained in t.user_attrs:  # ASHA: its last score
        return float(t.user_attrs[roles.trained])
    return None


def cost_value(roles: Roles, t: FrozenTrial, arch: dict[str, Any]) -> float | None:
    if roles.cost in EXACT_COSTS:
        return model_costs(arch)[roles.cost]
    if t.state == TrialState.COMPLETE:
        return float(t.values[roles.order.index(roles.cost)])
    value = t.user_attrs.get(roles.cost)
    return None if value is None else float(value)


def train_seconds(t: FrozenTrial) -> float | None:
    """A trial's training seconds, if it trained to the end: a reused or pruned trial's seconds say
    nothing of a full training."""
    seconds = t.user_attrs.get(TRAIN_SECONDS)
    if t.state != TrialState.COMPLETE or "reused_from" in t.user_attrs:
        return None
    return float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None
