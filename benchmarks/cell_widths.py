"""Does one found cell beat a hand-designed family at every width? (a probe beside front_vs_family.py)

A found arch's margin over the family curve mixes two things: how good its cell is, and where its
width put it on the curve. This trains the cell of an arch in the front_vs_family log at other widths,
with that benchmark's recipe and log (role `probe:<arch_id>`; a study that later exports one of them
reuses the training), then times them and the family's members in one quiet interleaved pass and
prints each width's margin over the family curve, on validation and on test.

    python benchmarks/cell_widths.py train --arch 10491ec9b36e --widths 16,24,32,64,96 --seeds 1
    python benchmarks/cell_widths.py report --arch 10491ec9b36e --family paper

It answers what a search could land on (the search decides nothing here): run it alone, as the
report's latency pass needs the machine quiet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import front_vs_family as fvf  # noqa: E402
from benchmarks.common import read_jsonl  # noqa: E402


def cell_jobs(log: list[dict], arch_id: str, widths: list[int], seeds: int) -> list[dict]:
    """The logged arch `arch_id` at each of `widths`, every seed (an invalid width is left out)."""
    from space.errors import ConfigError
    from space.spec import ArchSpec

    base = next((r["arch"] for r in log if r.get("arch_id") == arch_id), None)
    if base is None:
        raise SystemExit(f"--arch {arch_id}: no training of it in the log")
    jobs = []
    for w in widths:
        arch = {**base, "width": w}
        try:
            new_id = ArchSpec.from_dict(arch).arch_id
        except ConfigError:  # a width the split does not divide
            continue
        jobs += [
            {"role": f"probe:{arch_id}", "arch": arch, "seed": s, "arch_id": new_id}
            for s in range(seeds)
        ]
    return jobs


def train(args: argparse.Namespace) -> None:
    fvf.run_trainings(args, cell_jobs(read_jsonl(args.log), args.arch, args.widths, args.seeds))


def cell_rows(log: list[dict], rec: dict, arch_id: str, family: str) -> list[dict[str, Any]]:
    """Per arch of this recipe: the family's members (`family` set) and the cell's widths (`arch_id`
    itself and its `probe:<arch_id>` trainings), with val and test means in percent."""
    from benchmarks.front_vs_family_report import runs_by_arch

    rows = []
    for aid, rs in runs_by_arch(log, rec).items():
        member = any(r["role"] == f"family:{family}" for r in rs)
        cell = aid == arch_id or any(r["role"] == f"probe:{arch_id}" for r in rs)
        if member or cell:
            rows.append(
                {
                    "arch_id": aid,
                    "arch": rs[0]["arch"],
                    "family": family if member else "",
                    "seeds": len(rs),
                    "val": 100 * statistics.fmean(r["val"] for r in rs),
                    "test": 100 * statistics.fmean(r["test"] for r in rs),
                }
            )
    return rows


def report(args: argparse.Namespace) -> None:
    from benchmarks.front_vs_family_report import _quiet_pass
    from search.family import FamilyCurve, margin

    rec = fvf.recipe(args)
    rows = cell_rows(read_jsonl(args.log), rec, args.arch, args.family)
    quiet = _quiet_pass({r["arch_id"]: r["arch"] for r in rows}, args, rec)
    members = [r for r in rows if r["family"]]
    curves = {
        k: FamilyCurve.from_points([(quiet[r["arch_id"]], r[k]) for r in members])
        for k in ("val", "test")
    }
    print(f"cell of {args.arch} against the {args.family} family (PCK points, quiet ms):")
    for r in sorted((r for r in rows if not r["family"]), key=lambda r: r["arch"]["width"]):
        ms = quiet[r["arch_id"]]
        m = {k: margin(curves[k], ms, r[k]) for k in curves}
        said = "  ".join(
            f"{k} {r[k]:.2f} ({'outside' if m[k] is None else f'{m[k]:+.2f}'})" for k in m
        )
        print(
            f"  1x{r['arch']['width']:<3} {r['arch_id']} {ms:5.2f} ms  {said}  {r['seeds']} seeds"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["train", "report"])
    p.add_argument("--arch", required=True, help="an arch id with a training in the log")
    p.add_argument(
        "--widths", type=lambda t: [int(w) for w in t.split(",")], default=[16, 24, 32, 64, 96]
    )
    p.add_argument("--family", default="paper")
    p.add_argument("--seeds", type=int, default=1)
    fvf.add_recipe_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    (train if args.step == "train" else report)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
