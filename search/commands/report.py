"""`launch.py report --study NAME [--out RUN_DIR] [--storage URL]`: CSV, Pareto front, hypervolume, ablation."""
from __future__ import annotations

import argparse

import pandas as pd

from search.export import locate_study, mask_url
from search.report import write_report


def main(args: argparse.Namespace) -> int:
    loc = locate_study(args.study, storage=args.storage, out=args.out)
    written = write_report(loc.storage, loc.name, loc.run_dir / "report")
    print(f"study {loc.name} ({mask_url(loc.storage)}): report in {loc.run_dir / 'report'}")
    for kind, path in written.items():
        print(f"  {kind:16s} {path}")
    if "hypervolume" in written:
        history = pd.read_csv(written["hypervolume"])
        print(f"hypervolume {history['hypervolume'].iloc[-1]:.6g} after {len(history)} complete trials "
              f"(Pareto front: {history['pareto_size'].iloc[-1]})")
    else:
        print("no COMPLETE trials yet: only trials.csv was written")
    if "ablation" in written:
        table = pd.read_csv(written["ablation"], index_col=0)
        print(f"\nablation over {table.index.name}:")
        with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
            print(table.to_string())
    return 0
