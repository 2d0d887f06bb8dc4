"""Small helpers shared by the test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import copy
import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

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
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp.parent / f"{tmp.name}-cache"))
    return call_launch(argv, capsys)


def call_launch(argv: list[str], capsys) -> tuple[int, str, str]:
    """`launch.main(argv)` in-process, where the test already chose the folder: (exit code,
    stdout, stderr)."""
    import launch

    try:
        rc = launch.main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/NAME.py as a module (benchmarks/ is not a package the tests import from); it is
    registered in sys.modules first, where its dataclasses look their module up."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def paper_arch(width: int, **shape) -> dict:
    """The paper's design as an ArchSpec dict: 1 stack, depth 3, 64 px, unless `shape` says."""
    from space.references import project_reference

    base = {"stacks": 1, "depth": 3, "joints": 14, "input_size": 64, "width": width}
    return project_reference(base | shape, "paper")


def logged_training(
    arch: dict, role: str, rec: dict, val: float, test: float = 0.0, seed: int = 0
) -> dict:
    """A benchmarks/logs/front_vs_family.jsonl line: one finished training of `arch` under `rec`."""
    from benchmarks.front_vs_family import job_key
    from space.spec import ArchSpec

    arch_id = ArchSpec.from_dict(arch).arch_id
    return {"kind": "training", "key": job_key(arch_id, seed, rec), "arch_id": arch_id,
            "seed": seed, "role": role, "arch": arch, "val": val, "test": test,
            "metric_name": "pck@0.2"}  # fmt: skip
