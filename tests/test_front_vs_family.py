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


def test_a_found_arch_that_is_a_family_member_is_marked_as_the_warm_starts() -> None:
    from benchmarks.front_vs_family_report import trained_rows

    rec = {"data": "lspet", "epochs": 12}

    def training(arch_id: str, role: str, test: float) -> dict:
        key = fvf.job_key(arch_id, 0, rec)
        arch = {"stacks": 1, "width": 32, "depth": 3}
        return {"kind": "training", "key": key, "arch_id": arch_id, "seed": 0, "role": role,
                "arch": arch, "test": test, "metric_name": "pck@0.2"}  # fmt: skip

    log = [
        {"kind": "study", "front": [{"arch_id": "paper32"}, {"arch_id": "new"}]},
        training("paper32", "family:paper", 0.18),
        training("paper64", "family:paper", 0.25),
        training("new", "found", 0.2),
    ]
    source = {r["arch_id"]: r["source"] for r in trained_rows(log, rec)}
    assert source == {"paper32": "found+reference", "paper64": "family", "new": "found"}


def test_front_picks_which_logged_study_is_found_and_drops_the_others_archs() -> None:
    from benchmarks.front_vs_family_report import trained_rows

    rec = {"data": "lspet", "epochs": 12}

    def training(arch_id: str, role: str) -> dict:
        return {"kind": "training", "key": fvf.job_key(arch_id, 0, rec), "arch_id": arch_id,
                "seed": 0, "role": role, "arch": {"stacks": 1, "width": 32, "depth": 3},
                "test": 0.2, "metric_name": "pck@0.2"}  # fmt: skip

    log = [
        {"kind": "study", "front": [{"arch_id": "old", "arch": {}, "latency_ms": 1.0}]},
        {"kind": "study", "front": [{"arch_id": "new", "arch": {}, "latency_ms": 1.0}]},
        training("paper32", "family:paper"),
        training("old", "found"),
        training("new", "found"),
    ]
    first = {r["arch_id"]: r["source"] for r in trained_rows(log, rec, 0)}
    assert first == {"paper32": "family", "old": "found"}
    assert {r["arch_id"] for r in trained_rows(log, rec)} == {"paper32", "new"}
    assert [j["arch_id"] for j in fvf.found_jobs(log, 8, 1, 0)] == ["old"]
    with pytest.raises(SystemExit, match="--front 2: the log holds 2 studies"):
        fvf.logged_front(log, 2)


def test_design_of_names_a_reference_design_at_any_size_and_nothing_else() -> None:
    from space.references import design_of, project_reference

    paper_2x48 = project_reference({"stacks": 2, "width": 48, "depth": 3}, "paper")
    assert design_of(paper_2x48) == "paper"
    assert (
        design_of(project_reference({"stacks": 1, "width": 24, "depth": 3}, "newell")) == "newell"
    )
    assert design_of(paper_2x48 | {"fusion": "add"}) is None


def test_the_summary_is_repeated_without_reference_designs_at_any_size(capsys) -> None:
    from benchmarks.front_vs_family_report import _print_without_references
    from search.family import Margin

    rows = [
        {"arch_id": "member", "source": "found+reference", "reference": "paper's design"},
        {"arch_id": "paper2x48", "source": "found", "reference": "paper's design"},
        {"arch_id": "new", "source": "found", "reference": ""},
    ]
    margins = [Margin("member", 1.0, 0.0, None), Margin("paper2x48", 2.0, 1.0, None),
               Margin("new", 3.0, -0.5, None)]  # fmt: skip
    _print_without_references(rows, margins, "paper", 1)
    lines = capsys.readouterr().out.splitlines()
    assert "median +0.25, best +1.00 PCK over 2 found archs" in lines[0]
    assert (
        "at any size" in lines[1] and "median -0.50, best -0.50 PCK over 1 found archs" in lines[1]
    )


