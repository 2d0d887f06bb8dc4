"""Full training of one architecture (checkpoints, resume, best model); scoring the saved weights
is trainers/evaluate.py.

Checkpoints hold only tensors and plain Python containers, so they load with
`torch.load(path, weights_only=True)`:

    last.pt  {"model", "optimizer", "scheduler", "scaler", "epoch", "best_score", "best_epoch",
              "rng": {"torch", "order", "augment", "cuda"}, "arch", "arch_id", "input_size", "data", "history"}
    best.pt  {"model", "arch", "arch_id", "input_size", "epoch", "score", "metric"}
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from space.errors import ConfigError, one_line
from space.guard import check_memory
from space.model import build_model, validate_input_size
from space.profile import resolve_device
from space.spec import ArchSpec
from trainers.data import PoseSet, load_poses, selection_note
from trainers.engine import Batcher, Callback, Engine, NonFiniteLossError
from trainers.io import load_checkpoint, save_json, save_torch
from trainers.proxy import check_input_size
from trainers.weights import arch_mismatch, load_model, load_state, load_weights  # noqa: F401

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.json"
RESUME_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "epoch",
    "best_score",
    "best_epoch",
    "rng",
    "history",
)
HISTORY_KEYS = ("epoch", "loss", "val", "metric", "per_joint", "lr", "images_per_s", "epoch_s")


def fit(
    spec: ArchSpec,
    data: str,
    out: str | Path,
    *,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 2.5e-4,
    input_size: int | None = None,
    resume: bool = False,
    device: str | None = None,
    skip_bad: bool = False,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    train_split: str = "train",
    val_split: str = "val",
    announce: Callable[[str], None] | None = None,
) -> dict:
    """Train `spec` on `data` for `epochs`, checkpointing into `out` after every epoch; returns metrics.json's content.

    The heads are built for the data's joint count (see `match_joints`); Adam with a cosine schedule over
    `epochs`, the proxy's augmentation; best.pt is chosen on `val_split` (train and finalize pass
    the carved splits of `trainers.data.selection_splits` where val is the test split; resuming with
    another val split is refused; `announce` gets `trainers.data.selection_note`'s line once every
    input is checked, before the first epoch). Raises NonFiniteLossError
    when the run diverges."""
    out = Path(out)
    size = input_size or spec.input_size
    ckpt = _checkpoint_to_resume(out, resume)
    if ckpt is not None:  # before the data is read
        _check_selection(ckpt, val_split, out / LAST)
    dev = resolve_device(device)
    _check_sizes(spec, size, batch_size, dev)  # before the data
    train, val = _load_data(
        data, size, seed=seed, skip_bad=skip_bad, workers=workers, splits=(train_split, val_split)
    )
    spec = match_joints(spec, train)
    check_input_size(spec, train, size)
    if ckpt is not None:
        _check_resumable(ckpt, spec, size, out / LAST)

    torch.manual_seed(seed)
    engine = _new_engine(spec, size, dev, lr=lr, epochs=epochs, batch_size=batch_size)
    batches = Batcher(train, np.arange(len(train.images)), batch_size, dev, None, True, seed)
    saver = Checkpointer(out, spec, size, data, epochs, batches, val_split=val_split)
    start_epoch = 0 if ckpt is None else _restore(ckpt, engine, batches, epochs, saver)
    if announce is not None:  # every input checked, the checkpoint restored
        announce(selection_note(data, val_split))
    bar = Progress(epochs, start_epoch, len(batches), saver, enabled=progress)
    try:
        engine.run(batches, val, range(start_epoch + 1, epochs + 1), callbacks=[saver, bar])
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"{err}; last good checkpoint: {out / LAST}") from None
    finally:
        bar.close()
    return saver.summary()


def _check_sizes(spec: ArchSpec, size: int, batch_size: int, dev: torch.device) -> None:
    """Before the data is read: a bad input size fails fast, and so does an arch too large for the
    machine (instead of dying in the allocator)."""
    try:
        validate_input_size(spec, size)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--input-size") from None
    try:
        check_memory(spec, input_size=size, batch_size=batch_size, training=True, device=dev)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--arch") from None


def _new_engine(
    spec: ArchSpec, size: int, dev: torch.device, *, lr: float, epochs: int, batch_size: int
) -> Engine:
    """A fresh model on `dev`, Adam with a cosine schedule over `epochs`, in an Engine."""
    model = build_model(spec, input_size=size).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    return Engine(model, spec, opt, dev, scheduler=sched, eval_batch_size=max(batch_size, 32))


def _checkpoint_to_resume(out: Path, resume: bool) -> dict | None:
    """last.pt when resuming from one; refuses to train over checkpoints without --resume."""
    if resume and (out / LAST).exists():
        ckpt = load_checkpoint(out / LAST)
        missing = [k for k in RESUME_KEYS if k not in ckpt] if isinstance(ckpt, dict) else None
        if missing is None or missing:
            what = f"no {', '.join(missing)}" if missing else f"a {type(ckpt).__name__}"
            raise ConfigError(
                f"not a training checkpoint ({what}); train writes last.pt with "
                f"{', '.join(RESUME_KEYS)}",
                source=str(out / LAST),
                field="--resume",
            )
        return ckpt
    if resume:
        print(f"no checkpoint in {out} to resume from; starting from scratch", file=sys.stderr)
    elif any((out / name).exists() for name in (LAST, BEST, METRICS)):
        raise ConfigError(
            "already holds checkpoints; pass --resume to continue, or choose another --out",
            source=str(out),
            field="out",
        )
    return None


def _check_resumable(ckpt: dict, spec: ArchSpec, size: int, path: Path) -> None:
    problem = arch_mismatch(ckpt.get("arch"), spec)
    if problem:
        raise ConfigError(
            f"{problem}; give the same --arch or another --out", source=str(path), field="arch"
        )
    if ckpt.get("input_size") != size:
        raise ConfigError(
            f"checkpoint was trained at {ckpt.get('input_size')} px, not {size}",
            source=str(path),
            field="input_size",
        )


def _check_selection(ckpt: dict, val_split: str, path: Path) -> None:
    """A run resumes selecting on the split its best.pt was selected on (scores of two splits do
    not compare)."""
    chosen = ckpt.get("val_split", "val")  # checkpoints from before --select-on: val
    if chosen != val_split:
        flag = "val" if chosen == "val" else "carved"
        raise ConfigError(
            f"its best.pt was selected on {chosen}, not {val_split}; resume with "
            f"--select-on {flag}",
            source=str(path),
            field="val_split",
        )


def _load_data(
    data: str,
    size: int,
    *,
    seed: int,
    skip_bad: bool,
    workers: int | None,
    splits: tuple[str, str] = ("train", "val"),
) -> tuple[PoseSet, PoseSet]:
    kw: dict[str, Any] = {"seed": seed, "skip_bad": skip_bad}
    if workers is not None:
        kw["workers"] = workers
    train = load_poses(data, splits[0], size, **kw)
    val = load_poses(
        data, splits[1], size, **kw
    )  # datasets without a val split carve one from train
    for name, poses in (("train", train), ("val", val)):
        skipped = poses.meta.get("skipped", 0)
        if skipped:
            print(f"{name}: skipped {skipped} bad records", file=sys.stderr)
    return train, val


def match_joints(spec: ArchSpec, poses: PoseSet) -> ArchSpec:
    """`spec` with heads for the data's joint count (every preset has LSP's 14; MPII has 16, COCO 17)."""
    joints = int(poses.joints.shape[1])
    if joints == spec.joints:
        return spec
    print(
        f"note: the data has {joints} joints, the arch {spec.joints}: building the heads for {joints} joints",
        file=sys.stderr,
    )
    return spec.replace(joints=joints)


def _restore(ckpt: dict, engine: Engine, batches: Batcher, epochs: int, saver: Checkpointer) -> int:
    """Continue from last.pt: weights, optimizer, schedule, grad scaler, RNG states, history; returns its epoch."""
    path = saver.out / LAST
    load_state(engine.model, ckpt["model"], path, saver.spec.arch_id)
    sched = engine.scheduler
    try:
        engine.optimizer.load_state_dict(ckpt["optimizer"])
        engine.scaler.load_state_dict(ckpt["scaler"])
        sched.load_state_dict(ckpt["scheduler"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"optimizer state does not fit arch {saver.spec.arch_id} ({one_line(err)})",
            source=str(path),
            field="optimizer",
        ) from None
    # --epochs may differ from the interrupted run's: stretch the cosine to the new length and take the
    # current lr from the scheduler's own closed form (what step(epoch) uses), so "train 10, then
    # --resume --epochs 20" follows the same schedule as a straight 20-epoch run.
    sched.T_max = max(1, epochs)
    for group, lr in zip(engine.optimizer.param_groups, sched._get_closed_form_lr()):
        group["lr"] = lr
    torch.set_rng_state(ckpt["rng"]["torch"])
    batches.order_gen.set_state(ckpt["rng"]["order"])
    batches.aug_gen.set_state(ckpt["rng"]["augment"])
    if engine.device.type == "cuda" and ckpt["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    saver.best_score, saver.best_epoch = ckpt["best_score"], ckpt["best_epoch"]
    saver.history = list(ckpt["history"])
    return ckpt["epoch"]


class Checkpointer(Callback):
    """After every epoch: best.pt when the val score improved, then last.pt and metrics.json (all atomic)."""

    def __init__(
        self,
        out: Path,
        spec: ArchSpec,
        size: int,
        data: str,
        epochs: int,
        batches: Batcher,
        *,
        val_split: str = "val",
    ):
        self.out, self.spec, self.size, self.data, self.epochs, self.batches = (
            out,
            spec,
            size,
            data,
            epochs,
            batches,
        )
        self.val_split = val_split  # the split best.pt is selected on
        self.best_score, self.best_epoch = -math.inf, 0
        self.history: list[dict] = []

    def summary(self) -> dict:
        """metrics.json's content."""
        return {
            "arch": self.spec.to_dict(),
            "arch_id": self.spec.arch_id,
            "data": self.data,
            "input_size": self.size,
            "epochs": self.epochs,
            "history": self.history,
            "best": {"epoch": self.best_epoch, "score": self.best_score, "split": self.val_split},
        }

    def on_epoch(self, engine: Engine, metrics: dict) -> None:
        self.history.append({key: metrics[key] for key in HISTORY_KEYS})
        arch = {"arch": self.spec.to_dict(), "arch_id": self.spec.arch_id, "input_size": self.size}
        epoch, score = metrics["epoch"], metrics["val"]
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            save_torch(
                {
                    "model": engine.model.state_dict(),
                    **arch,
                    "epoch": epoch,
                    "score": score,
                    "metric": metrics["metric"],
                },
                self.out / BEST,
            )
        rng = {
            "torch": torch.get_rng_state(),
            "order": self.batches.order_gen.get_state(),
            "augment": self.batches.aug_gen.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if engine.device.type == "cuda" else [],
        }
        save_torch(
            {
                "model": engine.model.state_dict(),
                "optimizer": engine.optimizer.state_dict(),
                "scheduler": engine.scheduler.state_dict(),
                "scaler": engine.scaler.state_dict(),
                "epoch": epoch,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch,
                "rng": rng,
                **arch,
                "data": self.data,
                "history": self.history,
                "val_split": self.val_split,
            },
            self.out / LAST,
        )
        save_json(self.summary(), self.out / METRICS)


