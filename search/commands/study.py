"""`python launch.py --study NAME [--trials N] [--data D] [--storage URL] [--out DIR] [--address A] [--resume]`."""
from __future__ import annotations

import argparse
import sys
import time

import optuna

from search.config import StudyConfig, effective_trials, mask_url
from space.errors import ConfigError


def main(args: argparse.Namespace) -> int:
    cfg = StudyConfig.load(args.study).with_overrides(
        trials=args.trials, data=args.data, storage=args.storage, out=args.out)
    from search.study import counts_toward_target, run_study

    start = time.time()
    try:
        study = run_study(cfg, resume=args.resume, address=args.address, verbose=args.verbose)
    except KeyboardInterrupt:  # the runner has handed the running trials back for --resume
        print("interrupted (Ctrl-C); running trials handed back, continue with --resume", file=sys.stderr)
        return 130
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished() and counts_toward_target(t))
    wanted = effective_trials(cfg)
    timed_out = cfg.timeout is not None and time.time() - start >= cfg.timeout
    if done < wanted and not timed_out:  # stopped early (a Tune error): no export of a partial front
        print(f"stopped with {done} of {wanted} trials done; continue with --resume", file=sys.stderr)
        return 1
    if done < wanted:  # the study's own time budget: its front so far is the result
        print(f"{done} of {wanted} trials done within the timeout of {cfg.timeout:g} s; --resume adds more")
    if cfg.export.auto:
        _export(cfg, study)
    return 0


def _export(cfg: StudyConfig, study: optuna.Study) -> None:
    """The export is part of the run, but a study that ran is never failed by its export."""
    from search.export import export_study

    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        print("export skipped: no COMPLETE trials")
        return
    try:
        # force: a resumed study refreshes its own earlier export (export only replaces its own files)
        files = export_study(cfg.storage_url, cfg.name, cfg.export_dir, force=True)
    except ConfigError as err:
        print(f"export skipped: {err}", file=sys.stderr)
        return
    print(f"exported {len(files)} Pareto-optimal architecture(s) to {cfg.export_dir} "
          f"(storage {mask_url(cfg.storage_url)})")
