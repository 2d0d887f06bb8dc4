"""The training engine on its own (callbacks, budgets, step guard), train's flag checks and joint counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, TINY, run_launch

import launch
from space.model import build_model
from space.spec import ArchSpec
from trainers.data import clear_memo, load_poses
from trainers.engine import Batcher, Callback, Engine, NonFiniteLossError


@pytest.fixture(scope="module")
def data():
    return load_poses("synthetic:24", "train", 32), load_poses("synthetic:8", "val", 32)


def make_engine(lr: float = 2e-3, **kw) -> tuple[Engine, ArchSpec]:
    torch.manual_seed(0)
    spec = ArchSpec.from_dict(TINY)
    model = build_model(spec)
    return Engine(
        model, spec, torch.optim.Adam(model.parameters(), lr=lr), torch.device("cpu"), **kw
    ), spec


class Recorder(Callback):
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, engine, loss):
        self.steps.append((engine.epoch, engine.steps, float(loss)))

    def on_epoch(self, engine, metrics):
        self.epochs.append(metrics)


def test_callbacks_see_every_step_and_every_epoch_with_its_metrics(data):
    torch.set_num_threads(1)
    engine, _ = make_engine()
    rec = Recorder()
    history = engine.run(
        Batcher(data[0], np.arange(24), 8, engine.device, None, True, 0),
        data[1],
        range(1, 3),
        callbacks=[rec],
    )
    assert [s[:2] for s in rec.steps] == [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]
    assert rec.epochs == history and [m["epoch"] for m in history] == [1, 2]
    for m, first in zip(history, (0, 3)):
        assert m["loss"] == pytest.approx(np.mean([s[2] for s in rec.steps[first : first + 3]]))
        assert 0 <= m["val"] <= 1 and len(m["per_joint"]) == 14
        assert m["metric"] == "pck@0.2" and m["lr"] == 2e-3 and m["images_per_s"] > 0
    assert (
        engine.steps == 6 and engine.seen == 48 and engine.scores["main"].mean == history[-1]["val"]
    )


def test_max_steps_counts_over_runs_and_the_cut_epoch_is_still_evaluated(data):
    engine, _ = make_engine()
    batches = Batcher(data[0], np.arange(24), 8, engine.device, None, False, 0)
    assert [m["steps"] for m in engine.run(batches, data[1], range(1, 100), max_steps=4)] == [3, 4]
    assert [m["steps"] for m in engine.run(batches, data[1], range(3, 100), max_steps=5)] == [5]


def test_the_step_guard_wraps_each_step_with_its_batch_and_each_evaluation(data):
    engine, _ = make_engine()
    events = []

    @contextmanager
    def guard():
        events.append("enter")
        yield
        events.append("exit")

    class Batches(Batcher):
        def batch(self, idx):
            events.append("batch")
            return super().batch(idx)

    engine.step_guard = guard
    engine.run(Batches(data[0], np.arange(16), 8, engine.device, None, True, 0), data[1], [1])
    # two steps, each making its batch inside the guard; the look for a third batch; the evaluation
    assert events == ["enter", "batch", "exit"] * 2 + ["enter", "exit"] * 2


def test_a_scheduler_steps_once_per_epoch_after_training(data):
    engine, _ = make_engine(lr=1e-3)
    engine.scheduler = torch.optim.lr_scheduler.StepLR(engine.optimizer, step_size=1, gamma=0.5)
    history = engine.run(
        Batcher(data[0], np.arange(8), 8, engine.device, None, False, 0), data[1], range(1, 4)
    )
    assert [m["lr"] for m in history] == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_a_diverging_loss_raises(data):
    engine, _ = make_engine(lr=1e30)
    with pytest.raises(NonFiniteLossError, match="epoch"):
        engine.run(
            Batcher(data[0], np.arange(24), 8, engine.device, None, False, 0), data[1], range(1, 4)
        )


# -- train / evaluate / profile: numeric flags --------------------------------------------------------------
def _launch(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--batch-size", "0", "must be at least 1"),
        ("--lr", "-1", "must be a positive number"),
        ("--lr", "inf", "must be a positive number"),
        ("--epochs", "0", "must be between 1 and"),
        ("--epochs", "10000000000", "must be between 1 and"),
        ("--workers", "-1", "must be between 0 and"),
        ("--input-size", "0", "must be between 16 and 4096"),
        ("--seed", "-1", "must be between 0 and"),
    ],
)
def test_train_refuses_out_of_range_numbers(tmp_path, monkeypatch, capsys, flag, value, needle):
    argv = ["train", "--arch", "bulat-sgsc-tiny", "--data", "synthetic:16", "--out", "run"]
    rc, out, err = run_launch([*argv, flag, value], tmp_path, monkeypatch, capsys)
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: <arg>: {flag}: {needle}"), err
    assert out == "" and not (tmp_path / "run").exists()


def test_a_refusal_in_a_real_process_is_one_line_exit_2(tmp_path):
    argv = ["--arch", "bulat-sgsc-tiny", "--data", "synthetic:16", "--epochs", "0", "--out", "run"]
    res = _launch(tmp_path, "train", *argv)
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.splitlines() == [
        "error: <arg>: --epochs: must be between 1 and 100000, got 0"
    ]


@pytest.mark.parametrize(
    "args, flag",
    [
        (("profile", "--runs", "5"), "--runs"),
        (("profile", "--threads", "0"), "--threads"),
        (
            ("evaluate", "--weights", "w.pt", "--data", "synthetic", "--input-size", "0"),
            "--input-size",
        ),
    ],
)
def test_profile_and_evaluate_refuse_out_of_range_numbers(
    tmp_path, monkeypatch, capsys, args, flag
):
    argv = [args[0], "--arch", "bulat-sgsc-tiny", *args[1:]]
    rc, _, err = run_launch(argv, tmp_path, monkeypatch, capsys)
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: <arg>: {flag}: must be ")


# -- joint counts -------------------------------------------------------------------------------------------
def write_mpii(root: Path, n: int = 12) -> Path:
    """A tiny MPII-style JSON list (16 joints) with real JPEGs: the first 8 train, the rest val."""
    from PIL import Image

    rng = np.random.default_rng(0)
    entries = []
    for i in range(n):
        name = f"{i:09d}.jpg"
        arr = rng.integers(0, 255, (110, 120, 3), dtype=np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / "images" / name)
        part = np.stack([rng.uniform(30, 90, 16), rng.uniform(30, 90, 16), np.ones(16)], -1)
        entries.append(
            {
                "img_paths": name,
                "joint_self": part.tolist(),
                "objpos": [60.0, 55.0],
                "scale_provided": 0.5,
                "isValidation": float(i >= 8),
                "dataset": "MPI",
                "img_width": 120,
                "img_height": 110,
            }
        )
    path = root / "mpii_annotations.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture()
def mpii(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp_path / "cache"))
    clear_memo()
    yield str(write_mpii(tmp_path / "mpii"))
    clear_memo()


def test_train_builds_heads_for_the_datas_joints_and_evaluate_checks_them(tmp_path, mpii, capsys):
    torch.set_num_threads(1)
    arch = tmp_path / "tiny.yaml"
    arch.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    common = ["--arch", str(arch), "--data", mpii, "--device", "cpu"]
    assert (
        launch.main(["train", *common, "--out", str(out), "--epochs", "1", "--batch-size", "4"])
        == 0
    )
    err = capsys.readouterr().err
    assert "the data has 16 joints, the arch 14: building the heads for 16 joints" in err
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["arch"]["joints"] == 16 and best["model"]["heads.0.weight"].shape[0] == 16
    # resuming with the same 14-joint arch continues the 16-joint run
    assert (
        launch.main(
            ["train", *common, "--out", str(out), "--epochs", "2", "--batch-size", "4", "--resume"]
        )
        == 0
    )
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    # the same arch's 16-joint checkpoint scores on MPII; on 14-joint data it is refused
    assert (
        launch.main(["evaluate", *common, "--weights", str(out / "best.pt"), "--split", "val"]) == 0
    )
    assert (
        len(json.loads((out / "best.eval-val.json").read_text())["metrics"]["main"]["per_joint"])
        == 16
    )
    capsys.readouterr()
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                str(arch),
                "--weights",
                str(out / "best.pt"),
                "--data",
                "synthetic:8",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "e.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "joints: the weights predict 16 joints but synthetic:8 (test) has 14" in err[0]
    )
    assert not (tmp_path / "e.json").exists()


def test_evaluate_refuses_14_joint_weights_on_16_joint_data(tmp_path, mpii, capsys):
    spec = ArchSpec.from_dict(TINY)
    weights = tmp_path / "w.pt"
    torch.save(build_model(spec).state_dict(), weights)
    arch = tmp_path / "tiny.yaml"
    arch.write_text(yaml.safe_dump(TINY))
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                str(arch),
                "--weights",
                str(weights),
                "--data",
                mpii,
                "--split",
                "val",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the weights predict 14 joints but" in err[0] and "has 16" in err[0]
