"""benchmarks/cell_widths.py: one found cell trained at other widths, against a family's curve."""

from __future__ import annotations

import json

import pytest
from helpers import load_benchmark, logged_training, paper_arch

cw = load_benchmark("cell_widths")
fvf = load_benchmark("front_vs_family")


def test_the_cell_goes_to_every_width_its_split_divides_with_every_seed() -> None:
    from space.spec import ArchSpec

    cell = paper_arch(32) | {"branch_split": ["1/4", "1/4", "1/4", "1/4"]}
    found = ArchSpec.from_dict(cell).arch_id
    log = [{"kind": "training", "arch_id": found, "arch": cell}]
    jobs = cw.cell_jobs(log, found, [16, 18, 64], seeds=2)
    assert [(j["arch"]["width"], j["seed"]) for j in jobs] == [(16, 0), (16, 1), (64, 0), (64, 1)]
    assert {j["role"] for j in jobs} == {f"probe:{found}"}
    assert all(j["arch"] | {"width": 32} == cell for j in jobs)
    with pytest.raises(SystemExit, match="no training of it"):
        cw.cell_jobs(log, "nope", [16], 1)


def test_report_prints_each_widths_margin_on_val_and_test(tmp_path, monkeypatch, capsys) -> None:
    import search.remeasure
    from space.spec import ArchSpec

    args = cw.parse_args(["report", "--arch", "x", "--data", "synthetic"])
    rec = fvf.recipe(args)
    cell = paper_arch(16) | {"branch_split": ["1/2", "1/2"]}
    found = ArchSpec.from_dict(cell).arch_id
    rows = [
        logged_training(paper_arch(16), "family:paper", rec, 0.10, 0.10),
        logged_training(paper_arch(32), "family:paper", rec, 0.20, 0.20),
        logged_training(cell, "found", rec, 0.14, 0.15),
        logged_training(cell, "found", rec, 0.16, 0.17, seed=1),
        logged_training(cell | {"width": 32}, f"probe:{found}", rec, 0.21, 0.19),
        logged_training(cell | {"fusion": "add"}, "found", rec, 0.5, 0.5),  # another arch: left out
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ms = {r["arch_id"]: 1.0 if r["arch"]["width"] == 16 else 4.0 for r in rows}
    ms[found] = 2.0  # halfway in log latency between the members: the curve is at 15 %

    def fake_quiet(archs, *a, **k):
        assert set(archs) == {r["arch_id"] for r in rows[:-1]}
        return {i: {"latency_quiet_ms": ms[i]} for i in archs}

    monkeypatch.setattr(search.remeasure, "quiet_latencies", fake_quiet)
    cw.main(["report", "--arch", found, "--data", "synthetic", "--log", str(log)])
    out = capsys.readouterr().out
    assert f"1x16  {found}  2.00 ms  val 15.00 (+0.00)  test 16.00 (+1.00)  2 seeds" in out
    assert "val 21.00 (+1.00)  test 19.00 (-1.00)  1 seeds" in out
