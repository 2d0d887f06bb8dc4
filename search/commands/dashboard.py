"""`launch.py dashboard --study NAME [--port P] [--host 127.0.0.1]`: optuna-dashboard on the study's storage."""
from __future__ import annotations

import argparse

from search.dashboard import run_dashboard
from search.export import locate_study


def main(args: argparse.Namespace) -> int:
    loc = locate_study(args.study, storage=args.storage, out=args.out)
    try:
        run_dashboard(loc.storage, loc.name, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0
