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
CELL_PX = 256  # each cell's height (a crop: its side), whatever the proxy's resolution


# -- the worker's side -----------------------------------------------------------------------------------
class KeepModel(Callback):
    """An engine callback that keeps a reference to the model it trains (for `preview_png`)."""

    def __init__(self) -> None:
        self.model: Any = None

    def on_epoch(self, engine: Any, metrics: dict) -> None:
        self.model = engine.model


def _skeleton(poses: Any, joints: int) -> Any:
    from trainers.draw import skeleton, skeleton_for_joints

    fmt = poses.meta.get("format")
    if fmt and len(poses.meta.get("joint_names") or []) == joints:
        return skeleton(fmt)
    return skeleton_for_joints(joints)


def _cell(image: Any, joints: Any, box: Any, height: int) -> tuple[Any, Any, Any]:
    """An original photo resized to `height` px, with its joints and crop box mapped along (pixel
    i's centre at i in both); the text is drawn after, at the cell's size."""
    from PIL import Image

    scale = height / image.height
    cell = image.resize((max(1, round(image.width * scale)), height), Image.Resampling.BILINEAR)

    def moved(v: Any) -> Any:
        return (v + 0.5) * scale - 0.5

    return cell, moved(joints), None if box is None else [moved(v) for v in box]


def _preview_cell(poses: Any, k: int, original: Any, joints: Any, conf: Any, skel: Any) -> Any:
    """Sample k drawn as predict draws it (trainers.draw.draw_prediction): on its original photo
    (CELL_PX high, the cropped square outlined) or, for a generated set or a photo not on this
    machine, on the crop enlarged to CELL_PX; the legend on the first cell only."""
    from PIL import Image

    from trainers.crop import original_to_crop
    from trainers.draw import draw_prediction
    from trainers.infer import crop_square

    size = poses.images.shape[1]
    if original is not None:
        try:
            with Image.open(original) as img:
                photo = img.convert("RGB")
            box = crop_square(poses.affine[k], size)
            cell, xy, box = _cell(photo, joints, box, CELL_PX)
            return draw_prediction(cell, xy, conf, skel, crop_box=box, legend=k == 0)
        except OSError as err:  # unreadable here: the crop instead
            log.warning("preview: %s not drawn on (%s); drawing the crop", original, err)
    crop = Image.fromarray(poses.images[k]).resize((CELL_PX, CELL_PX), Image.Resampling.NEAREST)
    xy = (original_to_crop(joints[None], poses.affine[k : k + 1])[0] + 0.5) * CELL_PX / size - 0.5
    return draw_prediction(crop, xy, conf, skel, legend=k == 0)


def preview_png(model: Any, val_set: Any, n: int = PREVIEW_IMAGES) -> bytes:
    """A PNG of `model`'s predicted poses on the first `n` validation images, side by side, each
    drawn as `launch.py predict` draws it (`_preview_cell`; legend, unsure joints faded): on the
    original photo for a data set of files, on the crop enlarged to CELL_PX px for a generated
    one (synthetic: 32 px crops become 256 px cells)."""
    from PIL import Image

    from trainers.engine import predict
    from trainers.infer import original_images

    poses = val_set.select(list(range(min(n, len(val_set)))))
    joints, confidences = predict(model, poses, device=next(model.parameters()).device)
    skel = _skeleton(poses, joints.shape[1])
    originals = original_images(poses)
    cells = [
        _preview_cell(poses, k, path, joints[k], confidences[k], skel)
        for k, path in enumerate(originals)
    ]
    sheet = Image.new("RGB", (sum(c.width for c in cells), CELL_PX), "white")
    x = 0
    for cell in cells:
        sheet.paste(cell, (x, 0))
        x += cell.width
    if any(p is not None for p in originals):  # photos: 256 colours, a third of the bytes (~150 kB)
        sheet = sheet.quantize(256, method=Image.Quantize.FASTOCTREE)
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
        spread = (
            f" (IQR {attrs['latency_p25_ms']:.3g}-{attrs['latency_p75_ms']:.3g} ms)"
            if "latency_p25_ms" in attrs and "latency_p75_ms" in attrs
            else ""
        )
        parts.append(f"latency {attrs['latency_ms']:.3g} ms{spread}")
    return "**cost** " + ", ".join(parts) if parts else "**cost** not measured"


