"""`launch.py profile`: params, FLOPs and latency of one architecture."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cli.flags import check_input_size, check_int
from space.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from space.spec import ArchSpec

NAME = "profile"
HELP = "params, FLOPs and latency of one architecture"

MAX_RUNS = 1_000_000
MAX_THREADS = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, help="preset name or path to an arch YAML")
    parser.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs (at least 20)")
    parser.add_argument(
        "--backend", default="torch", help="latency backend: torch (eager) or onnxruntime"
    )


def _check(args: argparse.Namespace) -> None:
    """Flags checked before anything is built."""
    from space.latency_backends import latency_backend
    from space.profile import MIN_RUNS

    check_int(args, "runs", MIN_RUNS, MAX_RUNS)  # fewer give no meaningful median and spread
    check_int(args, "threads", 1, MAX_THREADS)
    check_input_size(args)
    try:
        latency_backend(args.backend)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--backend") from None


def _build(args: argparse.Namespace, spec: ArchSpec, size: int) -> tuple[nn.Module, str]:
    """(the network, the device to time it on); errors name the flag that caused them."""
    from space.guard import check_memory
    from space.model import build_model
    from space.profile import resolve_device

    try:
        device = resolve_device(args.device)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--device") from None
    try:
        # shapes only: a spec too large fails here, not in the allocator
        check_memory(spec, size, device=device)
        model = build_model(spec, input_size=size)
    except ConfigError as err:
        field = "--input-size" if err.field == "input_size" else "--arch"
        raise ConfigError(err.message, source="<arg>", field=field) from None
    return model, device


def main(args: argparse.Namespace) -> int:
    import torch

    from space.model import build_model
    from space.profile import WARMUP, count_flops, count_params, measure_latency
    from space.spec import load_arch

    _check(args)
    spec = load_arch(args.arch)
    size = args.input_size or spec.input_size
    model, device = _build(args, spec, size)
    params = count_params(model)
    with torch.device("meta"):  # FLOPs from shapes alone: no compute, no memory
        flops = count_flops(build_model(spec), size)
    try:
        lat = measure_latency(
            model,
            size,
            device=device,
            threads=args.threads,
            warmup=WARMUP,
            runs=args.runs,
            backend=args.backend,
        )
    except ConfigError as err:  # e.g. the onnx extra missing, or no CUDA provider in onnxruntime
        raise ConfigError(
            err.message, source="<arg>", field=f"--{err.field or 'backend'}"
        ) from None

    heads = spec.stacks if spec.intermediate_supervision else 1
    print(f"arch        {args.arch} (id {spec.arch_id})")
    print(
        f"input       1x3x{size}x{size} -> {heads} x {spec.joints}x{size // 4}x{size // 4} heatmaps"
    )
    print(f"params      {params:,} ({params / 1e6:.2f} M)")
    print(
        f"FLOPs       {flops:,} ({flops / 1e9:.2f} GFLOPs; 1 multiply-add = 2 FLOPs, "
        "torch.utils.flop_counter)"
    )
    print(
        f"latency     median {lat.median_ms:.2f} ms, IQR {lat.p25_ms:.2f}-{lat.p75_ms:.2f} ms, "
        f"mean {lat.mean_ms:.2f} +- {lat.std_ms:.2f} ms, CV {lat.cv:.1%}"
    )
    print(
        f"measured    {lat.runs} timed runs after {WARMUP} warm-up runs, batch 1, "
        f"{_how(args.backend)}, device {lat.device}, {args.backend} threads {lat.threads}, "
        f"torch {torch.__version__}"
    )
    return 0


def _how(backend: str) -> str:
    if backend == "torch":
        return "backend torch (eager, torch.inference_mode)"
    if backend == "onnxruntime":
        import onnxruntime

        return (
            f"backend onnxruntime {onnxruntime.__version__} (ORT_ENABLE_ALL, sequential, "
            "1 inter-op thread)"
        )
    return f"backend {backend}"
