"""`launch.py train`: full training of one architecture with checkpoints, resume and best model."""
from __future__ import annotations

import argparse
import sys

from space.spec import load_arch
from trainers.fit import fit
from trainers.proxy import NonFiniteLossError


def main(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        from space.errors import ConfigError
        raise ConfigError("must be at least 1", source="<arg>", field="--epochs")
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
