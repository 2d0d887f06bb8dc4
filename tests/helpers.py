"""Small helpers shared by the test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import copy
import socket
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "studies/smoke.yaml").read_text())
# a 2-stack, width-16, depth-2 network at 32 px: trains in a second on synthetic data
TINY = {
    "version": 1,
    "stacks": 2,
    "width": 16,
    "depth": 2,
    "joints": 14,
    "input_size": 32,
    "intermediate_supervision": True,
    "block": "multibranch",
    "branch_split": ["1/2", "1/4", "1/4"],
    "gate": "channel",
    "gate_init": 1.0,
    "down": "maxpool",
    "up": "nearest",
    "fusion": "concat_conv3x3",
    "skip": "identity",
}


def study_file(tmp_path: Path, name: str, **changes) -> Path:
    """The smoke study under another name, with sections updated (dicts) or replaced (other values)."""
    d = copy.deepcopy(SMOKE)
    d["name"] = name
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key].update(value)
        else:
            d[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_launch(argv: list[str], tmp: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """`launch.main(argv)` in-process with `tmp` as working folder and its own latency cache:
    (exit code, stdout, stderr). A refusal needs no fresh interpreter, and a subprocess costs ~3 s
    of importing torch; argparse's own errors (SystemExit) count as their exit code."""
    import launch

    monkeypatch.chdir(tmp)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp.parent / f"{tmp.name}-cache"))
    try:
        rc = launch.main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err
