"""`launch.py dashboard --study NAME [--port P] [--host 127.0.0.1] [--artifact-dir DIR]`:
optuna-dashboard on the study's storage, with the trials' artifacts (search/artifacts.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.flags import add_study_args

NAME = "dashboard"
HELP = "optuna-dashboard on the study's storage"
NEEDS_STUDY = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_args(parser, argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--artifact-dir",
        help="the trials' artifact store (default: the study's "
        "dashboard.artifact_dir, else <run folder>/artifacts)",
    )


def main(args: argparse.Namespace) -> int:
    from search.dashboard import artifact_dir, check_artifact_dir, check_port, run_dashboard
    from search.export import locate_study, open_study

    given = getattr(args, "artifact_dir", None)
    check_port(args.host, args.port)  # the flags first: a bad one is named even without a study
    if given:
        check_artifact_dir(Path(given))
    loc = locate_study(args.study, storage=args.storage, out=args.out)
    artifacts = (
        Path(given) if given else artifact_dir(open_study(loc.storage, loc.name), loc.run_dir)
    )
    try:
        run_dashboard(loc.storage, loc.name, host=args.host, port=args.port, artifacts=artifacts)
    except KeyboardInterrupt:
        pass
    return 0
