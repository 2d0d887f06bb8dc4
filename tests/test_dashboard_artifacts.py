"""Each trial's optuna-dashboard note and artifacts (search/artifacts.py): written by a real smoke
study (real Ray on loopback, real SQLite), read back through optuna_dashboard's and optuna's own
APIs and downloaded from `launch.py dashboard` over HTTP; and the `dashboard:` study key turns them off.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import REPO, TINY, free_port, study_file
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import TrialState
from optuna_dashboard import get_note
from PIL import Image

from search.artifacts import (
    CELL_PX,
    PREVIEW_FILE,
    TrialExtras,
    preview_png,
    reuse_lines,
    trial_note,
)
from space.spec import ArchSpec, load_arch

optuna.logging.set_verbosity(optuna.logging.WARNING)
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": str(REPO),
    "RAY_USAGE_STATS_ENABLED": "0",
}
ATTRS = {
    "arch": TINY,
    "arch_id": "abc123",
    "params": 12345,
    "flops": 2_000_000,
    "latency_ms": 1.5,
    "latency_p25_ms": 1.4,
    "latency_p75_ms": 1.6,
    "pck_curve": [0.1, 0.25],
    "loss_curve": [0.04, 0.03],
    "epochs": 2,
    "images_per_s": 90.0,
    "wall_s": 12.0,
}


def run_study(tmp_path: Path, name: str, **changes) -> optuna.Study:
    path = study_file(tmp_path, name, trials=2, **changes)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "--study", str(path), "--out", str(out)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def live_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.Trial:
    return optuna.Trial(study, frozen._trial_id)  # get_note reads a Trial's note


def artifacts_of(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> dict[str, str]:
    return {
        m.filename: m.artifact_id for m in get_all_artifact_meta(frozen, storage=study._storage)
    }


def check_png(data: bytes, images: int = 4) -> None:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (CELL_PX * images, CELL_PX)


# -- a real study ------------------------------------------------------------------------------------------
@pytest.mark.slow  # 20-60 s: the fast suite stays under 10 min on 2 cores
def test_smoke_study_leaves_notes_and_artifacts_the_dashboard_serves(tmp_path: Path) -> None:
    study = run_study(tmp_path, "dash-on")
    store = FileSystemArtifactStore(str(tmp_path / "run" / "artifacts"))
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        note = get_note(live_trial(study, t))
        assert note.startswith(f"## Trial {t.number}: COMPLETE") and t.user_attrs["arch_id"] in note
        assert f"| width | {t.user_attrs['arch']['width']} |" in note
        assert f"pck = {t.values[0]:.4g}" in note and "| epoch | val PCK | train loss |" in note
        assert len(t.user_attrs["loss_curve"]) == t.user_attrs["epochs"]
        files = artifacts_of(study, t)
        assert set(files) == {f"arch-{t.user_attrs['arch_id']}.yaml", PREVIEW_FILE}
        download_artifact(
            artifact_store=store,
            file_path=str(tmp_path / "a.yaml"),
            artifact_id=files[f"arch-{t.user_attrs['arch_id']}.yaml"],
        )
        assert load_arch(str(tmp_path / "a.yaml")).arch_id == t.user_attrs["arch_id"]
        (tmp_path / "a.yaml").unlink()
    t = trials[0]
    served = fetch_from_dashboard(tmp_path, study, t, artifacts_of(study, t)[PREVIEW_FILE])
    check_png(served)


def fetch_from_dashboard(
    tmp_path: Path, study: optuna.Study, trial: optuna.trial.FrozenTrial, artifact_id: str
) -> bytes:
    """The artifact's bytes as `launch.py dashboard` (artifact store found by itself) serves them."""
    port = free_port()
    cmd = [
        sys.executable,
        str(REPO / "launch.py"),
        "dashboard",
        "--study",
        study.study_name,
        "--out",
        str(tmp_path / "run"),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/artifacts/{study._study_id}/{trial._trial_id}/{artifact_id}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    assert resp.headers["Content-Type"] == "image/png"
                    return resp.read()
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"dashboard did not serve {url}: {proc.poll()=}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_the_study_key_turns_notes_and_artifacts_off(tmp_path: Path) -> None:
    study = run_study(tmp_path, "dash-off", dashboard={"notes": False, "artifacts": False})
    for t in study.get_trials():
        assert t.state == TrialState.COMPLETE
        assert get_note(live_trial(study, t)) == "" and artifacts_of(study, t) == {}
    assert not (tmp_path / "run" / "artifacts").exists()
    assert study.user_attrs["config"]["dashboard"] == {
        "notes": False,
        "artifacts": False,
        "artifact_dir": None,
    }


# -- the pieces, on a real SQLite storage ------------------------------------------------------------------
def running_trial(tmp_path: Path) -> tuple[optuna.Study, optuna.Trial]:
    from search.export import open_study

    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "s")  # keeps its storage, as the runner's
    trial = study.ask()
    for key, value in ATTRS.items():
        trial.set_user_attr(key, value)
    return study, trial


