"""`launch.py evaluate`: score saved weights on a split; per-joint table on stdout, JSON on disk.

Every score is a fraction (0-1), on stdout and in the JSON. `--save-predictions FILE` writes the
predictions for official tools: COCO's results format for a COCO set, else a per-image joints JSON
(`trainers.fit.prediction_records`)."""
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
    parser.add_argument("--save-predictions", metavar="FILE",
                        help="JSON of the predictions in original pixels: COCO results format "
                             "(image_id, category_id, keypoints, score) for COCO, else per image "
                             "{name, joints [[x, y, confidence], ...]}")


def main(args: argparse.Namespace) -> int:
    from space.spec import load_arch
    from trainers.fit import evaluate_weights, format_table
    from trainers.io import save_json

    check_input_size(args)
    spec = load_arch(args.arch)
    result = evaluate_weights(spec, args.weights, args.data, args.split,
                              input_size=args.input_size, flip=args.flip, device=args.device,
                              skip_bad=args.skip_bad,
                              keep_predictions=args.save_predictions is not None)
    predictions = result.pop("predictions", None)
    print(format_table(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} bad records")
    weights = Path(args.weights)
    out = (Path(args.out) if args.out
           else weights.with_name(f"{weights.stem}.eval-{args.split}.json"))
    save_json(result, out)
    print(f"wrote {out}")
    if args.save_predictions is not None:
        save_json(predictions, Path(args.save_predictions))
        print(f"wrote {args.save_predictions} ({result['samples']} people)")
    return 0
