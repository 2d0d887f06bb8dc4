"""launch.py export: Pareto-optimal trials of a real SQLite Optuna study -> YAML that rebuilds the model."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import REPO

import search.export as export_mod
from search.config import engine_url
from search.export import export_study, locate_study, mask_url, open_study
from space.errors import ConfigError
from space.model import build_model
from space.profile import count_params
from space.spec import load_arch

optuna.logging.set_verbosity(optuna.logging.WARNING)

# (arch changes from the bulat-sgsc-tiny preset, pck, latency_ms). Trials 0, 1 and 3 are the Pareto
# front; 2 is dominated by 1; a FAIL trial follows. Varied blocks/gates/depths so that an export
# that loses or mixes up fields rebuilds into a different model.
TRIALS = [
    ({}, 0.50, 1.0),
    ({"width": 48, "block": "bottleneck"}, 0.60, 2.0),
    ({"width": 64, "gate": "scalar"}, 0.55, 3.0),
    ({"depth": 2, "fusion": "add", "gate": "se"}, 0.70, 4.0),
]
PARETO = {0, 1, 3}


def make_study(storage: str, name: str = "exp") -> optuna.Study:
    """A study as the runner writes it (storage contract, docs/design.md), with real arch specs."""
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["pck", "latency_ms"])
    study.set_user_attr("softgate_version", "0.1.0")
    base = load_arch("bulat-sgsc-tiny")
    for changes, pck, latency in TRIALS:
        spec = base.replace(**changes)
        trial = study.ask()
        attrs = {
            "arch": spec.to_dict(),
            "arch_id": spec.arch_id,
            "params": count_params(build_model(spec)),
            "flops": 1000,
            "latency_ms": latency,
            "latency_p25_ms": latency * 0.9,
            "latency_p75_ms": latency * 1.1,
            "latency_cv": 0.02,
            "images_per_s": 100.0,
            "wall_s": 1.5,
            "epochs": 1,
            "data": "synthetic",
            "budget": {"epochs": 1, "input_size": 64},
            "node_id": "abc",
            "per_joint_pck": [pck] * 14,
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, [pck, latency])
    trial = study.ask()
    trial.set_user_attr("fail_reason", "NonFiniteLossError: loss is nan")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study


@pytest.fixture
def storage(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(url)
    return url


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_export_rebuilds_pareto_models(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    files = export_study(storage, "exp", out)
    records = [yaml.safe_load(f.read_text()) for f in files]
    assert {r["provenance"]["trial"] for r in records} == PARETO
    # ranked best PCK first
    assert [r["metrics"]["pck"] for r in records] == [0.70, 0.60, 0.50]
    for path, record in zip(files, records):
        spec = load_arch(path)  # the same loader as launch.py profile/train/evaluate --arch
        assert spec.arch_id == record["provenance"]["arch_id"]
        assert count_params(build_model(spec)) == record["metrics"]["params"]
        assert record["provenance"]["study"] == "exp"
        assert record["provenance"]["data"] == "synthetic"
        assert record["provenance"]["budget"] == {"epochs": 1, "input_size": 64}
        assert record["provenance"]["exported"]
        assert len(record["metrics"]["per_joint_pck"]) == 14
    with open(out / "index.csv") as fh:
        index = list(csv.DictReader(fh))
    assert [row["file"] for row in index] == [f.name for f in files]
    assert [int(row["trial"]) for row in index] == [3, 1, 0]
    assert sorted(p.name for p in out.iterdir()) == sorted([f.name for f in files] + ["index.csv"])


def test_same_arch_twice_on_the_front_is_exported_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = make_study(url)
    repeat = study.trials[1]  # the same arch measured again, equal values: both are Pareto-optimal
    study.add_trial(optuna.trial.create_trial(values=repeat.values, user_attrs=repeat.user_attrs))
    files = export_study(url, "exp", tmp_path / "export")
    records = [yaml.safe_load(f.read_text()) for f in files]
    assert [r["provenance"]["trial"] for r in records] == [3, 1, 0]
    assert [r["provenance"]["same_arch_trials"] for r in records] == [[], [5], []]


def test_existing_export_needs_force(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_study(storage, "exp", out)
    (out / "note.txt").write_text("user file")
    before = _snapshot(out)
    with pytest.raises(ConfigError, match="--force"):
        export_study(storage, "exp", out)
    assert _snapshot(out) == before
    files = export_study(storage, "exp", out, force=True)
    assert (out / "note.txt").read_text() == "user file" and len(files) == len(
        PARETO
    )  # only the export's own files go
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "export",
        "study.db",
    ]  # no temp folders left


def test_failed_export_keeps_old_one(storage: str, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "export"
    export_study(storage, "exp", out)
    before = _snapshot(out)
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return yaml.safe_dump(*args, **kwargs)

    monkeypatch.setattr(export_mod.yaml, "safe_dump", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        export_study(storage, "exp", out, force=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "study.db"]


def test_unknown_study_lists_known_names(storage: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known studies: exp") as err:
        export_study(storage, "nope", tmp_path / "out")
    assert err.value.field == "study"
    assert not (tmp_path / "out").exists()


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "none" / "study.db"
    with pytest.raises(ConfigError, match="no study storage"):
        open_study(f"sqlite:///{db}", "exp")
    assert not db.exists()


def test_study_without_complete_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="empty", storage=url, directions=["maximize", "minimize"])
    with pytest.raises(ConfigError, match="no COMPLETE trials"):
        export_study(url, "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mask_url_hides_password() -> None:
    masked = mask_url("postgresql://bob:s3cret@db.example:5432/nas")
    assert "s3cret" not in masked and "bob" in masked and "db.example" in masked
    assert mask_url("sqlite:///runs/x/study.db") == "sqlite:///runs/x/study.db"


def test_locate_bare_name_defaults_to_run_folder() -> None:
    loc = locate_study("no-such-study-file")
    assert loc.run_dir == Path("runs/no-such-study-file")
    assert loc.storage == "sqlite:///runs/no-such-study-file/study.db"
    assert loc.export_dir == loc.run_dir / "export"
    loc = locate_study("x", storage="sqlite:///a.db", out="elsewhere")
    assert (loc.storage, loc.run_dir) == ("sqlite:///a.db", Path("elsewhere"))


def _launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_export_then_refuse(storage: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # the fixture's latencies are made up: keep them (a quiet pass would decide another front)
    done = _launch(
        "export",
        "--study",
        "exp",
        "--storage",
        storage,
        "--out",
        str(run),
        "--no-remeasure",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(list((run / "export").glob("*.yaml"))) == len(PARETO)
    again = _launch(
        "export", "--study", "exp", "--storage", storage, "--out", str(run), cwd=tmp_path
    )
    assert again.returncode == 2
    assert again.stderr.strip().startswith("error: ") and "--force" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    bad = _launch(
        "export", "--study", "nope", "--storage", storage, "--out", str(run), cwd=tmp_path
    )
    assert bad.returncode == 2 and "known studies: exp" in bad.stderr


def test_exported_yaml_is_a_valid_cli_arch(storage: str, tmp_path: Path) -> None:
    files = export_study(storage, "exp", tmp_path / "export")
    record = yaml.safe_load(files[-1].read_text())
    done = _launch(
        "profile", "--arch", str(files[-1]), "--runs", "20", "--threads", "1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert f"{record['metrics']['params']:,}" in done.stdout


def test_open_study_goes_through_engine_url_like_the_runner(monkeypatch) -> None:
    # the runner opens postgresql:// as postgresql+psycopg:// (psycopg 3) when psycopg2 is missing
    # (search.config.engine_url); export and report open the storage through the same step. Nothing
    # listens on port 1: the error comes from the driver trying to connect, password masked.
    seen = []

    def recording(url: str) -> str:
        seen.append(url)
        return engine_url(url)

    monkeypatch.setattr(export_mod, "engine_url", recording)
    with pytest.raises(ConfigError) as info:
        open_study("postgresql://alice:s3cret@127.0.0.1:1/nas", "x")
    assert seen == ["postgresql://alice:s3cret@127.0.0.1:1/nas"]
    message = str(info.value)
    assert "connect" in message and "s3cret" not in message
    if importlib.util.find_spec("psycopg2") is None:
        assert "psycopg2" not in message


def test_remeasure_decides_the_front_by_quiet_latencies_and_keeps_both(tmp_path):
    # in the study the wider arch was timed faster (drift): it hid the tiny one; timed quietly and
    # interleaved the tiny one is faster, so both are on the front, and each YAML says so
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="q", storage=storage, directions=["maximize", "minimize"]
    )
    study.set_metric_names(["pck", "latency_ms"])
    study.set_user_attr(
        "config", {"latency": {"device": "cpu", "threads": 1, "remeasure_seconds": 5}}
    )
    tiny = load_arch("bulat-sgsc-tiny").to_dict()
    for arch, values in ((tiny, [0.10, 5.0]), (tiny | {"width": 64}, [0.12, 4.0])):
        from space.spec import ArchSpec

        spec = ArchSpec.from_dict(arch)
        attrs = {
            "arch": spec.to_dict(),
            "arch_id": spec.arch_id,
            "pck": values[0],
            "latency_ms": values[1],
        }
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs))
    plain = export_study(storage, "q", tmp_path / "plain")
    assert len(plain) == 1
    files = export_study(storage, "q", tmp_path / "quiet", remeasure=True)
    records = [yaml.safe_load(p.read_text()) for p in files]
    assert len(records) == 2
    for rec in records:
        m = rec["metrics"]
        assert m["latency_decided_by"] == "quiet interleaved pass"
        assert m["latency_quiet_low_ms"] <= m["latency_quiet_ms"] <= m["latency_quiet_high_ms"]
        assert m["latency_ms"] in (4.0, 5.0)  # the in-study value stays
    index = list(csv.DictReader(open(tmp_path / "quiet" / "index.csv")))
    assert all(r["latency_decided_by"] for r in index)
