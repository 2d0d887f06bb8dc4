"""benchmarks/sampler_quality.py on the smoke space: the objective cache makes the comparison one
fixed function, shared by the runs and reused by a rerun (also from parallel worker processes)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO, study_file

_spec = importlib.util.spec_from_file_location("sampler_quality", REPO / "benchmarks/sampler_quality.py")
sq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sq)


def test_runs_share_one_cache_and_a_rerun_trains_nothing(tmp_path: Path) -> None:
    study = study_file(tmp_path, "sq", proxy={"epochs": 1})  # the smoke space has 4 archs (2 widths x 2 gates)
    cache, first, second = tmp_path / "objectives.jsonl", tmp_path / "first.json", tmp_path / "second.json"
    args = ["--study", str(study), "--trials", "3", "--seeds", "0", "1", "--cache", str(cache)]
    assert sq.main(args + ["--out", str(first)]) == 0
    a = json.loads(first.read_text())
    assert 1 <= a["trained_now"] <= 4  # 12 trials, but never one arch trained twice
    assert len(cache.read_text().splitlines()) == a["trained_now"]
    assert {r["seed"] for r in a["per_seed"]} == {0, 1} and a["ratio"] > 0

    cache.write_text(cache.read_text() + '{"setup": "torn')  # as if killed while writing
    subprocess.run([sys.executable, str(REPO / "benchmarks/sampler_quality.py"), *args, "--jobs", "2",
                    "--out", str(second)], cwd=REPO, check=True, capture_output=True, timeout=300)
    b = json.loads(second.read_text())
    assert b["trained_now"] == 0  # seeded samplers replay their choices on the cached values
    assert b["per_seed"] == a["per_seed"] and b["reference_point"] == a["reference_point"]

    # a study setting that does not change a measured value keeps the cache valid
    paused = study_file(tmp_path, "sq-paused", proxy={"epochs": 1}, latency={"pause_trials": False})
    assert sq.main(["--study", str(paused), *args[2:], "--out", str(second)]) == 0
    assert json.loads(second.read_text())["trained_now"] == 0

    other = sq.main(args + ["--epochs", "2", "--seeds", "0", "--out", str(first)])  # another budget: not reused
    assert other == 0 and json.loads(first.read_text())["trained_now"] >= 1
