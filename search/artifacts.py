"""What each trial leaves for optuna-dashboard: a markdown note and two artifacts.

The worker (search/trial.py) has the trained model and the validation images: it draws the model's
predictions on the first `PREVIEW_IMAGES` validation images (the same images for every trial) and
sends the PNG with its final result (`PREVIEW_KEY`, base64). The driver (search/searcher.py), which
writes every trial's attrs, then writes the note (`optuna_dashboard.save_note`) and uploads the
arch YAML and that PNG (`optuna.artifacts.upload_artifact`) into the study's artifact store, before
it tells the trial (optuna refuses artifacts on a finished trial). Nothing here fails a trial: a
write that goes wrong is logged and the study goes on.
"""
from __future__ import annotations

import base64
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import yaml

from trainers.engine import Callback

log = logging.getLogger("softgate.study")

PREVIEW_IMAGES = 4  # the first N validation images, drawn with each trial's predictions
PREVIEW_KEY = "preview_png"  # the worker's result key for the PNG (base64 text)
PREVIEW_FILE = "predictions.png"
CELL_PX = 128  # each crop is drawn at this size, whatever the proxy's resolution


# -- the worker's side -----------------------------------------------------------------------------------
class KeepModel(Callback):
    """An engine callback that keeps a reference to the model it trains (for `preview_png`)."""

    def __init__(self) -> None:
        self.model: Any = None

    def on_epoch(self, engine: Any, metrics: dict) -> None:
        self.model = engine.model


def predicted_crops(model: Any, poses: Any) -> tuple[Any, Any]:
    """The model's joints (N, J, 2) in the crops' own pixels (`poses.images`) and their confidences (N, J)."""
    import numpy as np

    from trainers.engine import predict

    device = next(model.parameters()).device
    pred, confidences = predict(model, poses, device=device)  # original image pixels
    ones = np.ones(pred.shape[:2] + (1,), dtype=np.float32)
    return np.einsum("nij,nkj->nki", poses.affine, np.concatenate([pred, ones], axis=-1)), confidences


def _skeleton(poses: Any, joints: int) -> Any:
    from trainers.draw import skeleton, skeleton_for_joints

    fmt = poses.meta.get("format")
    if fmt and len(poses.meta.get("joint_names") or []) == joints:
        return skeleton(fmt)
    return skeleton_for_joints(joints)


