"""benchmarks/choice_margins.py: each logged arch's val margin over a family, and the choices it makes."""

from __future__ import annotations

import json

from helpers import load_benchmark, logged_training, paper_arch

cm = load_benchmark("choice_margins")
fvf = load_benchmark("front_vs_family")


def test_margins_come_from_the_newest_pass_that_timed_the_arch_with_the_family() -> None:
    rec = fvf.recipe(cm.parse_args(["--data", "synthetic"]))
    small, big = paper_arch(16), paper_arch(32)
    add, gated = small | {"fusion": "add"}, small | {"fusion": "gated_add"}
    rows = [logged_training(a, r, rec, v) for a, r, v in [(small, "family:paper", 0.10),
            (big, "family:paper", 0.20), (add, "found", 0.14), (gated, "found", 0.30)]]  # fmt: skip
    rows.append(logged_training(add, "found", rec, 0.16, seed=1))
    ids = [r["arch_id"] for r in rows]
    passes = [
        {ids[0]: 1.0, ids[1]: 4.0, ids[2]: 2.0, ids[3]: 2.0},  # curve at 2 ms: 15 %
        {ids[0]: 1.0, ids[1]: 2.0, ids[2]: 2.0},  # newer, the family faster: 20 % at 2 ms
    ]
    log = rows + [{"kind": "latency", **rec, "quiet": q} for q in passes]
    other_recipe = {"kind": "latency", **rec, "input_size": 128, "quiet": {ids[2]: 9.0}}
    log.append(other_recipe)
    out = cm.val_margins(log, rec, "paper")
    assert set(out) == {ids[2], ids[3]}
    assert out[ids[2]]["seeds"] == 2 and out[ids[2]]["ms"] == 2.0
    assert round(out[ids[2]]["margin"], 6) == -5.0  # 15 % against the newer pass's 20 %
    assert round(out[ids[3]]["margin"], 6) == 15.0  # timed only in the older pass


def test_a_choice_is_said_once_where_another_rules_it_out() -> None:
    from space.references import project_reference

    base = {"stacks": 1, "depth": 3}
    newell = project_reference(paper_arch(32, stacks=2), "newell")
    assert cm.differences(newell, "paper", base) == [
        "stacks=2", "block=bottleneck", "gate=identity", "fusion=add", "skip=block"
    ]  # fmt: skip
    half = paper_arch(32) | {"branch_split": ["1/2", "1/2"]}
    assert cm.differences(half, "paper", base) == ["branch_split=1/2,1/2"]
    assert cm.differences(paper_arch(48), "paper", base) == []
    rows = {"a": {"arch": half, "margin": 2.0}, "b": {"arch": newell, "margin": None}}
    assert cm.by_choice(rows, "paper", base)["fusion=add"] == [None]
    assert cm.by_choice(rows, "paper", base)["branch_split=1/2,1/2"] == [2.0]


def test_report_prints_each_arch_and_each_choice(tmp_path, capsys) -> None:
    rec = fvf.recipe(cm.parse_args(["--data", "synthetic"]))
    half = paper_arch(16) | {"branch_split": ["1/2", "1/2"]}
    rows = [
        logged_training(paper_arch(16), "family:paper", rec, 0.10),
        logged_training(paper_arch(32), "family:paper", rec, 0.20),
        logged_training(half, "found", rec, 0.18),
    ]
    quiet = {rows[0]["arch_id"]: 1.0, rows[1]["arch_id"]: 4.0, rows[2]["arch_id"]: 2.0}
    log = tmp_path / "log.jsonl"
    entries = rows + [{"kind": "latency", **rec, "quiet": quiet}]
    log.write_text("".join(json.dumps(r) + "\n" for r in entries))
    cm.main(["--data", "synthetic", "--log", str(log)])
    out = capsys.readouterr().out
    assert "val 18.00    +3.00  1 seeds  branch_split=1/2,1/2" in out
    assert "branch_split=1/2,1/2" in out.split("per choice")[1]
    assert "median +3.00" in out
