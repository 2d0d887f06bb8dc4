"""`launch.py train`: full training of one architecture with checkpoints, resume and best model.

best.pt is never selected on the test split by default: where the dataset's val split is its test
split (LSPET), on val_carved (the last 10 % of the train images; `trainers.data.selection_splits`,
as finalize does); `--select-on val` or `carved` chooses. Which split, and why, is said in one line.
"""

from __future__ import annotations

import argparse
import sys

from cli.flags import MAX_SEED, check_input_size, check_int, check_positive

NAME = "train"
HELP = "train one architecture fully, with checkpoints"

MAX_EPOCHS = 100_000
MAX_WORKERS = 256
SELECT_ON = ("auto", "val", "carved")


def selection(data: str, select_on: str) -> tuple[str, str]:
    """(train split, val split) for `--select-on`: auto follows `trainers.data.selection_splits`."""
    from trainers.data import selection_splits

    if select_on == "auto":
        return selection_splits(data)
    return ("train_carved", "val_carved") if select_on == "carved" else ("train", "val")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--input-size", type=int, help="training resolution (default: the spec's)")
    parser.add_argument("--out", default="runs/train")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument("--workers", type=int, default=2, help="data preparation processes")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip missing or corrupt records and report how many",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--select-on",
        choices=SELECT_ON,
        default="auto",
        help="split best.pt is selected on: val, carved (val_carved, the last "
        "10 %% of train), or auto (default): carved where val is the test "
        "split",
    )


def check_flags(args: argparse.Namespace) -> None:
    """Out-of-range numbers are refused before anything is read or written."""
    check_int(args, "epochs", 1, MAX_EPOCHS)
    check_int(args, "batch_size", 1)
    check_positive(args, "lr")
    check_input_size(args)
    check_int(args, "workers", 0, MAX_WORKERS)
    check_int(args, "seed", 0, MAX_SEED)


def main(args: argparse.Namespace) -> int:
    from space.spec import load_arch
    from trainers.engine import NonFiniteLossError
    from trainers.fit import fit
    from trainers.outputs import check_output_dir, writing

    check_flags(args)
    check_output_dir(args.out)
    spec = load_arch(args.arch)
    train_split, val_split = selection(args.data, args.select_on)
    try:
        with writing(args.out, hint="; complete checkpoints stay: free space, then --resume"):
            summary = fit(
                spec,
                args.data,
                args.out,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                input_size=args.input_size,
                resume=args.resume,
                device=args.device,
                skip_bad=args.skip_bad,
                seed=args.seed,
                workers=args.workers,
                train_split=train_split,
                val_split=val_split,
                announce=lambda line: print(line, flush=True),
            )
    except NonFiniteLossError as err:
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1
    best = summary["best"]
    print(
        f"best {val_split} {best['score']:.4f} at epoch {best['epoch']}; checkpoints in {args.out}"
    )
    return 0
