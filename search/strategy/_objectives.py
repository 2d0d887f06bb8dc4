"""The study's two objectives as the strategy sees them: a trained one and a cost, minimised."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from search.measures import MEASURES, TRAINED
from space.errors import ConfigError

_SIGN = {"maximize": 1.0, "minimize": -1.0}


@dataclass(frozen=True)
class Roles:
    """Which objective is trained and which is the cost; `signs` turn (trained, cost) into
    (maximised, minimised): the front is of (loss, cost) = (-sign0 * trained, sign1 * cost)."""

    trained: str
    cost: str
    signs: tuple[float, float]
    order: tuple[str, ...]  # the study's objective order: a trial's `values`

    @classmethod
    def of(cls, objectives: Sequence[tuple[str, str]], source: str | None) -> Roles:
        """ConfigError unless there are two objectives: one trained measure and one cost measure."""
        trained = [(n, d) for n, d in objectives if n in MEASURES and MEASURES[n].stage == TRAINED]
        cost = [(n, d) for n, d in objectives if n in MEASURES and MEASURES[n].stage != TRAINED]
        if len(objectives) != 2 or len(trained) != 1 or len(cost) != 1:
            raise ConfigError(
                "the costaware sampler needs two objectives: one trained measure "
                "(pck) and one cost measure (latency_ms, flops or params)",
                source=source,
                field="objectives",
            )
        signs = (_SIGN[trained[0][1]], -_SIGN[cost[0][1]])
        return cls(trained[0][0], cost[0][0], signs, tuple(name for name, _ in objectives))

    def loss(self, value: float) -> float:
        """The trained objective, minimised."""
        return -self.signs[0] * value

    def point(self, value: float, cost: float) -> list[float]:
        """(loss, cost), both minimised: a point of the front."""
        return [-self.signs[0] * value, self.signs[1] * cost]
