"""`launch.py profile`: params, FLOPs and latency of one architecture."""
from __future__ import annotations

import argparse

import torch

from search.commands.flags import check_int
from space.errors import ConfigError
from space.guard import check_memory
from space.latency_backends import latency_backend
from space.model import build_model
from space.profile import MIN_RUNS, WARMUP, count_flops, count_params, measure_latency, resolve_device
from space.spec import RANGES, load_arch

MAX_RUNS = 1_000_000
MAX_THREADS = 1024


def main(args: argparse.Namespace) -> int:
    check_int(args, "runs", MIN_RUNS, MAX_RUNS)  # fewer give no meaningful median and spread
    check_int(args, "threads", 1, MAX_THREADS)
    check_int(args, "input_size", *RANGES["input_size"])
    backend = getattr(args, "backend", "torch")
    try:
        latency_backend(backend)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--backend") from None
    spec = load_arch(args.arch)
    size = args.input_size or spec.input_size
    try:
        device = resolve_device(args.device)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--device") from None
    try:
        check_memory(spec, size, device=device)   # shapes only: a spec too large fails here, not in the allocator
        model = build_model(spec, input_size=size)
    except ConfigError as err:
        field = "--input-size" if err.field == "input_size" else "--arch"
        raise ConfigError(err.message, source="<arg>", field=field) from None

    params = count_params(model)
    with torch.device("meta"):   # FLOPs from shapes alone: no compute, no memory
        flops = count_flops(build_model(spec), size)
    try:
        lat = measure_latency(model, size, device=device, threads=args.threads, warmup=WARMUP, runs=args.runs,
                              backend=backend)
    except ConfigError as err:   # e.g. the onnx extra missing, or no CUDA provider in onnxruntime
        raise ConfigError(err.message, source="<arg>", field=f"--{err.field or 'backend'}") from None

    print(f"arch        {args.arch} (id {spec.arch_id})")
    print(f"input       1x3x{size}x{size} -> {spec.stacks if spec.intermediate_supervision else 1} x "
          f"{spec.joints}x{size // 4}x{size // 4} heatmaps")
    print(f"params      {params:,} ({params / 1e6:.2f} M)")
    print(f"FLOPs       {flops:,} ({flops / 1e9:.2f} GFLOPs; 1 multiply-add = 2 FLOPs, torch.utils.flop_counter)")
    print(f"latency     median {lat.median_ms:.2f} ms, IQR {lat.p25_ms:.2f}-{lat.p75_ms:.2f} ms, "
          f"mean {lat.mean_ms:.2f} +- {lat.std_ms:.2f} ms, CV {lat.cv:.1%}")
    print(f"measured    {lat.runs} timed runs after {WARMUP} warm-up runs, batch 1, {_how(backend)}, "
          f"device {lat.device}, {backend} threads {lat.threads}, torch {torch.__version__}")
    return 0


def _how(backend: str) -> str:
    if backend == "torch":
        return "backend torch (eager, torch.inference_mode)"
    if backend == "onnxruntime":
        import onnxruntime

        return f"backend onnxruntime {onnxruntime.__version__} (ORT_ENABLE_ALL, sequential, 1 inter-op thread)"
    return f"backend {backend}"
