"""ONNX export (space.onnx_export, `launch.py onnx`) and the onnxruntime latency backend."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import yaml
from helpers import REPO, SMOKE, run_launch

from search.config import StudyConfig
from search.latency import LATENCY_KEYS, LatencyMeter
from space.errors import ConfigError
from space.latency_backends import latency_backend
from space.model import build_model
from space.onnx_export import (
    OutputDiff,
    compare_with_torch,
    export_onnx,
    ort_providers,
    ort_session,
)
from space.registry import BLOCKS, DOWNSAMPLE, FUSIONS, GATES, SKIPS, UPSAMPLE
from space.spec import ArchSpec, load_arch, preset_names, size_multiple

torch.set_num_threads(1)

TINY = dict(stacks=1, width=16, depth=2, joints=3, input_size=32)
AXES = {
    "gate": GATES,
    "block": BLOCKS,
    "down": DOWNSAMPLE,
    "up": UPSAMPLE,
    "fusion": FUSIONS,
    "skip": SKIPS,
}
CASES = [(axis, name) for axis, reg in AXES.items() for name in reg.names()]
TOLERANCE = 1e-4


def _exported(spec: ArchSpec, heads: str = "last"):
    torch.manual_seed(0)
    model = build_model(spec).eval()
    model_bytes = export_onnx(model, spec.input_size, heads=heads)
    onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    return model, ort_session(model_bytes, threads=1)


@pytest.mark.parametrize("axis,name", CASES, ids=[f"{a}={n}" for a, n in CASES])
def test_every_registered_value_exports_and_matches_pytorch(axis: str, name: str) -> None:
    spec = ArchSpec(**TINY).replace(**{axis: name})
    model, session = _exported(spec)
    diffs = compare_with_torch(model, session, spec.input_size, batches=(1, 3))
    assert set(diffs) == {1, 3} and max(diffs.values()) <= TOLERANCE, diffs
    out = session.run(None, {"image": np.zeros((3, 3, 32, 32), np.float32)})
    assert [o.shape for o in out] == [(3, 3, 8, 8)]  # the batch axis is dynamic


def test_heads_all_exports_every_stack_and_last_only_the_last() -> None:
    spec = ArchSpec(**TINY).replace(stacks=2, intermediate_supervision=True)
    model, session = _exported(spec, heads="all")
    assert [o.name for o in session.get_outputs()] == ["heatmaps_0", "heatmaps_1"]
    assert max(compare_with_torch(model, session, 32, heads="all").values()) <= TOLERANCE
    x = torch.randn(2, 3, 32, 32)
    last = ort_session(export_onnx(model, 32), threads=1)
    assert [o.name for o in last.get_outputs()] == ["heatmaps"]
    with torch.no_grad():
        np.testing.assert_allclose(
            last.run(None, {"image": x.numpy()})[0], model(x)[-1].numpy(), atol=TOLERANCE
        )


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"opset": 9}, "opset: opset must be an integer in [13, 20]"),
        ({"heads": "first"}, "heads: heads must be one of last, all"),
    ],
)
def test_bad_export_arguments_are_config_errors(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        export_onnx(build_model(ArchSpec(**TINY)), 32, **kwargs)
    assert needle in str(err.value)


def test_a_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(
        ConfigError, match=r"onnxruntime is not installed: pip install 'softgate-nas\[onnx\]'"
    ):
        ort_providers("cpu")


def _launch(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_onnx_command_exports_checks_and_compares(tmp_path: Path) -> None:
    spec = ArchSpec(**TINY).replace(stacks=2)
    arch = tmp_path / "arch.yaml"
    arch.write_text(yaml.safe_dump(spec.to_dict()))
    torch.manual_seed(1)
    trained = build_model(spec)
    torch.save(
        {"model": trained.state_dict(), "arch": spec.to_dict(), "arch_id": spec.arch_id},
        tmp_path / "w.pt",
    )
    out = tmp_path / "net.onnx"
    res = _launch(
        "onnx", "--arch", str(arch), "--weights", str(tmp_path / "w.pt"), "--out", str(out)
    )
    assert res.returncode == 0, res.stderr
    assert "onnx.checker.check_model (full check): ok" in res.stdout and "batch 3" in res.stdout
    session = ort_session(out.read_bytes(), threads=1)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():  # the file holds the given weights, not the initial ones
        np.testing.assert_allclose(
            session.run(None, {"image": x.numpy()})[0],
            trained.eval()(x)[-1].numpy(),
            atol=TOLERANCE,
        )


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--arch", "no-such-arch"), "arch: no such file or preset"),
        (
            ("--arch", "bulat-sgsc-tiny", "--opset", "9"),
            "<arg>: --opset: must be between 13 and 20",
        ),
        (
            ("--arch", "bulat-sgsc-tiny", "--out", "no/such/folder/x.onnx"),
            "--out: folder 'no/such/folder' does not exist",
        ),
        (("--arch", "bulat-sgsc-tiny", "--input-size", "100"), "--input-size"),
        (("--arch", "bulat-sgsc-tiny", "--weights", "WEIGHTS"), "arch: checkpoint is for arch"),
    ],
)
def test_onnx_bad_input_exits_2_with_one_line(
    tmp_path: Path, monkeypatch, capsys, args: tuple, needle: str
) -> None:
    other = ArchSpec(**TINY)
    torch.save(
        {
            "model": build_model(other).state_dict(),
            "arch": other.to_dict(),
            "arch_id": other.arch_id,
        },
        tmp_path / "other.pt",
    )
    args = tuple(str(tmp_path / "other.pt") if a == "WEIGHTS" else a for a in args)
    out = args[args.index("--out") + 1] if "--out" in args else str(tmp_path / "x.onnx")
    rc, _, err = run_launch(["onnx", *args, "--out", out], tmp_path, monkeypatch, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err and not list(tmp_path.glob("*.onnx"))


# -- every preset, and outputs far from 1 ----------------------------------------------------------

FULL_SIZE = {"bulat-sgsc", "newell-hourglass"}  # 20-40 s each to export on one core: the slow job


@pytest.mark.parametrize(
    "preset",
    [pytest.param(p, marks=pytest.mark.slow) if p in FULL_SIZE else p for p in preset_names()],
)
def test_onnx_command_passes_its_own_check_on_every_preset(
    preset: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`launch.py onnx --arch PRESET` with its initial weights, at the smallest input size: the
    untrained nets' outputs reach 1e2 (proxy) to 1e11 (newell-hourglass), where float32 rounding
    alone exceeds any absolute limit; the check is relative to each output's scale."""
    import launch

    size = size_multiple(load_arch(preset).depth)
    out = tmp_path / "net.onnx"
    rc = launch.main(
        ["onnx", "--arch", preset, "--input-size", str(size), "--heads", "all", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == "" and out.is_file(), captured.out + captured.err
    assert "initial weights (seed 0)" in captured.out


def test_the_check_is_relative_to_outputs_larger_than_1() -> None:
    small, large = OutputDiff(1, "heatmaps", 5e-5, 0.8), OutputDiff(1, "heatmaps", 5e-3, 1e3)
    assert small.scaled == 5e-5 and large.scaled == pytest.approx(5e-6)
    assert OutputDiff(1, "h", 2e-4, 1e3).scaled < TOLERANCE < OutputDiff(1, "h", 2e-4, 1).scaled


def test_the_untrained_proxy_is_as_close_to_float64_in_ort_as_in_torch() -> None:
    """Why a relative check: the seeded bulat-sgsc-proxy's heatmaps are in the hundreds, ORT and
    PyTorch differ by ~1e-3, and ORT is no further from a float64 run than PyTorch's float32 is."""
    spec = load_arch("bulat-sgsc-proxy")
    torch.manual_seed(0)
    model = build_model(spec, input_size=32).eval()
    session = ort_session(export_onnx(model, 32), threads=1)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        f32 = model(x)[-1].numpy()
        f64 = model.double()(x.double())[-1].numpy()
    ort = session.run(None, {"image": x.numpy()})[0]
    assert np.abs(f64).max() > 10  # far from heatmap values: BatchNorm's initial statistics
    assert np.abs(ort - f64).max() <= 3 * np.abs(f32 - f64).max() + 1e-6


def test_a_failed_check_is_one_error_line_on_stderr_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import cli.onnx
    import launch

    monkeypatch.setattr(cli.onnx, "TOLERANCE", -1.0)  # any output fails it
    out = tmp_path / "net.onnx"
    rc = launch.main(["onnx", "--arch", "bulat-sgsc-tiny", "--input-size", "32", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1 and not out.exists()
    assert "error:" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: heatmaps at batch ")
    assert "nothing written" in lines[0]


# -- the onnxruntime latency backend ---------------------------------------------------------------------


def test_the_meter_measures_with_onnxruntime_and_caches_by_backend() -> None:
    arch = load_arch("bulat-sgsc-tiny").replace(input_size=32).to_dict()
    meter = LatencyMeter(warmup=2, runs=20, min_seconds=0.0, backend="onnxruntime")
    assert meter.thread_clock and meter.quiet is None  # one ORT thread on the CPU: the thread clock
    result = meter.measure(arch)
    assert set(result) == set(LATENCY_KEYS) and 0 < result["latency_p25_ms"] <= result["latency_ms"]
    assert list(meter.cache) == [(ArchSpec.from_dict(arch).arch_id, 32, "onnxruntime", "cpu", 1)]
    assert meter.measure(arch) is result  # cached: not measured again


def test_one_onnxruntime_thread_runs_every_kernel_on_the_calling_thread() -> None:
    # why the thread clock covers ORT with 1 thread: the process's whole CPU time is this thread's
    backend = latency_backend("onnxruntime")
    assert backend.thread_clock_covers("cpu", 1) and not backend.thread_clock_covers("cpu", 2)
    with backend.session(
        build_model(load_arch("bulat-sgsc-tiny")), 64, torch.device("cpu"), 1
    ) as session:
        assert session.threads == 1 and session.device == "cpu"
        session.infer()
        thread0, process0 = time.thread_time(), time.process_time()
        for _ in range(30):
            session.infer()
        thread, process = time.thread_time() - thread0, time.process_time() - process0
    assert thread >= 0.9 * process, (thread, process)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
    reason="this onnxruntime has a CUDA provider",
)
def test_onnxruntime_on_cuda_without_its_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no CUDAExecutionProvider"):
        ort_providers("cuda")


def test_a_study_picks_the_onnxruntime_backend() -> None:
    cfg = StudyConfig.from_dict(
        {**SMOKE, "latency": {**SMOKE["latency"], "backend": "onnxruntime"}}
    )
    assert cfg.latency.backend == "onnxruntime"
    with pytest.raises(ConfigError, match="latency.backend"):
        StudyConfig.from_dict({**SMOKE, "latency": {**SMOKE["latency"], "backend": "onnx"}})


def test_profile_with_the_onnxruntime_backend() -> None:
    res = _launch(
        "profile",
        "--arch",
        "bulat-sgsc-tiny",
        "--threads",
        "1",
        "--runs",
        "20",
        "--backend",
        "onnxruntime",
    )
    assert res.returncode == 0, res.stderr
    assert "backend onnxruntime" in res.stdout and "ORT_ENABLE_ALL" in res.stdout
    assert "onnxruntime threads 1" in res.stdout and "20 timed runs" in res.stdout
    bad = _launch("profile", "--arch", "bulat-sgsc-tiny", "--backend", "tensorrt")
    assert bad.returncode == 2 and "--backend: unknown latency backend 'tensorrt'" in bad.stderr
