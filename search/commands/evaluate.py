"""`launch.py evaluate`: score saved weights on a split; per-joint table on stdout, JSON on disk."""
from __future__ import annotations

import argparse
from pathlib import Path

from search.commands.flags import check_int
from space.spec import RANGES, load_arch
from trainers.fit import evaluate_weights, format_table
from trainers.io import save_json


def main(args: argparse.Namespace) -> int:
    check_int(args, "input_size", *RANGES["input_size"])
    spec = load_arch(args.arch)
    result = evaluate_weights(spec, args.weights, args.data, args.split, input_size=args.input_size,
                              flip=args.flip, device=args.device, skip_bad=args.skip_bad)
    print(format_table(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} bad records")
    weights = Path(args.weights)
    out = Path(args.out) if args.out else weights.with_name(f"{weights.stem}.eval-{args.split}.json")
    save_json(result, out)
    print(f"wrote {out}")
    return 0
