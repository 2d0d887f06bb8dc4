"""The sampler registry: built-in names, any Optuna BaseSampler by import path, and bad samplers or
options refused when the study file is loaded (one line, exit 2, nothing written)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from helpers import REPO, SMOKE, study_file

import launch
from search.config import StudyConfig, build_sampler, effective_trials
from search.samplers import SAMPLERS
from space.errors import ConfigError

PLUGIN = "tests.plugin_sampler:FixedChoiceSampler"  # importable from the repository root (launch.py's folder)


def load_with(tmp_path: Path, **sampler) -> StudyConfig:
    return StudyConfig.load(str(study_file(tmp_path, "s", sampler=sampler)))


@pytest.mark.parametrize("name", ["nsga2", "tpe", "gp", "random", "grid"])
def test_every_registered_sampler_builds(tmp_path, name):
    cfg = load_with(tmp_path, name=name, seed=1, options={})
    assert isinstance(build_sampler(cfg), optuna.samplers.BaseSampler)
    assert name in SAMPLERS


def test_a_sampler_by_import_path_gets_its_options_and_seed(tmp_path):
    cfg = load_with(tmp_path, name=PLUGIN, seed=3, options={"index": 1})
    sampler = build_sampler(cfg)
    assert type(sampler).__name__ == "FixedChoiceSampler" and sampler.index == 1


@pytest.mark.parametrize(
    "name,field,words",
    [
        ("no_such_pkg.samplers:Mine", "sampler.name", "no module named 'no_such_pkg'"),
        ("tests.plugin_sampler:Missing", "sampler.name", "has no 'Missing'"),
        (
            "tests.plugin_sampler:NotASampler",
            "sampler.name",
            "not a subclass of optuna.samplers.BaseSampler",
        ),
        ("annealing", "sampler.name", "unknown sampler 'annealing'"),
    ],
)
def test_bad_sampler_names_are_one_line_errors(tmp_path, name, field, words):
    with pytest.raises(ConfigError) as err:
        load_with(tmp_path, name=name, options={})
    assert err.value.field == field and words in err.value.message and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "sampler,words",
    [
        (
            {"name": "nsga2", "options": {"population_size": 1}},
            "population_size",
        ),  # the sampler's ValueError
        (
            {"name": "tpe", "options": {"colour": "red"}},
            "not an option of the tpe sampler",
        ),  # TypeError
        ({"name": PLUGIN, "options": {"colour": "red"}}, "not an option"),
    ],
)
def test_bad_sampler_options_are_caught_when_the_file_loads(tmp_path, sampler, words):
    with pytest.raises(ConfigError) as err:
        load_with(tmp_path, **sampler)
    assert err.value.field == "sampler.options" and words in err.value.message


def test_cli_bad_sampler_option_exits_2_and_writes_nothing(tmp_path, capsys):
    path = study_file(tmp_path, "s", sampler={"name": "nsga2", "options": {"population_size": 1}})
    out = tmp_path / "run"
    assert launch.main(["--study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith(f"error: {path}: sampler.options: ")
        and "population_size" in err[0]
    )
    assert not out.exists()


def test_effective_trials_cut_a_grid_without_changing_the_config(tmp_path):
    cfg = load_with(
        tmp_path, name="grid", seed=0, options={}
    )  # width 16/32 x gate channel/identity
    big = cfg.with_overrides(trials=10)
    assert effective_trials(big) == 4 and big.trials == 10
    assert effective_trials(cfg.with_overrides(trials=3)) == 3
    d = copy.deepcopy(SMOKE)
    assert effective_trials(StudyConfig.from_dict(d)) == d["trials"]  # not a grid: as given


@pytest.mark.slow  # 20-60 s: the fast suite stays under 10 min on 2 cores
def test_smoke_study_with_a_sampler_by_import_path(tmp_path):
    # the sampler picks choice 1 of every categorical: every trial is width 32, gate identity
    path = study_file(
        tmp_path,
        "plugin",
        trials=2,
        sampler={"name": PLUGIN, "seed": 0, "options": {"index": 1}},
        export={"auto": False},
    )
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "--study", str(path), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="plugin", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    assert {(t.user_attrs["arch"]["width"], t.user_attrs["arch"]["gate"]) for t in trials} == {
        (32, "identity")
    }
    assert study.user_attrs["config"]["sampler"] == {
        "name": PLUGIN,
        "seed": 0,
        "options": {"index": 1},
    }


@pytest.mark.slow  # 20-60 s: the fast suite stays under 10 min on 2 cores
def test_an_arch_trained_before_in_the_study_is_not_trained_again(tmp_path):
    # the plugin sampler picks the same arch every time; one trial at a time: the first trains,
    # the others take its result (proxies are seeded, so a second training would repeat it)
    path = study_file(
        tmp_path,
        "again",
        trials=3,
        concurrency=1,
        export={"auto": False},
        sampler={"name": PLUGIN, "seed": 0, "options": {"index": 0}},
    )
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "--study", str(path), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted(
        optuna.load_study(study_name="again", storage=f"sqlite:///{out / 'study.db'}").get_trials(),
        key=lambda t: t.number,
    )
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert "reused_from" not in trials[0].user_attrs
    assert [t.user_attrs.get("reused_from") for t in trials[1:]] == [0, 0]
    assert all(t.values == trials[0].values for t in trials[1:])
    assert all(t.user_attrs["pck_curve"] == trials[0].user_attrs["pck_curve"] for t in trials[1:])