def test_extras_write_note_and_artifacts_before_the_tell(tmp_path: Path) -> None:
    study, trial = running_trial(tmp_path)
    TrialExtras(True, True, tmp_path / "store").record(
        trial, "COMPLETE", {"pck": 0.25}, b"\x89PNG fake"
    )
    study.tell(trial, 0.25)
    assert get_note(trial).startswith("## Trial 0: COMPLETE")
    files = artifacts_of(study, study.trials[0])
    assert set(files) == {"arch-abc123.yaml", PREVIEW_FILE}
    store = FileSystemArtifactStore(str(tmp_path / "store"))
    download_artifact(
        artifact_store=store, file_path=str(tmp_path / "p.png"), artifact_id=files[PREVIEW_FILE]
    )
    assert (tmp_path / "p.png").read_bytes() == b"\x89PNG fake"
    download_artifact(
        artifact_store=store,
        file_path=str(tmp_path / "a.yaml"),
        artifact_id=files["arch-abc123.yaml"],
    )
    assert yaml.safe_load((tmp_path / "a.yaml").read_text()) == TINY


@pytest.mark.parametrize("notes,artifacts", [(False, False), (True, False), (False, True)])
def test_extras_off_write_nothing_of_that_kind(
    tmp_path: Path, notes: bool, artifacts: bool
) -> None:
    study, trial = running_trial(tmp_path)
    TrialExtras(notes, artifacts, tmp_path / "store").record(
        trial, "COMPLETE", {"pck": 0.25}, b"png"
    )
    assert (get_note(trial) != "") == notes
    assert bool(artifacts_of(study, study.trials[0])) == artifacts
    assert (tmp_path / "store").exists() == artifacts


def test_a_failing_store_costs_the_artifacts_not_the_trial(tmp_path: Path) -> None:
    study, trial = running_trial(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    TrialExtras(True, True, tmp_path / "file" / "store").record(
        trial, "COMPLETE", {"pck": 0.25}, b"png"
    )
    study.tell(trial, 0.25)
    assert study.trials[0].state == TrialState.COMPLETE and get_note(trial) != ""


def test_note_lists_arch_costs_curves_and_objectives() -> None:
    note = trial_note(3, ATTRS, "COMPLETE", {"pck": 0.25, "latency_ms": 1.5})
    assert note.splitlines()[0] == "## Trial 3: COMPLETE"
    assert "**objectives** pck = 0.25, latency_ms = 1.5" in note
    assert (
        "| gate | channel |" in note
        and "| branch_split | 1/2, 1/4, 1/4 |" in note
        and "version" not in note
    )
    assert "params 0.012 M, FLOPs 2.00 M, latency 1.5 ms (IQR 1.4-1.6 ms)" in note
    assert "| 1 | 0.1000 | 0.04000 |" in note and "| 2 | 0.2500 | 0.03000 |" in note
    failed = trial_note(4, {"arch": TINY, "arch_id": "x"}, "FAIL (NaN loss)")
    assert "FAIL (NaN loss)" in failed and "not measured" in failed and "no epoch trained" in failed


def test_preview_png_draws_the_first_val_images() -> None:
    import torch

    from space.model import build_model
    from trainers.data import load_poses

    torch.manual_seed(0)
    val = load_poses("synthetic", "val", 32, subset=8, seed=0)
    model = build_model(ArchSpec.from_dict(TINY)).eval()
    png = preview_png(model, val)
    check_png(png)  # 32 px crops drawn at CELL_PX = 256 px
    assert CELL_PX >= 256
    assert preview_png(model, val) == png  # the same images each time


def test_the_searcher_notes_pruned_and_failed_trials_too(tmp_path: Path) -> None:
    """The driver's side without Ray: StorageSearcher records every outcome before it tells."""
    from search.config import StudyConfig
    from search.study import make_searcher, prepare_study

    cfg = StudyConfig.load("smoke").with_overrides(trials=3, out=str(tmp_path))
    study = prepare_study(cfg, resume=False)
    searcher = make_searcher(study, cfg, cfg.space, printer=lambda s: None)
    try:
        for tid in ("done", "pruned", "failed"):
            assert isinstance(searcher.suggest(tid), dict)
        attrs = '{"pck": 0.5, "latency_ms": 2.0, "pck_curve": [0.5], "loss_curve": [0.02]}'
        searcher.on_trial_complete(
            "done", {"final": True, "attrs_json": attrs, "preview_png": "iVBORw0K"}
        )
        searcher.on_trial_result("pruned", {"pck": 0.1, "epoch": 1})
        searcher.on_trial_complete("pruned", {"pck": 0.1, "epoch": 1})
        searcher.on_trial_complete(
            "failed", {"final": True, "fail_reason": "NaN loss", "attrs_json": "{}"}
        )
    finally:
        searcher.close()
    done, pruned, failed = study.get_trials()
    assert [t.state for t in (done, pruned, failed)] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
    ]
    notes = [get_note(live_trial(study, t)).splitlines()[0] for t in (done, pruned, failed)]
    assert notes == [
        "## Trial 0: COMPLETE",
        "## Trial 1: PRUNED (ASHA) at epoch 1",
        "## Trial 2: FAIL (NaN loss)",
    ]
    assert set(artifacts_of(study, done)) == {
        f"arch-{done.user_attrs['arch_id']}.yaml",
        PREVIEW_FILE,
    }
    for t in (pruned, failed):  # no trained model: the arch only
        assert set(artifacts_of(study, t)) == {f"arch-{t.user_attrs['arch_id']}.yaml"}
    assert (tmp_path / "artifacts").is_dir()


