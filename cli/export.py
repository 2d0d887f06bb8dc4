"""`launch.py export --study NAME [--out RUN_DIR] [--storage URL] [--force]`: Pareto-optimal archs
as YAML."""

from __future__ import annotations

import argparse

from cli.flags import add_study_args

NAME = "export"
HELP = "write the Pareto-optimal architectures as YAML"
NEEDS_STUDY = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_args(parser, argparse.SUPPRESS)
    parser.add_argument("--force", action="store_true", help="replace an existing export")
    parser.add_argument(
        "--no-remeasure",
        action="store_true",
        help="keep the in-study latencies (default: time the front and its noise "
        "band again, quietly and interleaved, and decide the front by that)",
    )


def main(args: argparse.Namespace) -> int:
    from search.export import export_study, locate_study, mask_url
    from trainers.outputs import check_output_dir, writing

    loc = locate_study(args.study, storage=args.storage, out=args.out)
    out_dir = check_output_dir(loc.export_dir, source=loc.source, field="export.dir")
    with writing(out_dir):
        files = export_study(
            loc.storage, loc.name, out_dir, force=args.force, remeasure=not args.no_remeasure
        )
    print(f"study {loc.name} ({mask_url(loc.storage)}): {len(files)} Pareto-optimal architectures")
    for path in files:
        print(f"  {path}")
    print(f"index: {out_dir / 'index.csv'}")
    return 0
