"""Study file validation: every bad key or value is one ConfigError naming the file and the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import REPO, SMOKE

import launch
from search.config import StudyConfig, mask_url
from space.errors import ConfigError


def write(tmp_path: Path, d: dict, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.mark.parametrize("study", ["smoke", "softgate"])
def test_shipped_studies_load(study):
    cfg = StudyConfig.load(study)
    assert cfg.name == study
    assert cfg.objective_names[:2] == ["pck", "latency_ms"]
    assert cfg.directions[:2] == ["maximize", "minimize"]


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_study_file_loads_under_its_own_name(path):
    assert StudyConfig.load(str(path)).name == path.stem


def test_smoke_is_small():
    cfg = StudyConfig.load("smoke")
    assert (cfg.trials, cfg.concurrency, cfg.data.source) == (4, 2, "synthetic")


def test_defaults_filled_in(tmp_path):
    d = {"name": "t", "space": {"width": [16, 32]}, "proxy": {"input_size": 32}, "trials": 3}
    cfg = StudyConfig.load(str(write(tmp_path, d)))
    assert cfg.sampler.name == "nsga2"
    assert cfg.objective_names == ["pck", "latency_ms"]
    assert cfg.storage_url == "sqlite:///runs/t/study.db"
    assert cfg.latency.cache is True and cfg.latency.pause_trials is True and cfg.scheduler is None


BAD = [
    # (change to the smoke study, the key the error must name)
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d.pop("trials"), "trials"),
    (lambda d: d.update(trials=0), "trials"),
    (lambda d: d.update(trials="many"), "trials"),
    (lambda d: d.update(concurrency=-1), "concurrency"),
    (lambda d: d.update(name="no spaces please"), "name"),
    (lambda d: d["sampler"].update(name="annealing"), "sampler.name"),
    (lambda d: d["sampler"].update(seeed=1), "sampler.seeed"),
    (lambda d: d["proxy"].update(epochs=0), "proxy.epochs"),
    (lambda d: d["proxy"].update(epocs=3), "proxy.epocs"),
    (lambda d: d["proxy"].update(lr="fast"), "proxy.lr"),
    (lambda d: d["data"].update(train=-5), "data.train"),
    (lambda d: d["objectives"].append({"name": "accuracy"}), "objectives[2].name"),
    (lambda d: d["objectives"][1].update(direction="down"), "objectives[1].direction"),
    (lambda d: d.update(constraints={"max_params": -1}), "constraints.max_params"),
    (lambda d: d.update(constraints={"max_flopz": 1}), "constraints.max_flopz"),
    (lambda d: d["resources"].update(gpus_per_trial=1.5), "resources.gpus_per_trial"),
    (lambda d: d["resources"].update(cpus_per_trial=0), "resources.cpus_per_trial"),
    (lambda d: d["latency"].update(device="tpu"), "latency.device"),
    (lambda d: d["latency"].update(runs=5), "latency.runs"),
    (lambda d: d["latency"].update(clock="sundial"), "latency.clock"),
    (lambda d: d["latency"].update(min_seconds=-1), "latency.min_seconds"),
    (lambda d: d["latency"].update(pause_trials="yes"), "latency.pause_trials"),
    (lambda d: d["export"].update(auto="yes"), "export.auto"),
    (lambda d: d.update(dashboard={"notes": "yes"}), "dashboard.notes"),
    (lambda d: d.update(dashboard={"artifact_dir": 3}), "dashboard.artifact_dir"),
    (lambda d: d.update(dashboard={"artefacts": False}), "dashboard.artefacts"),
    (lambda d: d["proxy"].update(augment="no"), "proxy.augment"),
    (lambda d: d.update(storage="runs/x.db"), "storage"),
    (lambda d: d.update(scheduler={"name": "hyperband"}), "scheduler.name"),
    (
        lambda d: d.update(scheduler={"name": "asha", "reduction_factor": 1}),
        "scheduler.reduction_factor",
    ),
    (lambda d: d["space"].update(gate="sigmoid-ish"), "gate"),
    (lambda d: d["space"].update(colour=[1, 2]), "colour"),
]


@pytest.mark.parametrize("change,key", BAD, ids=[k for _, k in BAD])
def test_bad_values_name_file_and_key(tmp_path, change, key):
    d = copy.deepcopy(SMOKE)
    change(d)
    path = write(tmp_path, d)
    with pytest.raises(ConfigError) as info:
        StudyConfig.load(str(path))
    err = info.value
    assert err.source == str(path)
    assert err.field == key
    assert "\n" not in str(err)


def test_not_yaml_and_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        StudyConfig.load(str(bad))
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        StudyConfig.load(str(bad))


def test_unknown_study_name_lists_known():
    with pytest.raises(ConfigError, match="smoke"):
        StudyConfig.load("no-such-study")


def test_overrides_are_validated_like_the_file():
    cfg = StudyConfig.load("smoke")
    new = cfg.with_overrides(
        trials=7, data="synthetic:100", storage="sqlite:////tmp/x.db", out="/tmp/runx"
    )
    assert (new.trials, new.data.source, new.storage_url) == (
        7,
        "synthetic:100",
        "sqlite:////tmp/x.db",
    )
    assert cfg.trials == 4  # the original is untouched
    assert (
        StudyConfig.load("smoke").with_overrides(out="/tmp/runx").storage_url
        == "sqlite:////tmp/runx/study.db"
    )
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(trials=0)
    assert info.value.field == "--trials"
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(storage="not a url")
    assert info.value.field == "--storage"


def test_stored_config_masks_the_password():
    cfg = StudyConfig.load("smoke").with_overrides(
        storage="postgresql://alice:s3cret@db.example/nas"
    )
    assert mask_url(cfg.storage_url) == "postgresql://alice:***@db.example/nas"
    assert "s3cret" not in str(cfg.to_dict())
    assert mask_url("sqlite:///runs/x/study.db") == "sqlite:///runs/x/study.db"


def test_cli_bad_file_exits_2_and_writes_nothing(tmp_path, capsys):
    d = copy.deepcopy(SMOKE)
    d["sampler"]["name"] = "annealing"
    path = write(tmp_path, d)
    out = tmp_path / "run"
    assert launch.main(["--study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {path}: sampler.name: unknown sampler 'annealing'; "
        "choose one of nsga2, tpe, gp, random, costaware, grid"
    ]
    assert not out.exists()


def test_cli_bad_override_exits_2(tmp_path, capsys):
    assert launch.main(["--study", "smoke", "--trials", "0", "--out", str(tmp_path / "run")]) == 2
    assert "--trials" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_yaml_1_1_exponent_floats_are_read_as_numbers(tmp_path):
    # PyYAML reads `1e-3` (no dot) as the string '1e-3': a float field takes the number meant
    text = (REPO / "studies/smoke.yaml").read_text().replace("lr: 0.002", "lr: 1e-3")
    text += "constraints: {max_params: 5e4}\n"
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert yaml.safe_load(text)["proxy"]["lr"] == "1e-3"
    cfg = StudyConfig.load(str(path))
    assert cfg.proxy.lr == 0.001 and cfg.constraints.limits == {"params": 50000.0}
    assert cfg.to_dict()["proxy"]["lr"] == 0.001
    path.write_text(text.replace("lr: 1e-3", "lr: 1e-3x"))
    with pytest.raises(ConfigError) as info:
        StudyConfig.load(str(path))
    assert info.value.field == "proxy.lr" and "1e-3x" in info.value.message


def test_the_proxy_section_is_the_proxy_budget(tmp_path):
    from trainers.budget import ProxyBudget
    from trainers.proxy import ProxyBudget as FromProxy

    assert FromProxy is ProxyBudget
    cfg = StudyConfig.load("smoke")
    assert cfg.proxy == ProxyBudget(
        epochs=2, max_seconds=15, input_size=32, batch_size=16, lr=0.002
    )
    assert cfg.to_dict()["proxy"] == SMOKE["proxy"]  # stored as the file gave it
    with pytest.raises(ConfigError) as info:
        ProxyBudget.from_dict({"epochs": 2, "batch_size": 0}, source="x.yaml")
    assert str(info.value) == "x.yaml: proxy.batch_size: must be a positive whole number (got 0)"


def test_constraints_on_any_registered_measure():
    d = copy.deepcopy(SMOKE)
    d["constraints"] = {"max_flops": 2e6, "max_latency_ms": 50, "max_params": None}
    cfg = StudyConfig.from_dict(d, source="s.yaml")
    assert cfg.constraints.limits == {"flops": 2e6, "latency_ms": 50}
    stored = cfg.to_dict()["constraints"]
    assert (
        stored["max_flops"] == 2e6
        and stored["max_latency_ms"] == 50
        and stored["max_params"] is None
    )


def test_config_and_sections_are_frozen():
    import dataclasses

    cfg = StudyConfig.load("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trials = 9
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.source = "elsewhere"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.proxy.epochs = 9
    assert StudyConfig.from_dict(cfg.to_dict(mask_credentials=False)).to_dict() == cfg.to_dict()