def test_report_times_every_front_in_one_pass_and_prints_each_ones_margins(
    tmp_path, monkeypatch, capsys
) -> None:
    import search.remeasure
    from space.references import project_reference
    from space.spec import ArchSpec

    args = fvf.parse_args(["report", "--data", "synthetic", "--family", "paper"])
    rec = fvf.recipe(args)
    shape = {"stacks": 1, "depth": 3, "joints": 14, "input_size": 64}
    paper = {w: project_reference(shape | {"width": w}, "paper") for w in (16, 32)}
    other = paper[16] | {"fusion": "add"}
    ids = {name: ArchSpec.from_dict(a).arch_id for name, a in
           {"p16": paper[16], "p32": paper[32], "other": other}.items()}  # fmt: skip

    def training(name: str, arch: dict, role: str, test: float) -> dict:
        return {"kind": "training", "key": fvf.job_key(ids[name], 0, rec), "arch_id": ids[name],
                "seed": 0, "role": role, "arch": arch, "test": test, "metric_name": "pck@0.2"}  # fmt: skip

    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"kind": "study", "study": "old", "front": [{"arch_id": ids["p32"]}]},
                {"kind": "study", "study": "new", "front": [{"arch_id": ids["other"]}]},
                training("p16", paper[16], "family:paper", 0.10),
                training("p32", paper[32], "family:paper", 0.20),
                training("other", other, "found", 0.16),
            ]
        )
    )
    calls = []

    def fake_quiet(archs, *a, **k):
        calls.append(set(archs))
        ms = {ids["p16"]: 1.0, ids["p32"]: 4.0, ids["other"]: 2.0}
        return {i: {"latency_quiet_ms": ms[i]} for i in archs}

    monkeypatch.setattr(search.remeasure, "quiet_latencies", fake_quiet)
    argv = ["report", "--data", "synthetic", "--family", "paper", "--front", "0,1"]
    fvf.main(argv + ["--log", str(log), "--work", str(tmp_path)])
    out = capsys.readouterr().out
    assert calls == [set(ids.values())]  # one pass over both fronts' archs and the family
    assert "front 0: study old" in out and "front 1: study new" in out
    # the curve at 2 ms is halfway (in log latency) between 10 % and 20 %: 15 %, so +1.00
    assert "median +1.00, best +1.00 PCK over 1 found archs" in out
    assert (tmp_path / "front_vs_family-0.png").is_file()
    assert (tmp_path / "front_vs_family-1.png").is_file()


def test_only_trains_the_named_archs(tmp_path, monkeypatch) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"kind": "study", "front": [
        {"arch_id": "a", "arch": {"stacks": 1, "width": 16, "depth": 3}, "latency_ms": 1.0},
        {"arch_id": "b", "arch": {"stacks": 1, "width": 32, "depth": 3}, "latency_ms": 2.0},
    ]}) + "\n")  # fmt: skip
    submitted = []

    class Pool:
        def __init__(self, jobs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, job):
            submitted.append(job["arch_id"])
            raise SystemExit("stop")

    monkeypatch.setattr(fvf, "worker_pool", Pool)
    with pytest.raises(SystemExit, match="stop"):
        fvf.main(["train", "--data", "synthetic", "--only", "b", "--log", str(log),
                  "--work", str(tmp_path)])  # fmt: skip
    assert submitted == ["b"]


def test_pair_tau_counts_only_pairs_of_near_latency() -> None:
    from benchmarks.front_vs_family_report import pair_tau

    # (latency, proxy, full): the two fast archs are ordered wrongly by the proxy, the slow one is
    # far from both and agrees with them on the full scale
    points = [(1.0, 0.20, 0.10), (1.1, 0.10, 0.12), (5.0, 0.30, 0.40)]
    assert pair_tau(points) == (pytest.approx(1 / 3), 3)
    assert pair_tau(points, 1.25) == (-1.0, 1)
    assert pair_tau(points[:1] + points[2:], 1.25) == (None, 0)
    assert pair_tau([(1.0, 0.2, 0.1), (1.0, 0.2, 0.3)]) == (None, 0)  # a proxy tie says nothing


def test_finalize_default_family_widths_are_the_ladder() -> None:
    import argparse

    from cli.finalize import add_arguments
    from search.family import LADDER_WIDTHS
    from search.finalize import parse_widths

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = parser.get_default("family_widths")
    assert tuple(parse_widths(default)) == LADDER_WIDTHS
