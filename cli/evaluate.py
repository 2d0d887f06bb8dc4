"""`launch.py evaluate`: score saved weights on a split; per-joint table on stdout, JSON on disk.

Every score is a fraction (0-1), on stdout and in the JSON. `--save-predictions FILE` writes the
predictions for official tools: COCO's results format for a COCO set, else a per-image joints JSON
(`trainers.evaluate.prediction_records`)."""

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
    parser.add_argument(
        "--flip", action="store_true", help="flip test: average with the mirrored image"
    )
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--device")
    parser.add_argument("--out", help="JSON file for the results (default: next to the weights)")
    parser.add_argument("--skip-bad", action="store_true")
    parser.add_argument(
        "--save-predictions",
        metavar="FILE",
        help="JSON of the predictions in original pixels: COCO results format "
        "(image_id, category_id, keypoints, score) for COCO, else per image "
        "{name, joints [[x, y, confidence], ...]}",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file that is not an evaluation result",
    )


EVAL_KEYS = {"arch_id", "weights", "data", "split", "metrics"}
MAX_RESULT_BYTES = 16 * 2**20


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


def _is_predictions(path: Path) -> bool:
    """A predictions file this command wrote: COCO results (a list) or the per-image mapping."""
    import json

    try:
        if path.stat().st_size > 64 * MAX_RESULT_BYTES:
            return False
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    if isinstance(data, list):
        return all(isinstance(d, dict) and {"image_id", "keypoints"} <= set(d) for d in data[:5])
    return isinstance(data, dict) and {"predictions", "format"} <= set(data)


def out_path(args: argparse.Namespace) -> Path:
    """--out, or WEIGHTS_STEM.eval-SPLIT.json next to the weights; checked before any work."""
    from trainers.outputs import check_output_file

    weights = Path(args.weights)
    out = (
        Path(args.out) if args.out else weights.with_name(f"{weights.stem}.eval-{args.split}.json")
    )
    return check_output_file(out, force=args.force, own=is_eval_result, kind="an evaluation result")


def main(args: argparse.Namespace) -> int:
    from space.spec import load_arch
    from trainers.evaluate import evaluate_weights, format_table
    from trainers.io import save_json
    from trainers.outputs import check_output_file, writing

    check_input_size(args)
    out = out_path(args)
    preds_out = (
        None
        if args.save_predictions is None
        else check_output_file(
            Path(args.save_predictions),
            force=args.force,
            own=_is_predictions,
            kind="a predictions file",
        )
    )
    spec = load_arch(args.arch)
    result = evaluate_weights(
        spec,
        args.weights,
        args.data,
        args.split,
        input_size=args.input_size,
        flip=args.flip,
        device=args.device,
        skip_bad=args.skip_bad,
        keep_predictions=args.save_predictions is not None,
    )
    predictions = result.pop("predictions", None)
    print(format_table(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} bad records")
    with writing(out):
        save_json(result, out)
    print(f"wrote {out}")
    if preds_out is not None:
        with writing(preds_out):
            save_json(predictions, preds_out)
        print(f"wrote {preds_out} ({result['samples']} people)")
    return 0
