"""`python launch.py --study NAME [--trials N] [--data D] [--storage URL] [--out DIR] [--address A]
[--resume]`: run a study, the default command (no subcommand); its flags are the top-level ones."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from cli.flags import add_study_args
from space.errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from search.config import StudyConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The top-level flags: finalize reads --address and --verbose from here too."""
    add_study_args(parser, None)
    parser.add_argument("--trials", type=int, help="number of trials (overrides the study file)")
    parser.add_argument(
        "--data", help="synthetic, a dataset path, or FORMAT:PATH (overrides the study file)"
    )
    parser.add_argument(
        "--address", help="Ray cluster address to join (default: start a local Ray)"
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted study")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own progress tables")


def main(args: argparse.Namespace) -> int:
    from search.config import StudyConfig, effective_trials
    from search.study import counts_toward_target, run_study
    from trainers.outputs import writing

    cfg = StudyConfig.load(args.study).with_overrides(
        trials=args.trials, data=args.data, storage=args.storage, out=args.out
    )
    check_outputs(cfg)
    start = time.time()
    try:
        # a disk that fills mid-run: one line, and --resume continues once there is space again
        with writing(cfg.run_dir, hint="; free space, then continue with --resume"):
            study = run_study(cfg, resume=args.resume, address=args.address, verbose=args.verbose)
    except KeyboardInterrupt:  # the runner has handed the running trials back for --resume
        print(
            "interrupted (Ctrl-C); running trials handed back, continue with --resume",
            file=sys.stderr,
        )
        return 130
    done = sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and counts_toward_target(t)
    )
    wanted = effective_trials(cfg)
    timed_out = cfg.timeout is not None and time.time() - start >= cfg.timeout
    # stopped early (a Tune error): no export of a partial front
    if done < wanted and not timed_out:
        print(
            f"stopped with {done} of {wanted} trials done; continue with --resume", file=sys.stderr
        )
        return 1
    if done < wanted:  # the study's own time budget: its front so far is the result
        print(
            f"{done} of {wanted} trials done within the timeout of {cfg.timeout:g} s; "
            "--resume adds more"
        )
    if cfg.export.auto:
        _export(cfg, study)
    return 0


def check_outputs(cfg: StudyConfig) -> None:
    """Where the run writes, checked before anything runs (trainers.outputs): the run folder, the
    export and artifact folders, and an SQLite storage's file (never inside the project's
    source)."""
    from search.storage import sqlite_file
    from trainers.outputs import check_not_source, check_output_dir

    check_output_dir(cfg.run_dir)
    if cfg.export.auto:  # until search/config.py checks export.dir when it loads the file
        check_output_dir(cfg.export_dir, source=cfg.source, field="export.dir")
    if cfg.dashboard.artifacts:
        check_output_dir(cfg.artifact_dir, source=cfg.source, field="dashboard.artifact_dir")
    database = sqlite_file(cfg.storage_url)
    if database is not None:
        check_not_source(database, field="--storage")


def _export(cfg: StudyConfig, study: optuna.Study) -> None:
    """The export is part of the run, but a study that ran is never failed by its export."""
    from search.config import mask_url
    from search.export import export_study

    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        print("export skipped: no COMPLETE trials")
        return
    from trainers.outputs import writing

    try:
        # force: a resumed study refreshes its own earlier export (export only replaces its own
        # files)
        with writing(cfg.export_dir, source=cfg.source, field="export.dir"):
            files = export_study(
                cfg.storage_url, cfg.name, cfg.export_dir, force=True, remeasure=True
            )
    except ConfigError as err:
        print(f"export skipped: {err}", file=sys.stderr)
        return
    print(
        f"exported {len(files)} Pareto-optimal architecture(s) to {cfg.export_dir} "
        f"(storage {mask_url(cfg.storage_url)})"
    )
    from search.remeasure import keep_quiet_latencies

    keep_quiet_latencies(study, files, note=cfg.dashboard.notes)
