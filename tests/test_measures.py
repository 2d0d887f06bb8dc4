"""The measure registry: a measure registered from inside a test is an objective and a constraint of
a real smoke study (real Ray, real SQLite), and a column of its export."""

from __future__ import annotations

import csv

import optuna
import pytest
import yaml
from helpers import study_file
from optuna.trial import TrialState

import launch
from search.config import StudyConfig
from search.measures import COST, MEASURES, register_measure
from space.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

ENERGY_LIMIT = 50.0  # the smoke space: width 16 ~22k params (22 "uJ"), width 32 ~86k (86 "uJ")


@pytest.fixture
def energy():
    """A toy cost measure: "energy" in uJ, 1 per thousand parameters, minimised."""

    # defined here, not at module level: Ray sends this function to its workers by value
    @register_measure("energy", direction="minimize", unit="uJ (toy: params / 1000)")
    def energy(inputs):
        return inputs.values["params"] / 1000.0

    yield MEASURES["energy"]
    del MEASURES["energy"]


def test_builtin_measures():
    assert list(MEASURES)[:4] == ["pck", "params", "flops", "latency_ms"]
    assert MEASURES["pck"].direction == "maximize" and MEASURES["pck"].stage != COST
    assert all(
        MEASURES[m].stage == COST and MEASURES[m].direction == "minimize"
        for m in ("params", "flops", "latency_ms")
    )


def test_an_unregistered_measure_is_refused(tmp_path):
    path = study_file(tmp_path, "e", constraints={"max_energy": 1.0})
    with pytest.raises(ConfigError) as info:
        StudyConfig.load(str(path))
    assert info.value.field == "constraints.max_energy"


@pytest.mark.slow  # 20-60 s: the fast suite stays under 10 min on 2 cores
def test_a_registered_measure_is_an_objective_and_a_constraint(tmp_path, energy):
    import ray

    path = study_file(
        tmp_path,
        "energy",
        trials=4,
        objectives=[{"name": "pck"}, {"name": "energy"}],
        sampler={"name": "grid", "seed": 0, "options": {}},  # width 16/32 x gate channel/identity
        constraints={"max_energy": ENERGY_LIMIT},
    )
    cfg = StudyConfig.load(str(path))
    assert cfg.directions == ["maximize", "minimize"] and cfg.constraints.limits == {
        "energy": ENERGY_LIMIT
    }
    out = tmp_path / "run"
    try:
        assert (
            launch.main(["--study", str(path), "--out", str(out)]) == 0
        )  # in this process: energy is registered
    finally:
        ray.shutdown()
    study = optuna.load_study(study_name="energy", storage=f"sqlite:///{out / 'study.db'}")
    assert study.metric_names == ["pck", "energy"]
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        energy_value = t.user_attrs["params"] / 1000.0
        assert t.user_attrs["energy"] == pytest.approx(energy_value) and t.values[
            1
        ] == pytest.approx(energy_value)
        assert t.constraints == {"max_energy": pytest.approx(energy_value - ENERGY_LIMIT)}
        if t.user_attrs["arch"]["width"] == 32:  # over the limit: not trained, infeasible
            assert (
                energy_value > ENERGY_LIMIT and t.values[0] == 0.0 and t.user_attrs["epochs"] == 0
            )
            assert "energy" in t.user_attrs["skipped"] and "max_energy" in t.user_attrs["skipped"]
        else:
            assert (
                energy_value < ENERGY_LIMIT
                and "skipped" not in t.user_attrs
                and t.user_attrs["epochs"] >= 1
            )
    front = {t.number for t in study.best_trials}
    assert front and all(trials[n].user_attrs["arch"]["width"] == 16 for n in front)

    # the export (written at the end of the run) carries the measure in every file and in the index
    exported = sorted((out / "export").glob("*.yaml"))
    assert len(exported) >= 1
    for file in exported:
        record = yaml.safe_load(file.read_text())
        assert record["metrics"]["energy"] == pytest.approx(record["metrics"]["params"] / 1000.0)
        assert record["metrics"]["energy"] < ENERGY_LIMIT
    with open(out / "export" / "index.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [k for k in rows[0] if k in ("pck", "energy", "params")] == ["pck", "energy", "params"]
    assert all(float(r["energy"]) == pytest.approx(float(r["params"]) / 1000.0) for r in rows)


def test_report_and_ablation_tables_take_the_registry(tmp_path, energy):
    from search.ablation import per_value_table
    from search.report import ablation_table

    study = optuna.create_study(
        study_name="r",
        storage=f"sqlite:///{tmp_path / 'r.db'}",
        directions=["maximize", "minimize"],
    )
    study.set_metric_names(["pck", "latency_ms"])
    for width, pck in ((16, 0.4), (16, 0.5), (32, 0.6), (32, 0.7)):
        trial = study.ask()
        trial.set_user_attr("arch", {"width": width, "gate": "channel"})
        trial.set_user_attr("arch_id", f"w{width}")
        for key, value in {
            "params": width * 1000,
            "flops": width * 10,
            "energy": width * 1.0,
        }.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("latency_ms", width / 10)
        study.tell(trial, [pck, width / 10])
    values = per_value_table(study)
    assert values.loc["32", "energy_mean"] == 32.0 and "energy_std" in values.columns
    assert ablation_table(study, "width").loc[16, "energy_mean"] == 16.0