class Progress(Callback):
    """A tqdm bar on stderr (steps, ETA, epoch, loss, images/s) and one line per epoch."""

    def __init__(
        self,
        epochs: int,
        start_epoch: int,
        steps_per_epoch: int,
        saver: Checkpointer,
        *,
        enabled: bool,
    ):
        self.epochs, self.steps_per_epoch, self.saver = epochs, steps_per_epoch, saver
        self.bar = tqdm(
            total=epochs * steps_per_epoch,
            initial=start_epoch * steps_per_epoch,
            unit="step",
            disable=not enabled,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self._epoch_start()

    def _epoch_start(self, engine: Engine | None = None) -> None:
        self.step, self.t0, self.seen0 = 0, time.perf_counter(), engine.seen if engine else 0

    def on_step(self, engine: Engine, loss: torch.Tensor) -> None:
        self.step += 1
        self.bar.update(1)
        if (
            self.step % 10 == 0 or self.step == self.steps_per_epoch
        ):  # .item() syncs: not every step
            self.bar.set_postfix(
                epoch=engine.epoch,
                loss=f"{loss.item():.5f}",
                img_s=f"{(engine.seen - self.seen0) / (time.perf_counter() - self.t0):.1f}",
            )

    def on_epoch(self, engine: Engine, metrics: dict) -> None:
        self.bar.write(
            f"epoch {metrics['epoch']}/{self.epochs}: loss {metrics['loss']:.5f}  val {metrics['metric']} "
            f"{metrics['val']:.4f}  best {self.saver.best_score:.4f} (epoch {self.saver.best_epoch})",
            file=sys.stderr,
        )
        self._epoch_start(engine)

    def close(self) -> None:
        self.bar.close()
