"""`launch.py dashboard --study NAME [--port P] [--host 127.0.0.1] [--artifact-dir DIR]`: optuna-dashboard
on the study's storage, with the trials' artifacts (search/artifacts.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from search.dashboard import artifact_dir, run_dashboard
from search.export import locate_study, open_study


def main(args: argparse.Namespace) -> int:
    loc = locate_study(args.study, storage=args.storage, out=args.out)
    given = getattr(args, "artifact_dir", None)
    artifacts = Path(given) if given else artifact_dir(open_study(loc.storage, loc.name), loc.run_dir)
    try:
        run_dashboard(loc.storage, loc.name, host=args.host, port=args.port, artifacts=artifacts)
    except KeyboardInterrupt:
        pass
    return 0
