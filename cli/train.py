"""`launch.py train`: full training of one architecture with checkpoints, resume and best model."""
from __future__ import annotations

import argparse
import sys

from cli.flags import MAX_SEED, check_input_size, check_int, check_positive

NAME = "train"
HELP = "train one architecture fully, with checkpoints"

MAX_EPOCHS = 100_000
MAX_WORKERS = 256


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
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip missing or corrupt records and report how many")
    parser.add_argument("--seed", type=int, default=0)


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
    try:
        with writing(args.out, hint="; complete checkpoints stay: free space, then --resume"):
            summary = fit(spec, args.data, args.out, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, input_size=args.input_size,
                          resume=args.resume, device=args.device, skip_bad=args.skip_bad,
                          seed=args.seed, workers=args.workers)
    except NonFiniteLossError as err:
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1
    best = summary["best"]
    print(f"best val {best['score']:.4f} at epoch {best['epoch']}; checkpoints in {args.out}")
    return 0
