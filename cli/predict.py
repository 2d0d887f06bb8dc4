"""`launch.py predict`: run saved weights on images and draw the predicted skeleton on each original
image.

    python launch.py predict --arch A --weights W --image a.jpg b.jpg --out DIR [--box x,y,w,h]
    python launch.py predict --arch A --weights W --data D --split S --n 4 --out DIR [--flip]

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
    parser.add_argument("--image", nargs="+",
                        help="image files; the person crop is the whole image (or --box)")
    parser.add_argument("--box",
                        help="x,y,w,h: the person's box in pixels, for every --image given")
    parser.add_argument("--data", help="a dataset (as for train): its own person boxes and crops")
    parser.add_argument("--split", help="split of --data (default test)")
    parser.add_argument("--n", type=int, help="the first N records of the split (default 4)")
    parser.add_argument("--out", required=True,
                        help="folder for one NAME.png and NAME.json per image")
    parser.add_argument("--flip", action="store_true",
                        help="flip test: average with the mirrored image")
    # the default is written out, not read from trainers.draw: the parser imports no numpy
    parser.add_argument("--threshold", type=float,
                        help="joints whose heatmap peak is below this are drawn faded "
                             "(default: trainers.draw's, 0.2)")
    parser.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")


def parse_box(text: str) -> Box:
    """'x,y,w,h' (left column, top row, width, height in original pixels) -> floats; w, h > 0."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise ConfigError(f"expected x,y,w,h with w and h above 0, got {text!r}", source="<arg>",
                          field="--box")
    return box  # type: ignore[return-value]


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations and ranges, before anything is read; fills in the default --threshold."""
    from trainers.draw import DEFAULT_THRESHOLD

    check_input_size(args)
    check_int(args, "n", 1, MAX_IMAGES)
    if (args.image is None) == (args.data is None):
        raise ConfigError("give either --image FILE [FILE ...] or --data D (not both)",
                          source="<arg>", field="--image/--data")
    if args.image is not None and (args.split is not None or args.n is not None):
        raise ConfigError("--split and --n go with --data, not --image", source="<arg>",
                          field="--split/--n")
    if args.data is not None and args.box is not None:
        raise ConfigError("--box goes with --image; --data crops around the dataset's own boxes",
                          source="<arg>", field="--box")
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD
    if not (math.isfinite(args.threshold) and 0 <= args.threshold <= 1):
        raise ConfigError(f"must be a confidence between 0 and 1, got {args.threshold}",
                          source="<arg>", field="--threshold")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError("exists and is not a folder", source=str(args.out), field="--out")


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
        raise ConfigError(f"the weights predict {spec.joints} joints but {args.data} has {joints}",
                          source=str(args.weights), field="joints")
    return inputs


def main(args: argparse.Namespace) -> int:
    from space.profile import resolve_device
    from space.spec import load_arch
    from trainers import infer

    check_args(args)
    device = resolve_device(args.device)
    spec = load_arch(args.arch)
    size = args.input_size or spec.input_size
    model, spec = infer.load_predictor(spec, args.weights, size, device)
    inputs = _inputs(args, spec, size)
    joints, conf = infer.predict_joints(model, spec, inputs, size, device, args.flip)
    if inputs.whole:
        print(f"note: {inputs.whole} of the {len(inputs.originals)} records have no person box "
              "(too few annotated joints): predicted on the whole image", file=sys.stderr)
    for done in infer.write_outputs(Path(args.out), spec, inputs, size, joints, conf,
                                    weights=args.weights, flip=args.flip,
                                    threshold=args.threshold):
        print(f"wrote {done.stem}.png and .json: {done.sure}/{done.joints} joints at confidence "
              f">= {args.threshold}")
    return 0
