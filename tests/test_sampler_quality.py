"""benchmarks/sampler_quality.py on the smoke space: equal compute, one cache shared by every
strategy and worker, ASHA replayed from the cached curves, and a rerun that trains nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, load_benchmark, study_file

sq = load_benchmark("sampler_quality")


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_strategies_at_equal_compute_share_one_cache_and_a_rerun_trains_nothing(
    tmp_path: Path,
) -> None:
    # the smoke space has 4 archs (2 widths x 2 gates); the paper's design is 2 of them
    study = study_file(
        tmp_path,
        "sq",
        proxy={"epochs": 2},
        sampler={"name": "costaware", "options": {"startup": 1}},
    )
    cache, log, first, second = (
        tmp_path / n for n in ("objectives.jsonl", "runs.jsonl", "first.json", "second.json")
    )
    args = [
        "--study",
        str(study),
        "--budget",
        "3",
        "--unit-seconds",
        "5",
        "--seeds",
        "0",
        "1",
        "--cache",
        str(cache),
        "--log",
        str(log),
        "--strategies",
        "random",
        "default",
        "warm",
        "mf",
    ]
    assert sq.main(args + ["--out", str(first)]) == 0
    a = json.loads(first.read_text())
    assert (
        1 <= a["trained_now"] <= 4 and a["archs_known"] == a["trained_now"]
    )  # never one arch trained twice
    assert len(cache.read_text().splitlines()) == a["trained_now"]
    table = a["table"]
    assert set(table) == {"random", "default", "warm", "mf"}
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    for run in runs:  # each run used its budget (3 x 5 s), or the space's 4 archs ran out first
        assert run["spent"] >= 3 * 5.0 or len({t["arch_id"] for t in run["trials"]}) == 4, run[
            "strategy"
        ]
    for name, row in table.items():
        assert all(0.0 <= r <= a["best_known_hv"] + 1e-12 for r in row["regret"]), name
    assert table["random"]["regret_ratio"] == 1.0
    assert len(runs) == 8  # 4 strategies x 2 seeds

    cache.write_text(cache.read_text() + '{"setup": "torn')  # as if killed while writing
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/sampler_quality.py"),
            *args,
            "--jobs",
            "2",
            "--out",
            str(second),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    b = json.loads(second.read_text())
    assert b["trained_now"] == 0 and "8 runs from" in out.stdout
    assert b["table"] == a["table"] and b["reference_point"] == a["reference_point"]
    assert out.stdout.strip().splitlines()[-1].startswith("regret ratio (default/random) ")
    assert out.stdout.strip().splitlines()[-1].endswith(" over 2 seeds")


def test_asha_replay_stops_a_weak_curve_as_ray_does() -> None:
    bracket = sq.make_bracket({"asha": {"grace_period": 1, "reduction_factor": 2}}, epochs=6)
    assert (
        sq.stopped_at(bracket, 0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) is None
    )  # the first trial sets the rungs
    assert (
        sq.stopped_at(bracket, 1, [0.05, 0.1, 0.1, 0.1, 0.1, 0.1]) == 1
    )  # below the rung-1 median
    assert sq.stopped_at(bracket, 2, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]) is None  # above every rung
    assert sq.stopped_at(None, 3, [0.0] * 6) is None  # no scheduler: never stopped


def test_regret_and_best_under_a_latency_budget() -> None:
    rows = [
        {"state": "COMPLETE", "pck": 0.2, "latency_ms": 10.0},
        {"state": "COMPLETE", "pck": 0.3, "latency_ms": 20.0},
        {"state": "PRUNED", "pck": 0.9, "latency_ms": 5.0},
    ]
    ref = sq.np.array([0.0, 40.0])
    assert (
        sq.hypervolume(sq.front_points(rows), ref) == 0.2 * 10 + 0.3 * 20
    )  # the pruned trial is not on the front
    assert sq.best_under(rows, 15.0) == 0.2 and sq.best_under(rows, 4.0) == 0.0
