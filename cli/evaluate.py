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
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out file that is not an evaluation result")


EVAL_KEYS = {"arch_id", "weights", "data", "split", "metrics"}
MAX_RESULT_BYTES = 16 * 2 ** 20


def is_eval_result(path: Path) -> bool:
    """A JSON file this command wrote (its own keys at the top level; a few MB at most)."""
    import json

    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            return False
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and EVAL_KEYS <= set(result)


def out_path(args: argparse.Namespace) -> Path:
    """--out, or WEIGHTS_STEM.eval-SPLIT.json next to the weights; checked before any work."""
    from trainers.outputs import check_output_file

    weights = Path(args.weights)
    out = (Path(args.out) if args.out
           else weights.with_name(f"{weights.stem}.eval-{args.split}.json"))
    return check_output_file(out, force=args.force, own=is_eval_result,
                             kind="an evaluation result")


def main(args: argparse.Namespace) -> int:
    from space.spec import load_arch
    from trainers.fit import evaluate_weights, format_table
    from trainers.io import save_json
    from trainers.outputs import writing

    check_input_size(args)
    out = out_path(args)
    spec = load_arch(args.arch)
    result = evaluate_weights(spec, args.weights, args.data, args.split,
                              input_size=args.input_size, flip=args.flip, device=args.device,
                              skip_bad=args.skip_bad)
    print(format_table(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} bad records")
    with writing(out):
        save_json(result, out)
    print(f"wrote {out}")
    return 0