# -- a trial that reused an earlier result; predictions a person can judge -------------------------
def test_a_reuse_note_names_the_trial_that_trained_the_arch_and_links_its_artifacts() -> None:
    links = {"arch-abc123.yaml": "/artifacts/1/3/aa", PREVIEW_FILE: "/artifacts/1/3/bb"}
    note = trial_note(
        5,
        ATTRS | {"reused_from": 2},
        "COMPLETE",
        {"pck": 0.25},
        links,
        "/dashboard/studies/1/trials?numbers=2",
    )
    assert note.splitlines()[0] == "## Trial 5: COMPLETE (reuse of trial 2)"
    assert "**reuse of trial 2**: arch `abc123` was trained in trial 2" in note
    assert f"[{PREVIEW_FILE}](/artifacts/1/3/bb)" in note
    assert "[arch-abc123.yaml](/artifacts/1/3/aa)" in note
    assert "[trial 2's page](/dashboard/studies/1/trials?numbers=2)" in note
    assert "trial 2's" in reuse_lines({"reused_from": 2})[0]  # without links: named, not linked
    assert "reuse" not in trial_note(3, ATTRS, "COMPLETE")


def test_extras_note_a_reuse_with_the_original_trials_artifacts(tmp_path: Path) -> None:
    study, first = running_trial(tmp_path)
    extras = TrialExtras(True, True, tmp_path / "store")
    extras.record(first, "COMPLETE", {"pck": 0.25}, b"\x89PNG fake")
    study.tell(first, 0.25)
    again = study.ask()
    for key, value in ATTRS.items():
        again.set_user_attr(key, value)
    again.set_user_attr("reused_from", 0)
    extras.record(again, "COMPLETE", {"pck": 0.25})  # what StorageSearcher._reuse should call
    study.tell(again, 0.25)
    note = get_note(again)
    assert note.startswith("## Trial 1: COMPLETE (reuse of trial 0)")
    original = study.trials[0]
    for name, artifact_id in artifacts_of(study, original).items():
        study_id = study.rdb.get_study_id_from_name("s")
        assert f"[{name}](/artifacts/{study_id}/{study.trial_id(0)}/{artifact_id})" in note
    assert artifacts_of(study, study.trials[1]) == {}  # nothing uploaded twice


def _lspet_val_carved(root: Path) -> str:
    """A 1040-person LSPET joints.mat (train = 40: val_carved = its last 4) and those 4 images."""
    import numpy as np
    import scipy.io

    rng = np.random.default_rng(0)
    j = np.concatenate([rng.uniform(8, 40, (1040, 14, 2)), np.ones((1040, 14, 1))], -1)
    root.mkdir()
    scipy.io.savemat(root / "joints.mat", {"joints": j.transpose(1, 2, 0)})
    (root / "images").mkdir()
    for i in range(36, 40):
        image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"im{i + 1:05d}.jpg")
    return str(root)


def test_preview_draws_real_data_on_the_original_photos(tmp_path: Path) -> None:
    import torch

    from space.model import build_model
    from trainers.data import load_poses

    data = _lspet_val_carved(tmp_path / "lspet")
    val = load_poses(data, "val_carved", 32, cache_dir=tmp_path / "cache")
    assert val.names == [f"im{i:05d}.jpg" for i in range(37, 41)]
    torch.manual_seed(0)
    model = build_model(ArchSpec.from_dict(TINY)).eval()
    image = Image.open(io.BytesIO(preview_png(model, val)))
    width = round(48 * CELL_PX / 40)  # each 48 x 40 photo, CELL_PX high
    assert image.format == "PNG" and image.size == (4 * width, CELL_PX)
    (tmp_path / "lspet" / "images" / "im00038.jpg").unlink()  # not on this machine: the crop
    image = Image.open(io.BytesIO(preview_png(model, val)))
    assert image.size == (3 * width + CELL_PX, CELL_PX)
