"""`launch.py predict`: run saved weights on images and draw the predicted skeleton on each original
image.

    python launch.py predict --arch A --weights W --image a.jpg b.jpg --out DIR [--box x,y,w,h]
    python launch.py predict --arch A --weights W --data D --split S --n 4 --out DIR [--flip]
                             [--threshold T] [--labels]

Each PNG has a legend (side colours, what a faded joint means), the cropped square where a person
box was cropped, and says so in the image when no joint reaches the threshold.

The flags are checked here; cropping, predicting, mapping back and drawing are trainers/infer.py's.
docs/training.md#launchpy-predict.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.flags import check_input_size, check_int
from space.errors import ConfigError

if TYPE_CHECKING:
    from space.spec import ArchSpec
    from trainers.infer import Box, Inputs

NAME = "predict"
HELP = "draw predicted poses on images (PNG) and write the joints (JSON)"

MAX_IMAGES = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument(
        "--image", nargs="+", help="image files; the person crop is the whole image (or --box)"
    )
    parser.add_argument(
        "--box", help="x,y,w,h: the person's box in pixels, for every --image given"
    )
    parser.add_argument("--data", help="a dataset (as for train): its own person boxes and crops")
    parser.add_argument("--split", help="split of --data (default test)")
    parser.add_argument("--n", type=int, help="the first N records of the split (default 4)")
    parser.add_argument(
        "--out", required=True, help="folder for one NAME.png and NAME.json per image"
    )
    parser.add_argument(
        "--flip", action="store_true", help="flip test: average with the mirrored image"
    )
    # the default is written out, not read from trainers.draw: the parser imports no numpy
    parser.add_argument(
        "--threshold",
        type=float,
        help="joints whose heatmap peak is below this are drawn faded "
        "(default: trainers.draw's, 0.2)",
    )
    parser.add_argument(
        "--labels", action="store_true", help="write each joint's confidence beside its dot"
    )
    parser.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace NAME.png/NAME.json files in --out that predict did not write",
    )


def parse_box(text: str) -> Box:
    """'x,y,w,h' (left column, top row, width, height in original pixels) -> floats; w, h > 0."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise ConfigError(
            f"expected x,y,w,h with w and h above 0, got {text!r}", source="<arg>", field="--box"
        )
    return box  # type: ignore[return-value]


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations and ranges, before anything is read; fills in the default --threshold."""
    from trainers.draw import DEFAULT_THRESHOLD
    from trainers.outputs import check_output_dir

    check_input_size(args)
    check_int(args, "n", 1, MAX_IMAGES)
    if (args.image is None) == (args.data is None):
        raise ConfigError(
            "give either --image FILE [FILE ...] or --data D (not both)",
            source="<arg>",
            field="--image/--data",
        )
    if args.image is not None and (args.split is not None or args.n is not None):
        raise ConfigError(
            "--split and --n go with --data, not --image", source="<arg>", field="--split/--n"
        )
    if args.data is not None and args.box is not None:
        raise ConfigError(
            "--box goes with --image; --data crops around the dataset's own boxes",
            source="<arg>",
            field="--box",
        )
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD
    if not (math.isfinite(args.threshold) and 0 <= args.threshold <= 1):
        raise ConfigError(
            f"must be a confidence between 0 and 1, got {args.threshold}",
            source="<arg>",
            field="--threshold",
        )
    check_output_dir(args.out)


PREDICT_KEYS = {"image", "arch_id", "weights", "joints", "confidences"}


def _is_prediction(json_path: Path) -> bool:
    """NAME.json as predict writes it (and so NAME.png beside it is predict's drawing)."""
    import json

    try:
        if json_path.stat().st_size > 2**20:
            return False
        record = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and PREDICT_KEYS <= set(record)


def check_targets(args: argparse.Namespace, stems: list[str]) -> None:
    """NAME.png and NAME.json of every input: never one of the --image files, and an existing one
    only when predict wrote it (NAME.json is a prediction) or with --force."""
    out = Path(args.out)
    images = {Path(i).resolve() for i in args.image or ()}
    for stem in stems:
        for target in (out / f"{stem}.png", out / f"{stem}.json"):
            if target.resolve() in images:
                raise ConfigError(
                    f"{str(target)!r} is one of the --image files; choose another --out",
                    source="<arg>",
                    field="--out",
                )
            if target.exists() and not args.force and not _is_prediction(out / f"{stem}.json"):
                raise ConfigError(
                    f"{str(target)!r} exists and is not predict's output; pass "
                    "--force to replace it",
                    source="<arg>",
                    field="--out",
                )


def _inputs(args: argparse.Namespace, spec: ArchSpec, size: int) -> Inputs:
    """--image files (whole, or around --box) or the first --n records of --data's --split."""
    from trainers import infer
    from trainers.draw import format_for_joints

    if args.image is not None:
        box = parse_box(args.box) if args.box is not None else None
        return infer.image_inputs(args.image, box, size, format_for_joints(spec.joints))
    inputs = infer.data_inputs(args.data, args.split or "test", args.n or 4, size)
    joints = int(inputs.poses.joints.shape[1])
    if joints != spec.joints:
        raise ConfigError(
            f"the weights predict {spec.joints} joints but {args.data} has {joints}",
            source=str(args.weights),
            field="joints",
        )
    return inputs


def main(args: argparse.Namespace) -> int:
    from space.profile import resolve_device
    from space.spec import load_arch
    from trainers import infer
    from trainers.outputs import writing

    check_args(args)
    device = resolve_device(args.device)
    spec = load_arch(args.arch)
    size = args.input_size or spec.input_size
    model, spec = infer.load_predictor(spec, args.weights, size, device)
    inputs = _inputs(args, spec, size)
    check_targets(args, infer._out_names(inputs.poses.names))
    joints, conf = infer.predict_joints(model, spec, inputs, size, device, args.flip)
    if inputs.whole:
        print(
            f"note: {inputs.whole} of the {len(inputs.originals)} records have no person box "
            "(too few annotated joints): predicted on the whole image",
            file=sys.stderr,
        )
    with writing(args.out, hint="; the images reported above are complete"):
        for done in infer.write_outputs(
            Path(args.out),
            spec,
            inputs,
            size,
            joints,
            conf,
            weights=args.weights,
            flip=args.flip,
            threshold=args.threshold,
            labels=args.labels,
        ):
            print(
                f"wrote {done.stem}.png and .json: {done.sure}/{done.joints} joints at "
                f"confidence >= {args.threshold}"
            )
    return 0
