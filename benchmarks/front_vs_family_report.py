"""The report step of benchmarks/front_vs_family.py: quiet latency, margins over each family, plot."""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import append_jsonl, read_jsonl
from benchmarks.front_vs_family import (
    LATENCY_SETTINGS,
    job_key,
    logged_front,
    logged_study,
    recipe,
)
from space.references import design_of


def runs_by_arch(log: list[dict[str, Any]], rec: dict[str, Any]) -> dict[str, list[dict]]:
    """The log's trainings of this recipe by arch id, one per seed (the last logged)."""
    by_arch: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in log:
        if r.get("kind") == "training" and r["key"] == job_key(r["arch_id"], r["seed"], rec):
            by_arch[r["arch_id"]][r["seed"]] = r
    return {arch_id: list(runs.values()) for arch_id, runs in by_arch.items()}


def trained_rows(
    log: list[dict[str, Any]], rec: dict[str, Any], which: int = -1
) -> list[dict[str, Any]]:
    """One row per trained arch of this recipe that is a family member or on the chosen logged
    study's front (`logged_front`): its roles, test mean and std over its seeds."""
    found = {f["arch_id"] for f in logged_front(log, which)}
    rows = []
    for arch_id, runs in runs_by_arch(log, rec).items():
        tests = [r["test"] for r in runs]
        vals = [r["val"] for r in runs if r.get("val") is not None]
        families = [r["role"].split(":", 1)[1] for r in runs if r["role"].startswith("family:")]
        if arch_id not in found and not families:
            continue  # another study's found arch
        arch = runs[0]["arch"]
        design = design_of(arch) if arch_id in found else None
        rows.append(
            {
                "arch_id": arch_id,
                "arch": arch,
                "source": _source(arch_id in found, bool(families)),
                "reference": f"{design}'s design" if design else "",
                "family": families[0] if families else "",
                "stacks": arch["stacks"],
                "width": arch["width"],
                "depth": arch["depth"],
                "test_mean": statistics.fmean(tests),
                "seeds": len(tests),
                "test_std": statistics.stdev(tests) if len(tests) > 1 else None,
                "val_mean": statistics.fmean(vals) if vals else None,
                "metric": runs[0]["metric_name"],
            }
        )
    return rows


def _source(found: bool, member: bool) -> str:
    """A found arch that is also a family member came from the warm start: "found+reference"."""
    if found:
        return "found+reference" if member else "found"
    return "family"


def report(args: argparse.Namespace) -> None:
    """Every trained arch of the chosen fronts and the families timed in one quiet pass, then per
    front its rows, margins and plot."""
    rec = recipe(args)
    log = read_jsonl(args.log)
    per_front = {k: trained_rows(log, rec, k) for k in args.front}
    archs = {r["arch_id"]: r["arch"] for rows in per_front.values() for r in rows}
    if not archs:
        print("nothing trained yet")
        return
    quiet = _quiet_pass(archs, args, rec)
    for k, rows in per_front.items():
        for r in rows:
            r["latency_ms"] = quiet[r["arch_id"]]
        study = logged_study(log, k)
        print(f"\n== front {k}: study {study.get('study')} logged {study.get('when')} ==")
        name = "front_vs_family.png" if len(per_front) == 1 else f"front_vs_family-{k}.png"
        _report_front(rows, args, Path(args.work) / name, study.get("study", args.study))
        _print_proxy_agreement(rows, study.get("front", []))


def _quiet_pass(archs: dict[str, dict], args: argparse.Namespace, rec: dict) -> dict[str, float]:
    """Quiet interleaved latency (ms) of every arch at the trained input size, logged."""
    from search.remeasure import quiet_latencies

    quiet = quiet_latencies(
        archs, LATENCY_SETTINGS, input_size=args.input_size, target=0.01, max_seconds=300
    )
    ms = {k: v["latency_quiet_ms"] for k, v in quiet.items()}
    append_jsonl(args.log, {"kind": "latency", "input_size": args.input_size, **rec, "quiet": ms})
    return ms


