"""benchmarks/front_vs_family.py: a study already run is logged as the study step's front."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import TINY, load_benchmark

fvf = load_benchmark("front_vs_family")


def test_the_export_of_a_study_already_run_is_logged(tmp_path) -> None:
    from space.spec import ArchSpec

    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    (export / "index.csv").write_text("rank,file\n1,01-a.yaml\n")
    metrics = {"pck": 0.3, "latency_ms": 4.0, "latency_quiet_ms": 4.4, "params": 1000}
    (export / "01-a.yaml").write_text(yaml.safe_dump({"arch": TINY, "metrics": metrics}))
    log = tmp_path / "log.jsonl"
    assert fvf.main(["study", "--run", str(tmp_path / "run"), "--log", str(log)]) == 0
    (row,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert row["kind"] == "study" and row["run"] == str(tmp_path / "run")
    assert row["front"] == [{"arch": TINY, "arch_id": ArchSpec.from_dict(TINY).arch_id, **metrics}]


def test_a_run_folder_without_an_export_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit, match="no export/index.csv"):
        fvf.main(["study", "--run", str(tmp_path), "--log", str(tmp_path / "log.jsonl")])
    assert not (tmp_path / "log.jsonl").exists()
