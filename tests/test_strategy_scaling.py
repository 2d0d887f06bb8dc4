"""Width scaling of the cost-aware sampler (search/strategy/_scaling.py)."""

from __future__ import annotations

import optuna
import yaml
from helpers import REPO

from search.strategy import CostAwareSampler, Scored, arch_params, model_costs
from search.strategy._objectives import Roles
from search.strategy._scaling import best_cell, cell_of, next_width
from space.references import references_in_space
from space.search_space import SearchSpace
from space.spec import ArchSpec

SOFTGATE = yaml.safe_load((REPO / "studies/softgate.yaml").read_text())["space"]
SPACE = SearchSpace.from_dict({**SOFTGATE, "stacks": [1], "depth": [2], "input_size": 64})
ROLES = Roles.of([("pck", "maximize"), ("latency_ms", "minimize")], None)
REFS = references_in_space(SPACE, sizes="smallest", widths=[24, 48, 96])
PAPER = [a for a in REFS if a["block"] == "multibranch"]


def paper_at(width: int) -> dict:
    return next(a for a in PAPER if a["width"] == width)


def half_split(width: int) -> dict:
    return {**paper_at(48), "width": width, "branch_split": ["1/2", "1/2"]}


def references_scored() -> list[Scored]:
    # the paper's design on a straight curve: 0.20 at 2 ms, 0.30 at 4 ms, 0.40 at 8 ms
    return [
        Scored(paper_at(w), v, c) for w, v, c in ((24, 0.2, 2.0), (48, 0.3, 4.0), (96, 0.4, 8.0))
    ]


def test_the_best_cell_is_the_one_farthest_above_the_references_curve() -> None:
    above = Scored(half_split(48), 0.31, 3.0)  # +0.05 over the curve at 3 ms
    a_bit = Scored({**paper_at(48), "fusion": "add"}, 0.26, 3.0)  # +0.0
    below = Scored({**paper_at(48), "gate": "none", "gate_init": None}, 0.2, 4.0)
    assert best_cell(references_scored() + [a_bit, below, above], PAPER, ROLES) == above.arch
    assert best_cell(references_scored() + [below], PAPER, ROLES) is None
    assert best_cell([above], PAPER, ROLES) is None  # no reference scored yet: no curve


def test_a_cell_goes_to_the_width_farthest_from_those_it_had_then_the_next() -> None:
    cell = half_split(48)
    seen = {ArchSpec.from_dict(cell).arch_id}
    order = []
    while (arch := next_width(cell, SPACE, seen, {})) is not None:
        assert cell_of(arch) == cell_of(cell)
        order.append(arch["width"])
        seen.add(ArchSpec.from_dict(arch).arch_id)
    assert order[:2] == [16, 96]
    assert sorted(order) == [w for w in SOFTGATE["width"] if w != 48]


def test_a_params_limit_keeps_a_width_out() -> None:
    cell = half_split(48)
    seen = {ArchSpec.from_dict(cell).arch_id}
    limit = model_costs(half_split(64))["params"]
    widths = set()
    while (arch := next_width(cell, SPACE, seen, {"params": limit})) is not None:
        widths.add(arch["width"])
        seen.add(ArchSpec.from_dict(arch).arch_id)
    assert 96 not in widths and 64 in widths


def asks_after_a_found_cell(scale_widths: bool) -> list[int | None]:
    """Four asks after the warm start and a cell above the references' curve: each one's width
    where it is that cell, else None."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = CostAwareSampler(
        SPACE,
        [("pck", "maximize"), ("latency_ms", "minimize")],
        seed=0,
        cost_aware=False,  # the other trials at random: the surrogate's picks take a minute here
        reference_widths=[24, 48, 96],
        scale_widths=scale_widths,
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    cell = half_split(48)
    scores = {ArchSpec.from_dict(s.arch).arch_id: (s.value, s.cost) for s in references_scored()}
    scores[ArchSpec.from_dict(cell).arch_id] = (0.31, 3.0)  # found: above the references' curve
    for arch in [*sampler.warm, cell]:  # Newell's design: fast and poor
        study.enqueue_trial(arch_params(SPACE, arch))
        trial = study.ask()
        study.tell(trial, list(scores.get(SPACE.sample(trial).arch_id, (0.1, 1.5))))
    asked = []
    for _ in range(4):
        trial = study.ask()
        spec = SPACE.sample(trial)
        asked.append(spec.width if cell_of(spec.to_dict()) == cell_of(cell) else None)
        study.tell(trial, [0.1, 1.0 + spec.width / 100])
    return asked


def test_the_sampler_scales_the_best_cell_every_other_trial() -> None:
    assert asks_after_a_found_cell(True) == [16, None, 96, None]  # spread over the widths


def test_without_the_option_no_trial_is_scaled() -> None:
    assert asks_after_a_found_cell(False) == [None] * 4
