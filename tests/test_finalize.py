"""launch.py finalize: candidates and references, selection never on the test split, outputs, storage,
export index, and --resume after kill -9 retraining nothing that finished."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import REPO, TINY

import launch
from search import final_report as rep
from search import finalize as fin
from search.export import add_index_columns, export_files
from space.errors import ConfigError
from space.references import project_reference
from space.spec import ArchSpec
from trainers.data import selection_splits, split_names

LSPET = REPO.parent / "shared" / "datasets" / "lspet"


def test_references_are_projected_onto_the_found_sizes_and_deduplicated():
    paper_arch = ArchSpec.from_dict(TINY).to_dict()  # TINY makes the paper's choices
    other = ArchSpec.from_dict({**TINY, "gate": "identity", "gate_init": None}).to_dict()
    found = [
        fin.Candidate(paper_arch, ArchSpec.from_dict(paper_arch).arch_id, "found", trial=0),
        fin.Candidate(other, ArchSpec.from_dict(other).arch_id, "found", trial=1),
    ]
    cands = fin.with_references(found, ["paper", "newell"])
    assert [c.source for c in cands] == ["found+reference", "found", "reference"]
    assert cands[0].reference == "paper" and cands[2].reference == "newell"
    newell = cands[2].arch
    assert {k: newell[k] for k in ("stacks", "width", "depth", "input_size")} == {
        "stacks": 2,
        "width": 16,
        "depth": 2,
        "input_size": 32,
    }
    assert (newell["block"], newell["gate"], newell["fusion"], newell["skip"]) == (
        "bottleneck",
        "identity",
        "add",
        "block",
    )


def test_bad_references_and_counts_are_config_errors():
    assert fin.parse_references("none") == []
    assert fin.parse_references("newell, paper") == ["newell", "paper"]
    for text in ("vgg", "paper,vgg", ""):
        with pytest.raises(ConfigError, match="--references"):
            fin.parse_references(text)
    for epochs, seeds, top, field in (
        (0, 1, None, "--epochs"),
        (10001, 1, None, "--epochs"),
        (1, 0, None, "--seeds"),
        (1, 1, 0, "--top"),
    ):
        with pytest.raises(ConfigError, match=field):
            fin.check_counts(epochs, seeds, top)


@pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="LSPET not present")
def test_lspet_selection_uses_a_part_of_train_never_the_test_images():
    # LSPET's val split is its test split: selecting on it would be selecting on test
    assert set(split_names(str(LSPET), "val")) == set(split_names(str(LSPET), "test"))
    train_split, val_split = selection_splits(str(LSPET))
    assert (train_split, val_split) == ("train_carved", "val_carved")
    test = set(split_names(str(LSPET), "test"))
    carved_train, carved_val = (
        split_names(str(LSPET), train_split),
        split_names(str(LSPET), val_split),
    )
    assert (
        not test & set(carved_val)
        and not test & set(carved_train)
        and not set(carved_train) & set(carved_val)
    )
    assert sorted(carved_train + carved_val) == sorted(split_names(str(LSPET), "train"))


def test_synthetic_selection_keeps_its_own_val_split():
    assert selection_splits("synthetic") == ("train", "val")


def _row(arch_id, source, latency, test, std, reference=""):
    return {
        "arch_id": arch_id,
        "source": source,
        "reference": reference,
        "latency_ms": latency,
        "test_mean": test,
        "test_std": std,
    }


def test_dominance_says_by_how_much_and_against_the_spread():
    rows = [
        _row("f1", "found", 1.0, 0.8, 0.01),
        _row("f2", "found", 3.0, 0.9, 0.01),
        _row("r1", "reference", 2.0, 0.7, 0.02, "paper"),
        _row("r2", "reference", 0.5, 0.6, 0.02, "newell"),
    ]
    lines = rep.dominance_lines(rows)
    assert "paper" in lines[0] and "dominated by f1" in lines[0] and "+0.1000" in lines[0]
    assert "larger than the seed spread" in lines[0] and "not larger" not in lines[0]
    assert "newell" in lines[1] and "no found architecture beats it" in lines[1]
    one_seed = rep.dominance_lines(
        [_row("f", "found", 1.0, 0.8, None), _row("r", "reference", 1.0, 0.7, None, "p")]
    )
    assert "one seed: spread unknown" in one_seed[0]
    assert [r["arch_id"] for r in rep.front(rows)] == ["r2", "f1", "f2"]


def test_index_columns_are_added_and_the_export_is_still_recognised(tmp_path):
    (tmp_path / "01-a.yaml").write_text("# softgate-nas export: test\narch: {}\n")
    (tmp_path / "index.csv").write_text("rank,file,trial,arch_id,pck\n1,01-a.yaml,0,a,0.5\n")
    assert add_index_columns(
        tmp_path, {"a": {"final_test_pck_02": 0.7, "final_test_pck_02_std": None}}
    )
    rows = list(csv.DictReader(open(tmp_path / "index.csv")))
    assert rows == [
        {
            "rank": "1",
            "file": "01-a.yaml",
            "trial": "0",
            "arch_id": "a",
            "pck": "0.5",
            "final_test_pck_02": "0.7",
            "final_test_pck_02_std": "",
        }
    ]
    assert export_files(tmp_path) == {"01-a.yaml", "index.csv"}
    assert not add_index_columns(tmp_path / "none", {})


# -- end to end on the smoke study -----------------------------------------------------------------
def _finalize_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "launch.py"),
        "finalize",
        "--study",
        "smoke",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--top",
        "2",
        *extra,
    ]


def _check_outputs(out: Path) -> None:
    final = out / "final"
    rows = list(csv.DictReader(open(final / "final.csv")))
    assert {r["source"] for r in rows} >= {"reference"} and any(
        "found" in r["source"] for r in rows
    )
    assert {r["reference"] for r in rows} - {""} == {"paper", "newell"}
    for row in rows:
        assert (
            float(row["latency_ms"]) > 0
            and int(row["params"]) > 0
            and 0 <= float(row["test_mean"]) <= 1
        )
        assert bool(row["proxy_pck"]) == ("found" in row["source"])
        record = json.loads((final / f"{row['arch_id']}-s0" / "final.json").read_text())
        # selection on val, score on test: never the same split
        assert record["val_split"] == "val" and record["test_split"] == "test"
        assert (final / f"{row['arch_id']}-s0" / "best.pt").is_file()
    assert (final / "final.md").read_text().count("\n|") == len(rows) + 2  # header, rule, rows
    assert (final / "final_pareto.png").read_bytes()[:4] == b"\x89PNG"
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name="smoke", storage=storage)
    assert [r["arch_id"] for r in study.user_attrs["final"]] == [r["arch_id"] for r in rows]
    linked = optuna.load_study(study_name="smoke-final", storage=storage)
    assert len(linked.trials) == len(rows)
    assert all("final_test_pck_02" in t.user_attrs for t in linked.trials)
    index = list(csv.DictReader(open(out / "export" / "index.csv")))
    done = {r["arch_id"] for r in rows}
    assert all(r["final_test_pck_02"] for r in index if r["arch_id"] in done)
    assert export_files(out / "export") is not None


@pytest.mark.slow
def test_finalize_end_to_end_then_resume_after_kill(tmp_path):
    out = tmp_path / "run"
    assert launch.main(["--study", "smoke", "--out", str(out)]) == 0
    proc = subprocess.Popen(
        _finalize_cmd(out),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "final").glob("*/final.json")):
        assert proc.poll() is None, "finalize ended before any run finished"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3)  # the watchdog ends the killed finalize's Ray workers
    finished = {p: p.stat().st_mtime_ns for p in (out / "final").glob("*/final.json")}
    assert finished and not (out / "final" / "final.csv").exists()
    # without --resume an earlier finalize is refused, not trained over
    again = subprocess.run(_finalize_cmd(out), cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    done = subprocess.run(
        _finalize_cmd(out, "--resume"), cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # nothing finished was retrained
    assert "finished earlier" in done.stdout
    assert "dominated by" in done.stdout or "beats it" in done.stdout
    _check_outputs(out)


@pytest.mark.slow  # a smoke study first: about 80 s
def test_a_relative_data_path_reaches_the_ray_workers_absolute(tmp_path, monkeypatch):
    # Ray Tune runs each trial in its own folder: a relative --data must be made absolute first
    from test_data import write_lspet

    write_lspet(tmp_path / "data" / "lspet", n=1006)
    out = tmp_path / "run"
    assert launch.main(["--study", "smoke", "--out", str(out)]) == 0
    seen = {}

    class Stop(Exception):
        pass

    def fake_run_tune(runs, job, *args, **kwargs):
        seen["data"] = job.data
        raise Stop

    monkeypatch.setattr(fin, "run_tune", fake_run_tune)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Stop):
        launch.main(
            [
                "finalize",
                "--study",
                str(REPO / "studies/smoke.yaml"),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--data",
                "data/lspet",
            ]
        )
    assert seen["data"] == str((tmp_path / "data" / "lspet").resolve())


def test_families_add_their_ladder_once_and_mark_found_members():
    from search.finalize import Candidate, parse_widths, with_families

    paper32 = project_reference(
        {
            "stacks": 1,
            "width": 32,
            "depth": 3,
            "joints": 14,
            "input_size": 256,
            "intermediate_supervision": True,
            "version": 1,
        },
        "paper",
    )
    found = [Candidate(paper32, ArchSpec.from_dict(paper32).arch_id, "found", trial=0)]
    out = with_families(found, ["paper", "newell"], [16, 32])
    paper = [c for c in out if c.family == "paper"]
    assert len(paper) == 4 and found[0] in paper and found[0].source == "found"
    assert {(c.arch["stacks"], c.arch["width"], c.arch["depth"]) for c in paper} == {
        (1, 16, 3),
        (1, 32, 3),
        (1, 16, 4),
        (2, 16, 3),
    }  # deeper and wider at the middle width
    assert len({c.arch_id for c in out}) == len(out) == 8
    assert parse_widths("16, 32") == [16, 32]
    for bad in ("", "a,b", "0,16"):
        with pytest.raises(ConfigError):
            parse_widths(bad)


def test_family_lines_give_margins_and_the_summary():
    from cli.finalize import _family_lines

    rows = [
        _row(f"p{w}", "family", lat, score, 0.01) | {"family": "paper"}
        for w, lat, score in [(16, 10.0, 0.50), (32, 20.0, 0.60), (64, 40.0, 0.62)]
    ]
    rows += [_row("a", "found", 15.0, 0.58, 0.005), _row("b", "found", 5.0, 0.4, None)]
    lines = _family_lines(rows, 2)
    assert any("a at 15 ms vs paper: +2.15 PCK (seed std 0.50)" in line for line in lines)
    assert any("b at 5 ms vs paper: outside its latency range" in line for line in lines)
    assert lines[-1] == (
        "margin over the paper family: median +2.15, best +2.15 PCK over 1 found archs, "
        "2 seeds (1 outside its latency range)"
    )


@pytest.mark.slow  # a smoke study, then 1 found arch and a 4-member family, 1 epoch each
def test_finalize_against_a_family_prints_margins_and_draws_the_family(tmp_path):
    out = tmp_path / "run"
    assert launch.main(["--study", "smoke", "--out", str(out)]) == 0
    done = subprocess.run(
        _finalize_cmd(out, "--references", "none", "--family", "paper", "--family-widths", "16,32")
        + ["--top", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(out / "final" / "final.csv")))
    family = [r for r in rows if r["family"] == "paper"]
    assert len(family) == 4 and all(float(r["latency_ms"]) > 0 for r in family)
    assert all(
        float(r["latency_low_ms"]) <= float(r["latency_ms"]) <= float(r["latency_high_ms"])
        for r in rows
    )
    assert any(
        line.startswith("margin over the paper family: ") for line in done.stdout.splitlines()
    )
    assert (out / "final" / "final_pareto.png").read_bytes()[:4] == b"\x89PNG"
