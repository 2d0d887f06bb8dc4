"""benchmarks/front_latency.py resumes from its log of finished passes."""

from __future__ import annotations

import json

from helpers import load_benchmark

fl = load_benchmark("front_latency")


def test_finished_passes_of_the_same_job_are_taken_from_the_log(tmp_path) -> None:
    job = {"archs": {"a": {}}, "latency": fl.LATENCY, "reference": "a", "target": 0.01}
    other = {**job, "target": 0.02}
    log = tmp_path / "passes.jsonl"
    rows = [
        {"job": json.dumps(job, sort_keys=True), "pass": {"seconds": 1.0, "quiet": {}}},
        {"job": json.dumps(other, sort_keys=True), "pass": {"seconds": 9.0, "quiet": {}}},
        {"job": json.dumps(job, sort_keys=True), "pass": {"seconds": 2.0, "quiet": {}}},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    passes = fl.run_passes(job, 2, log)  # both there: nothing is measured
    assert [p["seconds"] for p in passes] == [1.0, 2.0]
    assert len(log.read_text().splitlines()) == 3
