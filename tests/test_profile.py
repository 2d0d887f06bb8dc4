"""FLOPs, latency statistics and the `launch.py profile` command (run as a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, run_launch
from torch import nn

from space.errors import ConfigError
from space.model import build_model
from space.profile import count_flops, count_params, measure_latency
from space.spec import load_arch

torch.set_num_threads(1)


def test_flops_count_a_multiply_add_as_two() -> None:
    # 3x3 conv 3->8 at 16x16, padding 1: 16*16 outputs * 8 channels * (3*3*3) multiply-adds * 2
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    assert count_flops(model, 16) == 16 * 16 * 8 * 27 * 2


def test_flops_on_meta_device_equal_real_model() -> None:
    spec = load_arch("bulat-sgsc-tiny")
    real = count_flops(build_model(spec), spec.input_size)
    with torch.device("meta"):
        meta = count_flops(build_model(spec), spec.input_size)
    assert real == meta > 0


def test_measure_latency_statistics_and_threads() -> None:
    model = build_model(load_arch("bulat-sgsc-tiny"))
    before = torch.get_num_threads()
    stats = measure_latency(model, 64, threads=1, warmup=2, runs=20)
    assert torch.get_num_threads() == before
    assert stats.runs == 20 and stats.threads == 1 and stats.device == "cpu"
    assert 0 < stats.p25_ms <= stats.median_ms <= stats.p75_ms
    assert stats.std_ms >= 0 and stats.cv == pytest.approx(stats.std_ms / stats.mean_ms)


def test_measure_latency_needs_twenty_runs() -> None:
    with pytest.raises(ConfigError, match="runs"):
        measure_latency(nn.Conv2d(3, 3, 1), 16, runs=5)


def _launch(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "launch.py", "profile", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_profile_command_prints_cost(tmp_path: Path) -> None:
    spec = load_arch("bulat-sgsc-tiny")
    res = _launch("--arch", "bulat-sgsc-tiny", "--threads", "1", "--runs", "20")
    assert res.returncode == 0, res.stderr
    assert f"{count_params(build_model(spec)):,}" in res.stdout
    assert "1 multiply-add = 2 FLOPs" in res.stdout and "torch threads 1" in res.stdout
    assert "20 timed runs" in res.stdout and "median" in res.stdout


@pytest.mark.parametrize(
    "content,args,needle",
    [
        ("version: 1\nwidth: 16\ngate: sigmoid\n", (), "gate: unknown value 'sigmoid'"),
        ("version: 1\nwidht: 16\n", (), "widht: unknown key"),
        ("width: [16\n", (), "not valid YAML"),
        ("version: 1\n", ("--runs", "5"), "--runs"),
        ("version: 1\n", ("--input-size", "100"), "--input-size"),
    ],
)
def test_profile_bad_input_exits_2_with_one_line(
    tmp_path: Path, monkeypatch, capsys, content: str, args: tuple, needle: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    rc, out, err = run_launch(["profile", "--arch", str(bad), *args], tmp_path, monkeypatch, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err and out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_profile_on_missing_cuda_is_a_user_error(capsys: pytest.CaptureFixture) -> None:
    import launch

    assert launch.main(["profile", "--arch", "bulat-sgsc-tiny", "--device", "cuda"]) == 2
    assert "--device: cuda requested but CUDA is not available" in capsys.readouterr().err