def _curve_table(attrs: dict) -> list[str]:
    pck, loss = attrs.get("pck_curve") or [], attrs.get("loss_curve") or []
    if not pck:
        return ["no epoch trained"]
    rows = [
        f"| {i + 1} | {p:.4f} | {loss[i]:.5f} |" if i < len(loss) else f"| {i + 1} | {p:.4f} | |"
        for i, p in enumerate(pck)
    ]
    return ["| epoch | val PCK | train loss |", "|---|---|---|", *rows]


def reuse_lines(
    attrs: dict, links: dict[str, str] | None = None, page: str | None = None
) -> list[str]:
    """The note's paragraph for a trial that took an earlier trial's result (user attr
    `reused_from`): which trial trained the arch, and that trial's artifacts (`links`: file name
    -> dashboard URL) and page."""
    n, arch = attrs["reused_from"], attrs.get("arch_id", "?")
    text = (
        f"**reuse of trial {n}**: arch `{arch}` was trained in trial {n}; this trial took its "
        f"result and was not trained again, so the costs and curve below are trial {n}'s."
    )
    if links:
        text += " Its artifacts: " + ", ".join(f"[{name}]({url})" for name, url in links.items())
    else:
        text += f" Its artifacts (arch YAML, {PREVIEW_FILE}) are trial {n}'s"
    text += f" (on [trial {n}'s page]({page}))." if page else "."
    return [text, ""]


def trial_note(
    number: int,
    attrs: dict,
    outcome: str,
    objectives: dict[str, float] | None = None,
    links: dict[str, str] | None = None,
    page: str | None = None,
) -> str:
    """The trial's note in markdown: outcome, arch table, costs, per-epoch PCK and loss, objectives;
    for a reuse of an earlier trial's result (`reused_from`), which trial and its artifacts
    (`reuse_lines`)."""
    reused = "reused_from" in attrs
    heading = f"## Trial {number}: {outcome}"
    if reused and "reuse" not in outcome:
        heading += f" (reuse of trial {attrs['reused_from']})"
    lines = [heading, ""]
    if reused:
        lines += reuse_lines(attrs, links, page)
    if objectives:
        lines += [
            "**objectives** " + ", ".join(f"{k} = {_fmt(float(v))}" for k, v in objectives.items()),
            "",
        ]
    lines += [
        f"**arch** `{attrs.get('arch_id', '?')}`",
        "",
        *_arch_table(attrs.get("arch") or {}),
        "",
    ]
    lines += [_cost_line(attrs), "", "**proxy training**", "", *_curve_table(attrs)]
    if "images_per_s" in attrs:
        lines += [
            "",
            f"{_fmt(attrs.get('epochs'))} epoch(s), {attrs['images_per_s']:.0f} images/s, "
            f"trial wall time {attrs.get('wall_s', 0):.1f} s",
        ]
    return "\n".join(lines) + "\n"


