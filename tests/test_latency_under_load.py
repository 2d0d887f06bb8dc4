"""benchmarks/latency_under_load.py runs end to end: idle, loaded and paused rows, trainers really trained."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import REPO


@pytest.mark.slow  # 20-60 s: the fast suite stays under 10 min on 2 cores
@pytest.mark.parametrize(
    "timing", [["--clock", "wall"], ["--clock", "auto", "--backend", "onnxruntime"]]
)
def test_prints_idle_loaded_and_paused_latency(timing: list[str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/latency_under_load.py"),
            "--arch",
            "bulat-sgsc-tiny",
            "--threads",
            "1",
            "--trainers",
            "1",
            "--repeats",
            "2",
            "--min-seconds",
            "0.05",
            *timing,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert int(re.search(r"\((\d+) proxies trained meanwhile\)", out).group(1)) >= 1
    rows = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(idle|loaded|paused)\s+([\d.]+)", out, re.M)
    }
    assert set(rows) == {"idle", "loaded", "paused"} and all(v > 0 for v in rows.values())
    assert ("thread CPU time" in out) == ("auto" in timing)
