"""SearchSpace with real Optuna studies: define-by-run sampling, conditional axes, grid enumeration."""

from __future__ import annotations

from fractions import Fraction

import optuna
import pytest

from space.errors import ConfigError
from space.search_space import GRID_PARAM, SearchSpace
from space.spec import ArchSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "stacks": [1, 2],
    "width": [16, 24],
    "depth": 2,
    "input_size": 32,
    "block": ["bottleneck", "multibranch"],
    "branch_split": [["1/2", "1/4", "1/4"], "1/3,1/3,1/3"],
    "gate": ["identity", "channel", "se"],
    "gate_init": [1.0, 0.5],
    "fusion": ["add", "concat_conv3x3"],
}


def test_sampled_specs_stay_inside_the_space_and_conditionals_hold() -> None:
    space = SearchSpace.from_dict(SPACE, source="study.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_fail = seen_ok = 0
    for _ in range(40):
        trial = study.ask()
        try:
            spec = space.sample(trial)
        except ConfigError as err:  # 16 channels cannot split into thirds
            assert err.field == "branch_split" and trial.params["width"] == 16
            assert trial.params["branch_split"] == "1/3,1/3,1/3"
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            seen_fail += 1
            continue
        seen_ok += 1
        study.tell(trial, 0.0)
        assert (
            spec.stacks in (1, 2)
            and spec.width in (16, 24)
            and spec.depth == 2
            and spec.input_size == 32
        )
        assert spec.fusion in ("add", "concat_conv3x3") and spec.gate in (
            "identity",
            "channel",
            "se",
        )
        assert ("branch_split" in trial.params) == (spec.block == "multibranch")
        assert ("gate_init" in trial.params) == (spec.gate == "channel")
        assert "depth" not in trial.params  # fixed axes are not suggested
        if spec.block == "multibranch":
            assert spec.branch_split in (
                (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)),
                (Fraction(1, 3),) * 3,
            )
    assert seen_ok > 20 and seen_fail > 0


def test_missing_axes_keep_arch_defaults() -> None:
    spec = SearchSpace.from_dict({"width": 32, "input_size": 64}).sample(
        optuna.create_study().ask()
    )
    default = ArchSpec()
    assert (spec.width, spec.gate, spec.fusion, spec.stacks) == (
        32,
        default.gate,
        default.fusion,
        default.stacks,
    )


def test_grid_lists_each_valid_architecture_once() -> None:
    space = SearchSpace.from_dict(SPACE)
    grid = space.grid()
    # counted by hand: per stacks (2) and fusion (2):
    #   bottleneck: width 16/24 x gates (identity, channel@1.0, channel@0.5, se) = 8
    #   multibranch: width 16 x 1 split + width 24 x 2 splits = 3, x 4 gate settings = 12
    assert len(grid) == 2 * 2 * (8 + 12)
    ids = {ArchSpec.from_dict(g).arch_id for g in grid}
    assert len(ids) == len(grid)


def test_grid_sampler_visits_the_whole_grid() -> None:
    space = SearchSpace.from_dict(
        {
            "width": [16, 24],
            "depth": 2,
            "input_size": 32,
            "gate": ["identity", "channel"],
            "block": ["bottleneck", "multibranch"],
            "branch_split": ["1/2,1/4,1/4", "1/3,1/3,1/3"],
        }
    )
    grid = space.grid()
    study = optuna.create_study(
        sampler=optuna.samplers.GridSampler(space.grid_sampler_space(), seed=0)
    )
    archs = []
    study.optimize(lambda t: archs.append(space.sample_grid(t).arch_id) or 0.0, n_trials=len(grid))
    assert sorted(archs) == sorted(ArchSpec.from_dict(g).arch_id for g in grid)
    assert all(set(t.params) == {GRID_PARAM} for t in study.trials)


@pytest.mark.parametrize(
    "space,field",
    [
        ({"gates": ["se"]}, "gates"),
        ({"gate": ["se", "sigmoid"]}, "gate"),
        ({"depth": [2, 7]}, "depth"),
        ({"width": []}, "width"),
        ({"branch_split": [["1/2", "1/3"]]}, "branch_split"),
        ({"intermediate_supervision": ["no"]}, "intermediate_supervision"),
    ],
)
def test_invalid_spaces_name_the_axis(space: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_dict(space, source="study.yaml")
    assert info.value.field == field and str(info.value).startswith(f"study.yaml: {field}: ")


def test_is_valid_and_round_trip_of_the_space() -> None:
    space = SearchSpace.from_dict(SPACE)
    assert space.is_valid({"width": 24, "branch_split": "1/3,1/3,1/3", "input_size": 64})
    assert not space.is_valid({"width": 16, "branch_split": "1/3,1/3,1/3", "input_size": 64})
    assert SearchSpace.from_dict(space.to_dict()) == space
