"""`launch.py report --study NAME [--out RUN_DIR] [--storage URL]`: CSV, Pareto front, hypervolume,
ablation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.flags import add_study_args

if TYPE_CHECKING:
    import pandas as pd

NAME = "report"
HELP = "trials as CSV, Pareto front plot, hypervolume history, PCK per choice, ablation tables"
NEEDS_STUDY = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_args(parser, argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    from search.export import locate_study, mask_url
    from search.report import write_report
    from trainers.outputs import check_output_dir, writing

    loc = locate_study(args.study, storage=args.storage, out=args.out)
    folder = check_output_dir(loc.run_dir / "report")
    with writing(folder):
        written = write_report(loc.storage, loc.name, folder)
    print(f"study {loc.name} ({mask_url(loc.storage)}): report in {loc.run_dir / 'report'}")
    for kind, path in written.items():
        print(f"  {kind:16s} {path}")
    if "hypervolume" in written:
        history = pd.read_csv(written["hypervolume"])
        print(
            f"hypervolume {history['hypervolume'].iloc[-1]:.6g} after {len(history)} complete "
            f"trials (Pareto front: {history['pareto_size'].iloc[-1]})"
        )
    else:
        print("no COMPLETE trials yet: only trials.csv was written")
    with pd.option_context(
        "display.width",
        200,
        "display.max_columns",
        30,
        "display.max_colwidth",
        120,
        "display.float_format",
        "{:.4g}".format,
    ):
        _print_tables(written)
    return 0


def _print_tables(written: dict[str, Path]) -> None:
    """The ablation tables the report wrote, if any: values and paper claims, or the single axis."""
    import pandas as pd

    if "ablation_values" in written:
        header = list(pd.read_csv(written["ablation_values"], nrows=0).columns)
        keys = header[: header.index("seeds")]  # the arch fields: read as written ("1.0", "-")
        values = pd.read_csv(written["ablation_values"], dtype={k: str for k in keys})
        print_ablation(values, pd.read_csv(written["claims"]) if "claims" in written else None)
    elif "ablation" in written:
        table = pd.read_csv(written["ablation"], index_col=0)
        print(f"\nablation over {table.index.name}:")
        print(table.to_string())


def print_ablation(values: pd.DataFrame, claims: pd.DataFrame | None) -> None:
    from search.ablation import ALPHA, PARAMS_TOLERANCE

    keys = list(values.columns[: list(values.columns).index("seeds")])
    print(f"\nablation over {', '.join(keys)} (mean and std over proxy seeds):")
    print(values.to_string(index=False))
    if claims is None:
        print("\nno paper claim can be tested on this study")
        return
    print(
        f"\npaper claims (A vs B; Welch t-test on PCK over seeds, alpha {ALPHA}; "
        f"'equal params' = within {PARAMS_TOLERANCE:.0%}):"
    )
    for row in claims.itertuples(index=False):
        print(
            f"  {row.verdict.upper():14s} {row.claim}: PCK {row.pck_A:.4f}+-{row.std_A:.4f} "
            f"(n={row.seeds_A}) vs {row.pck_B:.4f}+-{row.std_B:.4f} (n={row.seeds_B}); "
            f"{row.rule}"
        )
