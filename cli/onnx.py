"""`launch.py onnx`: export one architecture to ONNX, check the file, and compare ONNX Runtime's
outputs with PyTorch's at batch 1 and 3 (space.onnx_export; needs the `onnx` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.flags import check_input_size, check_int
from space.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from space.onnx_export import OutputDiff
    from space.spec import ArchSpec

NAME = "onnx"
HELP = "export one architecture to ONNX and check it against PyTorch"

# float32: ONNX Runtime's fused kernels differ from PyTorch's by rounding only. Compared with
# OutputDiff.scaled: absolute for outputs within [-1, 1], relative to the largest output above
# that (rounding grows with the values; untrained nets in eval mode have outputs in the
# thousands, and there ORT is as close to a float64 run as PyTorch's float32 is: docs/space.md).
TOLERANCE = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, help="preset name or path to an arch YAML")
    parser.add_argument("--weights", help="checkpoint or state_dict (default: the initial weights)")
    parser.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    parser.add_argument("--out", help="ONNX file to write (default: <arch id>.onnx)")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing file that is not an ONNX export"
    )
    # the default is written out, not read from space.onnx_export: that module imports torch
    parser.add_argument(
        "--opset",
        type=int,
        default=17,
        help="ONNX opset, 13 to 20 (default 17, space.onnx_export.DEFAULT_OPSET)",
    )
    parser.add_argument(
        "--heads",
        choices=("last", "all"),
        default="last",
        help="last: the last stack's heatmaps (default); all: every stack's",
    )


def _out_path(args: argparse.Namespace, spec: ArchSpec) -> Path:
    """--out (default <arch id>.onnx), checked before any work (trainers.outputs)."""
    from trainers.outputs import check_output_file

    return check_output_file(
        args.out or f"{spec.arch_id}.onnx",
        force=args.force,
        own=is_onnx_export,
        kind="an ONNX file of this command",
        parent_must_exist=True,
    )


def is_onnx_export(path: Path) -> bool:
    """An ONNX model written by PyTorch's exporter (what this command writes): its protobuf begins
    with ir_version then producer_name "pytorch"."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return False
    return head[:1] == b"\x08" and b"\x12\x07pytorch" in head


def _model(args: argparse.Namespace, spec: ArchSpec, size: int) -> tuple[nn.Module, ArchSpec]:
    """The network for `spec` with `--weights` loaded (the spec of the weights' joint count)."""
    import torch

    from space.guard import check_memory
    from space.model import build_model, validate_input_size

    try:
        check_memory(spec, size, device="cpu")
        validate_input_size(spec, size)
    except ConfigError as err:
        raise ConfigError(
            err.message,
            source="<arg>",
            field="--input-size" if err.field == "input_size" else "--arch",
        ) from None
    if args.weights:  # the weights' spec: their heads may be for the data's joint count
        from trainers.weights import (
            load_model,  # the command may use trainers/; space/ may not
        )

        model, spec = load_model(spec, args.weights, size)
    else:  # seeded: the same initial weights, and the same file, every time
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = build_model(spec, input_size=size)
    return model.eval(), spec


def _compared(diffs: list[OutputDiff]) -> str:
    """The `compared` line: per batch the largest abs diff and, where an output exceeds 1, the
    largest diff relative to its output's scale (what TOLERANCE bounds)."""
    parts = []
    for batch in dict.fromkeys(d.batch for d in diffs):
        mine = [d for d in diffs if d.batch == batch]
        scale = max(d.scale for d in mine)
        rel = (
            f" (outputs up to {scale:.3g}: {max(d.scaled for d in mine):.1e} of their scale)"
            if scale > 1
            else ""
        )
        parts.append(f"batch {batch} {max(d.max_abs_diff for d in mine):.2e}{rel}")
    return (
        "ONNX Runtime (CPUExecutionProvider) vs PyTorch, same random inputs: max abs diff "
        + ", ".join(parts)
    )


def main(args: argparse.Namespace) -> int:
    from space.onnx_export import (
        MAX_OPSET,
        MIN_OPSET,
        check_onnx,
        compare_outputs,
        export_onnx,
        ort_session,
        require,
    )
    from space.spec import load_arch
    from trainers.io import atomic_write
    from trainers.outputs import writing

    check_input_size(args)
    check_int(args, "opset", MIN_OPSET, MAX_OPSET)
    for module in ("onnx", "onnxruntime"):  # a missing extra fails before any work
        require(module)
    spec = load_arch(args.arch)
    size = args.input_size or spec.input_size
    out = _out_path(args, spec)
    model, spec = _model(args, spec, size)
    model_bytes = export_onnx(model, size, opset=args.opset, heads=args.heads)
    check_onnx(model_bytes)
    diffs = compare_outputs(model, ort_session(model_bytes, threads=1), size, heads=args.heads)
    worst = max(diffs, key=lambda d: d.scaled)
    stacks = spec.stacks if spec.intermediate_supervision else 1
    heads = (
        f"every stack's heatmaps ({stacks} outputs)"
        if args.heads == "all"
        else "the last stack's heatmaps"
    )
    weights = f", weights {args.weights}" if args.weights else ", initial weights (seed 0)"
    print(f"arch        {args.arch} (id {spec.arch_id}){weights}")
    print(
        f"exported    input image Bx3x{size}x{size} (dynamic batch B) -> {heads}, "
        f"{spec.joints}x{size // 4}x{size // 4} each; opset {args.opset}, TorchScript exporter"
    )
    print("checked     onnx.checker.check_model (full check): ok")
    print(f"compared    {_compared(diffs)}")
    if worst.scaled > TOLERANCE:
        print(
            f"error: {worst.output} at batch {worst.batch}: max abs diff {worst.max_abs_diff:.2e}"
            f" is {worst.scaled:.1e} of max(1, largest output {worst.scale:.3g}), above "
            f"{TOLERANCE:.0e}; nothing written",
            file=sys.stderr,
        )
        return 1
    with writing(out):
        atomic_write(out, lambda tmp: Path(tmp).write_bytes(model_bytes))
    print(f"wrote       {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0
