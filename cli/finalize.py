"""`launch.py finalize --study NAME [--top K] [--epochs E] [--input-size S] [--data D] [--seeds N]
[--references paper,newell|none] [--resume]`: full training of the study's front and the reference
designs, scored on the test split (search/finalize.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cli.flags import add_study_args
from space.errors import ConfigError

if TYPE_CHECKING:
    from search import finalize as fin
    from search.config import StudyConfig
    from search.export import StudyLocation

NAME = "finalize"
HELP = "retrain the exported front and the reference designs; score on test"
NEEDS_STUDY = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Its own flags; --address and --verbose (for Ray) are the top-level ones (cli/study.py)."""
    add_study_args(parser, argparse.SUPPRESS)
    parser.add_argument("--top", type=int, help="only the first K exported architectures")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--input-size", type=int, help="training resolution (default: each arch's)")
    parser.add_argument("--data", help="dataset (default: the study's data.source)")
    parser.add_argument("--seeds", type=int, default=1, help="runs per architecture, seeds 0..N-1")
    parser.add_argument("--references", default="paper,newell", help="paper,newell or none")
    parser.add_argument(
        "--family",
        default="none",
        help="paper,newell or none: also train each design at a ladder of widths "
        "and report each found arch's margin over that family's curve",
    )
    parser.add_argument(
        "--family-widths",
        default="16,24,32,40,48,64,96",  # search.family.LADDER_WIDTHS
        help="the family's widths (plus a deeper and a 2-stack member)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted finalize")


def _config(args: argparse.Namespace) -> StudyConfig:
    """The study's config (resources, latency, data): its file, else the one the runner stored."""
    from search.config import StudyConfig
    from search.export import find_study_file

    file = find_study_file(args.study)
    if file is not None:
        return StudyConfig.load(str(file)).with_overrides(storage=args.storage, out=args.out)
    raise ConfigError(
        "finalize needs the study's file (studies/NAME.yaml or a path) for its data, "
        "resources and latency settings",
        source="<arg>",
        field="--study",
    )


def _check_data(data: str, size: int | None, sizes: set[int]) -> tuple[str, str]:
    """The selection splits; every split loaded once here, the test split first (a bad dataset
    fails before anything is written, and the workers find the prepared sets in the cache)."""
    from trainers.data import load_poses, selection_splits

    def load(split: str) -> None:
        for px in [size] if size else sorted(sizes):
            try:
                load_poses(data, split, px)
            except ConfigError as err:
                raise ConfigError(
                    f"{split} split: {err.message}", source=data, field="--data"
                ) from None

    load("test")
    splits = selection_splits(data)
    for split in splits:
        load(split)
    return splits


def _plan(
    args: argparse.Namespace, cfg: StudyConfig, loc: StudyLocation
) -> tuple[list[fin.Candidate], list[fin.Run], fin.RunJob, Path]:
    """(candidates, their runs, the job each run does, the final/ folder), every input checked."""
    from search import finalize as fin
    from trainers.data import absolute_data

    fin.check_counts(args.epochs, args.seeds, args.top)
    references = fin.parse_references(args.references)
    families = fin.parse_references(args.family, "--family")
    candidates = fin.with_references(fin.found_candidates(loc, args.top), references)
    candidates = fin.with_families(candidates, families, fin.parse_widths(args.family_widths))
    data = absolute_data(args.data or cfg.data.source)
    splits = _check_data(data, args.input_size, {c.arch["input_size"] for c in candidates})
    final_dir = loc.run_dir / fin.FINAL_DIR
    fin.check_fresh(final_dir, args.resume)
    r = cfg.resources
    job = fin.RunJob(
        data,
        args.epochs,
        args.input_size,
        splits,
        max(1, int(r.cpus_per_trial)),
        "cuda" if r.gpus_per_trial else "cpu",
    )
    return candidates, fin.plan_runs(candidates, args.seeds, final_dir), job, final_dir


def _family_lines(rows: list[dict], seeds: int) -> list[str]:
    """Per family: each found arch's margin over its curve, then the summary line."""
    from search.family import family_margins, summary_line

    lines = []
    for name in dict.fromkeys(r["family"] for r in rows if r.get("family")):
        margins = family_margins(rows, name)
        for m in margins:
            where = "outside its latency range" if m.margin is None else f"{m.margin:+.2f} PCK"
            spread = "" if m.spread is None else f" (seed std {m.spread:.2f})"
            lines.append(f"  {m.arch_id} at {m.latency_ms:.3g} ms vs {name}: {where}{spread}")
        lines.append(summary_line(name, margins, seeds))
    return lines


def main(args: argparse.Namespace) -> int:
    from search import final_report as rep
    from search import finalize as fin
    from search.export import locate_study, mask_url
    from search.progress import dur
    from trainers.outputs import check_output_dir, writing

    cfg = _config(args)
    loc = locate_study(args.study, storage=args.storage, out=args.out)
    check_output_dir(loc.run_dir / fin.FINAL_DIR)
    candidates, runs, job, final_dir = _plan(args, cfg, loc)
    done = sum(r.done for r in runs)
    print(
        f"finalize {loc.name}: {len(candidates)} architectures x {args.seeds} seed(s) = "
        f"{len(runs)} runs ({done} finished earlier), {args.epochs} epochs on {job.data}; "
        f"selection on {job.splits[1]}, score on test (flip)"
    )
    start = time.time()
    with writing(final_dir, hint="; finished runs stay: free space, then --resume"):
        rows, paths, stored, indexed = _run(args, cfg, loc, candidates, runs, job, final_dir)
    print(f"done in {dur(time.time() - start)}")
    print(rep.markdown_table(rows), end="")
    for line in rep.dominance_lines(rows) + _family_lines(rows, args.seeds):
        print(line)
    for path in paths:
        print(f"  {path}")
    print(
        f"storage {mask_url(loc.storage)}: "
        f"{'final attrs added' if stored else 'not written (no study)'}; "
        f"export index: {'final columns added' if indexed else 'no export'}"
    )
    return 0


def _run(
    args: argparse.Namespace,
    cfg: StudyConfig,
    loc: StudyLocation,
    candidates: list[fin.Candidate],
    runs: list[fin.Run],
    job: fin.RunJob,
    final_dir: Path,
) -> tuple[list[dict], list[Path], bool, bool]:
    """Train what is not finished, measure, and write: (rows, files, stored, export indexed)."""
    from search import final_report as rep
    from search import finalize as fin
    from search.export import add_index_columns

    final_dir.mkdir(parents=True, exist_ok=True)
    r = cfg.resources
    if any(not run.done for run in runs):
        from search.cluster import ray_up

        ray_up(args.address, args.verbose)
    fin.run_tune(
        runs, job, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial}, cfg.concurrency, final_dir
    )
    profiles = fin.measure(candidates, args.input_size, cfg.latency.to_dict())
    rows = rep.collect_rows(candidates, runs, profiles)
    paths = rep.write_outputs(rows, final_dir, loc.name)
    stored = rep.store_results(loc, rows)
    indexed = add_index_columns(
        loc.export_dir, {row["arch_id"]: rep.final_attrs(row) for row in rows}
    )
    return rows, paths, stored, indexed
