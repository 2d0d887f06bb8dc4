"""`launch.py train`: full training of one architecture with checkpoints, resume and best model."""
from __future__ import annotations

import argparse
import sys

from search.commands.flags import MAX_SEED, check_int, check_positive
from space.spec import RANGES, load_arch
from trainers.engine import NonFiniteLossError
from trainers.fit import fit

MAX_EPOCHS = 100_000
MAX_WORKERS = 256


def check_flags(args: argparse.Namespace) -> None:
    """Out-of-range numbers are refused before anything is read or written."""
    check_int(args, "epochs", 1, MAX_EPOCHS)
    check_int(args, "batch_size", 1)
    check_positive(args, "lr")
    check_int(args, "input_size", *RANGES["input_size"])
    check_int(args, "workers", 0, MAX_WORKERS)
    check_int(args, "seed", 0, MAX_SEED)


def main(args: argparse.Namespace) -> int:
    check_flags(args)
    spec = load_arch(args.arch)
    try:
        summary = fit(spec, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      input_size=args.input_size, resume=args.resume, device=args.device,
                      skip_bad=args.skip_bad, seed=args.seed, workers=args.workers)
    except NonFiniteLossError as err:
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1
    best = summary["best"]
    print(f"best val {best['score']:.4f} at epoch {best['epoch']}; checkpoints in {args.out}")
    return 0
