"""What a trial is scored on or limited by: registered measures (objectives and cost measures).

Each measure has a name, a default direction, a unit and a stage:
  cost     computed before training, from the arch, its model and its latency (`CostInputs`);
           a `max_<name>` constraint on it skips the training of an arch that breaks the limit
  trained  computed from the proxy training's result (`trainers.proxy.ProxyResult`)
Any registered measure can be an objective (`objectives: [{name: NAME}]`), a constraint
(`constraints: {max_NAME: limit}`), and is a column of the export, report and ablation tables.
Its value is stored as the trial user attr NAME.

Adding one = one function + one `@register_measure(...)` line + one test (docs/design.md).
The runner hands the `Measure` objects to its Ray workers (search.trial.TrialJob), so a measure
registered in the driver process (a plugin module, a test) is computed in the workers too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COST, TRAINED = "cost", "trained"


@dataclass(frozen=True)
class Measure:
    name: str
    direction: str  # the objective's default direction: maximize or minimize
    unit: str
    stage: str  # COST or TRAINED
    compute: Callable[[Any], float]  # COST: (CostInputs) -> value; TRAINED: (ProxyResult) -> value
    untrained: float | None = None  # TRAINED: the value of a trial whose training a limit skipped


@dataclass
class CostInputs:
    """What a cost measure is computed from, in the trial's worker."""

    spec: Any  # space.spec.ArchSpec
    model: Any  # its torch model (built at spec.input_size)
    input_size: int
    latency: dict[str, float]  # the latency meter's result (search.latency.LATENCY_KEYS)
    values: dict[str, float] = field(default_factory=dict)  # cost measures computed before this one


MEASURES: dict[str, Measure] = {}


def register_measure(
    name: str, *, direction: str, unit: str, stage: str = COST, untrained: float | None = None
) -> Callable[[Callable[[Any], float]], Callable[[Any], float]]:
    """Decorator: register `compute` as measure `name`. Cost measures are computed in registration order."""
    if direction not in ("maximize", "minimize") or stage not in (COST, TRAINED):
        raise ValueError(
            f"measure {name!r}: direction must be maximize/minimize, stage cost/trained"
        )
    if stage == TRAINED and untrained is None:
        raise ValueError(
            f"measure {name!r}: a trained measure needs the value of an untrained trial"
        )

    def add(compute: Callable[[Any], float]) -> Callable[[Any], float]:
        if name in MEASURES:
            raise KeyError(f"measure {name!r} registered twice")
        MEASURES[name] = Measure(name, direction, unit, stage, compute, untrained)
        return compute

    return add


def measure_names(stage: str | None = None) -> list[str]:
    return [m.name for m in MEASURES.values() if stage is None or m.stage == stage]


def compute_costs(
    measures: list[Measure], spec: Any, model: Any, input_size: int, latency: dict[str, float]
) -> dict[str, float]:
    """The values of the cost measures among `measures`, in their order."""
    inputs = CostInputs(spec=spec, model=model, input_size=input_size, latency=latency)
    for m in measures:
        if m.stage == COST:
            inputs.values[m.name] = m.compute(inputs)
    return inputs.values


def trained_values(measures: list[Measure], result: Any | None) -> dict[str, float]:
    """The trained measures' values from a proxy result; None (training skipped): their `untrained` value."""
    return {
        m.name: (m.untrained if result is None else m.compute(result))
        for m in measures
        if m.stage == TRAINED
    }


def constraint_values(limits: dict[str, float], values: dict[str, float]) -> dict[str, float]:
    """Optuna constraints `max_<name>` -> value - limit (<= 0 feasible), for the limits whose value is known."""
    return {
        f"max_{name}": float(values[name] - limit)
        for name, limit in limits.items()
        if name in values
    }


def violations(limits: dict[str, float], values: dict[str, float]) -> list[str]:
    """'params 8.6e+04 > max_params 5e+04' for every known value over its limit."""
    return [
        f"{name} {values[name]:.4g} > max_{name} {limit:.4g}"
        for name, limit in limits.items()
        if name in values and values[name] > limit
    ]


# -- the built-in measures ---------------------------------------------------------------------------
@register_measure(
    "pck",
    direction="maximize",
    unit="fraction of joints (the val set's PCK metric)",
    stage=TRAINED,
    untrained=0.0,
)
def pck(result: Any) -> float:
    return float(result.pck)


@register_measure("params", direction="minimize", unit="parameters")
def params(inputs: CostInputs) -> int:
    from space.profile import count_params

    return int(count_params(inputs.model))


@register_measure("flops", direction="minimize", unit="FLOPs per image (1 multiply-add = 2)")
def flops(inputs: CostInputs) -> int:
    from space.profile import count_flops

    return int(count_flops(inputs.model, inputs.input_size))


@register_measure("latency_ms", direction="minimize", unit="ms (median, batch 1, latency.device)")
def latency_ms(inputs: CostInputs) -> float:
    return float(inputs.latency["latency_ms"])