def preview_png(model: Any, val_set: Any, n: int = PREVIEW_IMAGES) -> bytes:
    """A PNG of `model`'s predicted poses on the first `n` validation images, side by side, each
    crop drawn at CELL_PX (trainers.draw.draw_pose; unsure joints faded). About 30 kB, 10 ms."""
    from PIL import Image

    from trainers.draw import draw_pose

    poses = val_set.select(list(range(min(n, len(val_set)))))
    joints, confidences = predicted_crops(model, poses)
    skel = _skeleton(poses, joints.shape[1])
    scale = CELL_PX / poses.images.shape[1]
    sheet = Image.new("RGB", (CELL_PX * len(joints), CELL_PX), "white")
    for i, (image, xy, conf) in enumerate(zip(poses.images, joints, confidences)):
        # nearest: the pixels the network saw, and a PNG a third the size of a smoothed one
        cell = Image.fromarray(image).resize((CELL_PX, CELL_PX), Image.Resampling.NEAREST)
        # pixel i's centre is at i in both the crop and the cell
        sheet.paste(draw_pose(cell, (xy + 0.5) * scale - 0.5, conf, skel.limbs, skel.sides,
                              joint_sides=skel.joint_sides), (i * CELL_PX, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=1)  # 4x faster than the default 6, ~5 % larger
    return buffer.getvalue()


def encode_preview(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def decode_preview(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None


# -- the driver's side: the note -------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _arch_table(arch: dict) -> list[str]:
    rows = [f"| {k} | {_fmt(v)} |" for k, v in arch.items() if k != "version"]
    return ["| design choice | value |", "|---|---|", *rows]


def _cost_line(attrs: dict) -> str:
    parts = []
    if "params" in attrs:
        parts.append(f"params {attrs['params'] / 1e6:.3f} M")
    if "flops" in attrs:
        parts.append(f"FLOPs {attrs['flops'] / 1e6:.2f} M")
    if "latency_ms" in attrs:
        spread = (f" (IQR {attrs['latency_p25_ms']:.3g}-{attrs['latency_p75_ms']:.3g} ms)"
                  if "latency_p25_ms" in attrs and "latency_p75_ms" in attrs else "")
        parts.append(f"latency {attrs['latency_ms']:.3g} ms{spread}")
    return "**cost** " + ", ".join(parts) if parts else "**cost** not measured"


def _curve_table(attrs: dict) -> list[str]:
    pck, loss = attrs.get("pck_curve") or [], attrs.get("loss_curve") or []
    if not pck:
        return ["no epoch trained"]
    rows = [f"| {i + 1} | {p:.4f} | {loss[i]:.5f} |" if i < len(loss) else f"| {i + 1} | {p:.4f} | |"
            for i, p in enumerate(pck)]
    return ["| epoch | val PCK | train loss |", "|---|---|---|", *rows]


def trial_note(number: int, attrs: dict, outcome: str, objectives: dict[str, float] | None = None) -> str:
    """The trial's note in markdown: outcome, arch table, costs, per-epoch PCK and loss, objectives."""
    lines = [f"## Trial {number}: {outcome}", ""]
    if objectives:
        lines += ["**objectives** " + ", ".join(f"{k} = {_fmt(float(v))}" for k, v in objectives.items()), ""]
    lines += [f"**arch** `{attrs.get('arch_id', '?')}`", "", *_arch_table(attrs.get("arch") or {}), ""]
    lines += [_cost_line(attrs), "", "**proxy training**", "", *_curve_table(attrs)]
    if "images_per_s" in attrs:
        lines += ["", f"{_fmt(attrs.get('epochs'))} epoch(s), {attrs['images_per_s']:.0f} images/s, "
                      f"trial wall time {attrs.get('wall_s', 0):.1f} s"]
    return "\n".join(lines) + "\n"


# -- the driver's side: writing them ---------------------------------------------------------------------
class TrialExtras:
    """Writes each finished trial's note and artifacts into the storage and the artifact store."""

    def __init__(self, notes: bool, artifacts: bool, artifact_dir: Path) -> None:
        self.notes, self.artifacts, self.artifact_dir = notes, artifacts, artifact_dir
        self._store: Any = None

    @property
    def store(self) -> Any:
        """The FileSystemArtifactStore, its folder made at the first upload (not before a trial ends)."""
        if self._store is None:
            from optuna.artifacts import FileSystemArtifactStore

            self.artifact_dir.mkdir(parents=True, exist_ok=True)
            self._store = FileSystemArtifactStore(str(self.artifact_dir))
        return self._store

    @classmethod
    def from_config(cls, cfg: Any) -> TrialExtras:
        """From a `search.config.StudyConfig` (its `dashboard` section and `artifact_dir`)."""
        return cls(cfg.dashboard.notes, cfg.dashboard.artifacts, cfg.artifact_dir)

    def record(self, trial: Any, outcome: str, objectives: dict[str, float] | None = None,
               preview: bytes | None = None) -> None:
        """Note and artifacts of `trial` (an optuna.Trial, not yet told) from its stored user attrs."""
        if not (self.notes or self.artifacts):
            return
        try:
            attrs = trial.user_attrs
            if self.notes:
                from optuna_dashboard import save_note

                save_note(trial, trial_note(trial.number, attrs, outcome, objectives))
            if self.artifacts:
                self._upload(trial, attrs, preview)
        except Exception as err:  # the dashboard's extras must never cost the study a trial
            log.warning("trial %s: dashboard note/artifacts not written: %s", trial.number, err)

    def _upload(self, trial: Any, attrs: dict, preview: bytes | None) -> None:
        from optuna.artifacts import upload_artifact

        with tempfile.TemporaryDirectory(prefix="softgate-artifacts-") as tmp:
            files: list[tuple[Path, str]] = []
            if attrs.get("arch"):  # loads again with `--arch FILE`
                files.append((Path(tmp) / f"arch-{attrs.get('arch_id', trial.number)}.yaml", "application/yaml"))
                files[-1][0].write_text(yaml.safe_dump(attrs["arch"], sort_keys=False))
            if preview:
                files.append((Path(tmp) / PREVIEW_FILE, "image/png"))
                files[-1][0].write_bytes(preview)
            for path, mimetype in files:
                upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=trial,
                                mimetype=mimetype)
