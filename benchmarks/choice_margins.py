"""Which design choices full training put above or under a hand family's curve, on validation images.

It reads benchmarks/logs/front_vs_family.jsonl and nothing else: no training, no timing. For every
trained arch of the recipe that is not the family's own, it takes its validation PCK (mean over seeds)
minus the family's validation curve at its quiet latency. Both come from the newest logged quiet pass
that timed the arch beside the family, as latencies are comparable only within one pass. Then, for
each choice that differs from the family's design, it prints the margins of the archs that make it.

    python benchmarks/choice_margins.py --family paper

This is the evidence studies/softgate-focused.yaml's space was pruned with. It uses validation images
only, never test ones. An arch usually differs in more than one choice, so a choice's margins are
those of the archs that make it, not its effect alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import front_vs_family as fvf  # noqa: E402
from benchmarks.common import read_jsonl  # noqa: E402


def val_margins(log: list[dict], rec: dict[str, Any], family: str) -> dict[str, dict[str, Any]]:
    """Per arch outside the family: its arch, seeds, val mean (%) and margin over the family's val
    curve (None outside its latency range), from the newest quiet pass that timed it with the family."""
    from benchmarks.front_vs_family_report import runs_by_arch
    from search.family import FamilyCurve, margin

    runs = runs_by_arch(log, rec)
    members = {a for a, rs in runs.items() if any(r["role"] == f"family:{family}" for r in rs)}
    val = {a: 100 * statistics.fmean(r["val"] for r in rs) for a, rs in runs.items()}
    out: dict[str, dict[str, Any]] = {}
    for entry in log:
        if entry.get("kind") != "latency" or any(entry.get(k) != v for k, v in rec.items()):
            continue
        quiet = entry["quiet"]
        timed = [a for a in members if a in quiet]
        if len(timed) < 2:
            continue
        curve = FamilyCurve.from_points([(quiet[a], val[a]) for a in timed])
        for a in quiet:
            if a in runs and a not in members:
                out[a] = {
                    "arch": runs[a][0]["arch"],
                    "seeds": len(runs[a]),
                    "ms": quiet[a],
                    "val": val[a],
                    "margin": margin(curve, quiet[a], val[a]),
                }
    return out


def base_shape(log: list[dict], family: str) -> dict[str, int]:
    """The family ladder's base stacks and depth: the smallest its trained members have."""
    archs = [r["arch"] for r in log if r.get("role") == f"family:{family}"]
    if not archs:
        raise SystemExit(f"--family {family}: no trained member in the log")
    return {k: min(a[k] for a in archs) for k in ("stacks", "depth")}


def differences(arch: dict[str, Any], family: str, base: dict[str, int]) -> list[str]:
    """`key=value` for each design choice where `arch` is not the family's design, and for stacks
    and depth where it is not at the family's base shape."""
    from space.references import DESIGN_KEYS, project_reference

    design = project_reference(arch, family)
    said = [f"{k}={arch[k]}" for k in ("stacks", "depth") if arch[k] != base[k]]
    for key in DESIGN_KEYS:
        value = arch.get(key)
        # None: a choice another one rules out (a bottleneck block has no branch split), said there
        if value is not None and value != design.get(key):
            said.append(f"{key}={','.join(value) if isinstance(value, list) else value}")
    return said


def by_choice(rows: dict[str, dict], family: str, base: dict[str, int]) -> dict[str, list]:
    """Each differing choice -> the margins (None: outside the range) of the archs that make it."""
    out: dict[str, list] = defaultdict(list)
    for row in rows.values():
        for choice in differences(row["arch"], family, base):
            out[choice].append(row["margin"])
    return dict(sorted(out.items()))


def _fmt(m: float | None) -> str:
    return "outside" if m is None else f"{m:+.2f}"


def report(args: argparse.Namespace) -> None:
    rec = fvf.recipe(args)
    log = read_jsonl(args.log)
    rows = val_margins(log, rec, args.family)
    base = base_shape(log, args.family)
    print(f"val PCK margin over the {args.family} family's val curve, per arch (quiet ms):")
    for aid, r in sorted(rows.items(), key=lambda kv: kv[1]["ms"]):
        said = ", ".join(differences(r["arch"], args.family, base)) or "the design itself"
        print(f"  {aid} 1x{r['arch']['width']:<3} {r['ms']:5.2f} ms  val {r['val']:5.2f}  "
              f"{_fmt(r['margin']):>7}  {r['seeds']} seeds  {said}")  # fmt: skip
    print("per choice (margins of the archs that make it):")
    for choice, margins in by_choice(rows, args.family, base).items():
        inside = [m for m in margins if m is not None]
        med = f"median {statistics.median(inside):+.2f}" if inside else "no arch inside"
        print(f"  {choice:32s} {med:14s} {' '.join(_fmt(m) for m in margins)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="paper")
    fvf.add_recipe_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    report(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
