"""`launch.py export --study NAME [--out RUN_DIR] [--storage URL] [--force]`: Pareto-optimal archs as YAML."""
from __future__ import annotations

import argparse

from search.export import export_study, locate_study, mask_url


def main(args: argparse.Namespace) -> int:
    loc = locate_study(args.study, storage=args.storage, out=args.out)
    out_dir = loc.export_dir
    files = export_study(loc.storage, loc.name, out_dir, force=args.force)
    print(f"study {loc.name} ({mask_url(loc.storage)}): {len(files)} Pareto-optimal architectures")
    for path in files:
        print(f"  {path}")
    print(f"index: {out_dir / 'index.csv'}")
    return 0