def front_note(quiet: dict[str, dict]) -> str:
    """The study's note after a quiet re-measurement (search/remeasure.py): which latency decided
    the exported front, and per exported arch both values, so a reader of the dashboard's trial
    pages (in-study values) sees how far the decision moved them."""
    lines = [
        "## Exported front: latency decided by the quiet interleaved pass",
        "",
        "Inside the study each arch is timed once, beside training trials (`latency_ms`, the "
        "screening value in every trial's page). Before the export the front and every arch within "
        "the noise band of it were timed again in one process with no trial running, interleaved "
        "round-robin; those values (`latency_quiet_ms`, median and bootstrap interval) decided "
        "which archs are Pareto-optimal.",
        "",
        "| trial | arch | pck | in-study latency (ms) | quiet latency (ms) | interval (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for arch, q in sorted(quiet.items(), key=lambda kv: kv[1]["latency_quiet_ms"]):
        lines.append(
            f"| {q.get('trial', '?')} | `{arch}` | {_fmt(q.get('pck'))} | "
            f"{_fmt(q.get('latency_ms'))} | {_fmt(q['latency_quiet_ms'])} | "
            f"{_fmt(q.get('latency_quiet_low_ms'))}-{_fmt(q.get('latency_quiet_high_ms'))} |"
        )
    return "\n".join(lines) + "\n"


def save_front_note(study: Any, quiet: dict[str, dict]) -> None:
    """`front_note` as the study's optuna-dashboard note; a failure is logged, never raised."""
    try:
        from optuna_dashboard import save_note

        save_note(study, front_note(quiet))
    except Exception as err:  # the export stands without its note
        log.warning("study note not written: %s", err)


def original_links(study: Any, number: int) -> tuple[dict[str, str], str | None]:
    """(file name -> optuna-dashboard URL of each artifact of trial `number`, that trial's page
    in the dashboard); ({}, None) when the study has no such trial."""
    from optuna.artifacts import get_all_artifact_meta

    earlier = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if earlier is None:
        return {}, None
    storage = getattr(study, "rdb", None)  # search.storage.StoredStudy keeps its storage
    if storage is None:
        return {}, None
    study_id = storage.get_study_id_from_name(study.study_name)  # the ids in the dashboard's URLs
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    metas = get_all_artifact_meta(earlier, storage=storage)
    base = f"/artifacts/{study_id}/{trial_id}"
    links = {m.filename: f"{base}/{m.artifact_id}" for m in metas}
    return links, f"/dashboard/studies/{study_id}/trials?numbers={number}"


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

    def record(
        self,
        trial: Any,
        outcome: str,
        objectives: dict[str, float] | None = None,
        preview: bytes | None = None,
    ) -> None:
        """Note and artifacts of `trial` (an optuna.Trial, not yet told) from its stored user attrs.
        A trial that reused an earlier trial's result (user attr `reused_from`, set before this
        call) gets a note naming that trial and linking its artifacts, and uploads none."""
        if not (self.notes or self.artifacts):
            return
        try:
            attrs = trial.user_attrs
            reused = attrs.get("reused_from")
            if self.notes:
                from optuna_dashboard import save_note

                links, page = ({}, None) if reused is None else original_links(trial.study, reused)
                save_note(trial, trial_note(trial.number, attrs, outcome, objectives, links, page))
            if self.artifacts and reused is None:  # a reuse links its original's artifacts
                self._upload(trial, attrs, preview)
        except Exception as err:  # the dashboard's extras must never cost the study a trial
            log.warning("trial %s: dashboard note/artifacts not written: %s", trial.number, err)

    def _upload(self, trial: Any, attrs: dict, preview: bytes | None) -> None:
        from optuna.artifacts import upload_artifact

        with tempfile.TemporaryDirectory(prefix="softgate-artifacts-") as tmp:
            files: list[tuple[Path, str]] = []
            if attrs.get("arch"):  # loads again with `--arch FILE`
                files.append(
                    (
                        Path(tmp) / f"arch-{attrs.get('arch_id', trial.number)}.yaml",
                        "application/yaml",
                    )
                )
                files[-1][0].write_text(yaml.safe_dump(attrs["arch"], sort_keys=False))
            if preview:
                files.append((Path(tmp) / PREVIEW_FILE, "image/png"))
                files[-1][0].write_bytes(preview)
            for path, mimetype in files:
                upload_artifact(
                    artifact_store=self.store,
                    file_path=str(path),
                    study_or_trial=trial,
                    mimetype=mimetype,
                )