def _report_front(
    rows: list[dict[str, Any]], args: argparse.Namespace, path: Path, study: str
) -> None:
    from search.family import family_margins, summary_line
    from search.final_report import plot

    _print_rows(rows)
    seeds = min(r["seeds"] for r in rows)
    for name in args.family.split(","):
        if any(r["family"] == name for r in rows):
            margins = family_margins(rows, name)
            for m in margins:
                where = "outside" if m.margin is None else f"{m.margin:+.2f}"
                print(
                    f"  {m.arch_id} {m.latency_ms:7.2f} ms vs {name}: {where} "
                    f"(seed std {m.spread if m.spread is not None else float('nan'):.2f})"
                )
            print(summary_line(name, margins, seeds))
            _print_without_references(rows, margins, name, seeds)
    path.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, path, f"{study} front vs hand families: {args.epochs} epochs, {seeds}+ seeds")
    print(f"plot: {path}")


def _print_without_references(
    rows: list[dict[str, Any]], margins: list, family: str, seeds: int
) -> None:
    """The summary again without the found archs that are family members (the warm start's), then
    without any arch that makes a reference's design choices at whatever size (the search picked
    its size only)."""
    from search.family import summary_line

    members = {r["arch_id"] for r in rows if r["source"] == "found+reference"}
    designs = members | {r["arch_id"] for r in rows if r["source"] == "found" and r["reference"]}
    if members:
        only = [m for m in margins if m.arch_id not in members]
        print("  without the warm start's reference designs: " + summary_line(family, only, seeds))
    if designs != members:
        only = [m for m in margins if m.arch_id not in designs]
        print("  without any reference design, at any size: " + summary_line(family, only, seeds))


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'arch_id':13} {'source':15} {'family':7} {'shape':8} {'ms':>7} {'test':>7} {'std':>6} "
        "seeds design"
    )
    for r in sorted(rows, key=lambda r: r["latency_ms"]):
        std = "" if r["test_std"] is None else f"{100 * r['test_std']:.2f}"
        print(
            f"{r['arch_id']:13} {r['source']:15} {r['family']:7} "
            f"{r['stacks']}x{r['width']}d{r['depth']:<3} {r['latency_ms']:7.2f} "
            f"{100 * r['test_mean']:7.2f} {std:>6} {r['seeds']:5} {r['reference']}"
        )


NEAR_LATENCY = 1.25  # pairs within this latency ratio compete for the same place on a front


def pair_tau(
    points: list[tuple[float, float, float]], ratio: float | None = None
) -> tuple[float | None, int]:
    """Kendall's tau of (latency, proxy, full) points' proxy against full score, over the pairs whose
    latencies are within `ratio` of each other (all pairs with None): (concordant - discordant) /
    (concordant + discordant), tied pairs left out, so it equals scipy's tau-b when nothing ties
    (scipy.stats.kendalltau has no way to count only some pairs). Returns (tau, pairs counted);
    tau is None with no pair."""
    agree = disagree = 0
    for (lat1, p1, f1), (lat2, p2, f2) in itertools.combinations(points, 2):
        if ratio is not None and max(lat1, lat2) > ratio * min(lat1, lat2):
            continue
        sign = (p1 - p2) * (f1 - f2)
        agree += sign > 0
        disagree += sign < 0
    pairs = agree + disagree
    return ((agree - disagree) / pairs if pairs else None), pairs


def _print_proxy_agreement(rows: list[dict[str, Any]], front: list[dict[str, Any]]) -> None:
    """How well the study's proxy ordered its own front: its proxy PCK against the full training's
    validation PCK (never test), over all pairs and over pairs of near latency (the order that
    decides which of two similar-latency archs stays on the front)."""
    proxy = {f["arch_id"]: f["pck"] for f in front if f.get("pck") is not None}
    points = [
        (r["latency_ms"], proxy[r["arch_id"]], r["val_mean"])
        for r in rows
        if r["arch_id"] in proxy and r.get("val_mean") is not None
    ]
    parts = []
    for label, ratio in (
        ("all pairs", None),
        (f"pairs within {NEAR_LATENCY}x latency", NEAR_LATENCY),
    ):
        tau, pairs = pair_tau(points, ratio)
        parts.append(f"{label} {'n/a' if tau is None else f'{tau:+.2f}'} ({pairs})")
    print(f"  proxy vs {len(points)} full trainings' val PCK, Kendall tau: " + ", ".join(parts))
