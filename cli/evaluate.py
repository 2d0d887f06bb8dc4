"""`launch.py evaluate`: score saved weights on a split; per-joint table on stdout, JSON on disk."""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.flags import check_input_size

NAME = "evaluate"
HELP = "score a checkpoint on a split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--flip", action="store_true",
                        help="flip test: average with the mirrored image")
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--device")
    parser.add_argument("--out", help="JSON file for the results (default: next to the weights)")
    parser.add_argument("--skip-bad", action="store_true")


def main(args: argparse.Namespace) -> int:
    from space.spec import load_arch
    from trainers.fit import evaluate_weights, format_table
    from trainers.io import save_json

    check_input_size(args)
    spec = load_arch(args.arch)
    result = evaluate_weights(spec, args.weights, args.data, args.split,
                              input_size=args.input_size, flip=args.flip, device=args.device,
                              skip_bad=args.skip_bad)
    print(format_table(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} bad records")
    weights = Path(args.weights)
    out = (Path(args.out) if args.out
           else weights.with_name(f"{weights.stem}.eval-{args.split}.json"))
    save_json(result, out)
    print(f"wrote {out}")
    return 0
