"""Full training of one architecture (checkpoints, resume, best model) and checkpoint evaluation.

Checkpoints hold only tensors and plain Python containers, so they load with
`torch.load(path, weights_only=True)`:

    last.pt  {"model", "optimizer", "scheduler", "scaler", "epoch", "best_score", "best_epoch",
              "rng": {"torch", "order", "augment", "cuda"}, "arch", "arch_id", "input_size", "data", "history"}
    best.pt  {"model", "arch", "arch_id", "input_size", "epoch", "score", "metric"}
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from space.errors import ConfigError
from space.model import build_model
from space.spec import ArchSpec
from trainers.data import PoseSet, load_poses
from trainers.metrics import Score
from trainers.proxy import (Batcher, NonFiniteLossError, amp_dtype, check_input_size, evaluate,
                            resolve_device, train_step)

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.json"


def atomic_write(path: Path, write) -> None:
    """Write via a temp file in the same folder and os.replace, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def jsonable(obj: Any) -> Any:
    """NaN/inf -> None, so the file is strict JSON (a joint never annotated has no score)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def save_json(obj: Any, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(jsonable(obj), f, indent=2, allow_nan=False)
    atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint or bare state_dict, read with weights_only=True; ConfigError when unreadable."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError("no such file", source=str(path), field="weights") from None
    except Exception as err:  # truncated file, not a torch file, forbidden pickle content
        raise ConfigError(f"cannot load checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})",
                          source=str(path), field="weights") from None


def load_val(data: str, size: int, **kw: Any) -> PoseSet:
    """The validation split: 'val' where the dataset has one, else 'test' (LSP)."""
    try:
        return load_poses(data, "val", size, **kw)
    except ConfigError as err:
        if err.field != "split":
            raise
        return load_poses(data, "test", size, **kw)


def fit(spec: ArchSpec, data: str, out: str | Path, *, epochs: int = 100, batch_size: int = 16,
        lr: float = 2.5e-4, input_size: int | None = None, resume: bool = False,
        device: str | None = None, skip_bad: bool = False, seed: int = 0, workers: int | None = None,
        progress: bool = True) -> dict:
    """Train `spec` on `data` for `epochs`, checkpointing into `out` after every epoch; returns metrics.json's content."""
    out = Path(out)
    size = input_size or spec.input_size
    last_path = out / LAST
    ckpt = None
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt.get("arch") != spec.to_dict():
            raise ConfigError(f"checkpoint is for arch {ckpt.get('arch_id')}, not {spec.arch_id}; "
                              "give the same --arch or another --out", source=str(last_path), field="arch")
        if ckpt.get("input_size") != size:
            raise ConfigError(f"checkpoint was trained at {ckpt.get('input_size')} px, not {size}",
                              source=str(last_path), field="input_size")
    elif resume:
        print(f"no checkpoint in {out} to resume from; starting from scratch", file=sys.stderr)
    elif any((out / name).exists() for name in (LAST, BEST)):
        raise ConfigError("already holds checkpoints; pass --resume to continue, or choose another --out",
                          source=str(out), field="out")

    dev = resolve_device(device)
    torch.manual_seed(seed)
    try:  # before the data: a bad size fails fast
        model = build_model(spec, input_size=size).to(dev)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--input-size") from None
    kw = {"seed": seed, "skip_bad": skip_bad}
    if workers is not None:
        kw["workers"] = workers
    train = load_poses(data, "train", size, **kw)
    val = load_val(data, size, **kw)
    check_input_size(spec, train, size)
    for name, poses in (("train", train), ("val", val)):
        skipped = poses.meta.get("skipped", 0)
        if skipped:
            print(f"{name}: skipped {skipped} bad records", file=sys.stderr)

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    dtype = amp_dtype(dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
    batches = Batcher(train, np.arange(len(train.images)), batch_size, dev, None, True, seed)

    start_epoch, best_score, best_epoch, history = 0, -math.inf, 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_score, best_epoch = ckpt["epoch"], ckpt["best_score"], ckpt["best_epoch"]
        history = list(ckpt["history"])
        # --epochs may differ from the interrupted run's: stretch the cosine to the new length, so
        # "train 10, then --resume --epochs 20" follows the same schedule as a straight 20-epoch run.
        sched.T_max = max(1, epochs)
        for group, base in zip(opt.param_groups, sched.base_lrs):
            group["lr"] = sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * start_epoch / sched.T_max)) / 2
        torch.set_rng_state(ckpt["rng"]["torch"])
        batches.order_gen.set_state(ckpt["rng"]["order"])
        batches.aug_gen.set_state(ckpt["rng"]["augment"])
        if dev.type == "cuda" and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])

    summary = {"arch": spec.to_dict(), "arch_id": spec.arch_id, "data": data, "input_size": size,
               "epochs": epochs, "history": history, "best": {"epoch": best_epoch, "score": best_score}}
    steps_per_epoch = len(batches)
    bar = tqdm(total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, unit="step",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    model.train()
    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        lr_used = opt.param_groups[0]["lr"]
        losses, seen = [], 0
        for step, (x, target, weight) in enumerate(batches.epoch(), 1):
            loss = train_step(model, opt, scaler, spec, x, target, weight, dtype)
            losses.append(loss)
            seen += len(x)
            bar.update(1)
            if step % 10 == 0 or step == steps_per_epoch:  # .item() syncs: not every step
                value = loss.item()
                if not math.isfinite(value):
                    raise NonFiniteLossError(f"loss is {value} at epoch {epoch} step {step}; "
                                             f"last good checkpoint: {last_path}")
                bar.set_postfix(epoch=epoch, loss=f"{value:.5f}",
                                img_s=f"{seen / (time.perf_counter() - t0):.1f}")
        epoch_loss = float(torch.stack(losses).mean())
        if not math.isfinite(epoch_loss):
            raise NonFiniteLossError(f"loss is {epoch_loss} in epoch {epoch}; last good checkpoint: {last_path}")
        train_s = time.perf_counter() - t0
        sched.step()
        main: Score = evaluate(model, val, batch_size=max(batch_size, 32), device=dev)["main"]
        history.append({"epoch": epoch, "loss": epoch_loss, "val": main.mean, "metric": main.name,
                        "per_joint": main.per_joint, "lr": lr_used,
                        "images_per_s": seen / max(train_s, 1e-9), "epoch_s": time.perf_counter() - t0})
        if main.mean > best_score:
            best_score, best_epoch = main.mean, epoch
            save_torch({"model": model.state_dict(), "arch": spec.to_dict(), "arch_id": spec.arch_id,
                        "input_size": size, "epoch": epoch, "score": main.mean, "metric": main.name},
                       out / BEST)
        rng = {"torch": torch.get_rng_state(), "order": batches.order_gen.get_state(),
               "augment": batches.aug_gen.get_state(),
               "cuda": torch.cuda.get_rng_state_all() if dev.type == "cuda" else []}
        save_torch({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch, "best_score": best_score,
                    "best_epoch": best_epoch, "rng": rng, "arch": spec.to_dict(), "arch_id": spec.arch_id,
                    "input_size": size, "data": data, "history": history}, last_path)
        summary["best"] = {"epoch": best_epoch, "score": best_score}
        save_json(summary, out / METRICS)
        bar.write(f"epoch {epoch}/{epochs}: loss {epoch_loss:.5f}  val {main.name} {main.mean:.4f}  "
                  f"best {best_score:.4f} (epoch {best_epoch})", file=sys.stderr)
    bar.close()
    return summary


def load_weights(path: str | Path, spec: ArchSpec) -> dict:
    """Model state_dict from a full checkpoint (refused if trained for another arch) or a bare state_dict."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        arch = obj.get("arch")
        if arch is not None and arch != spec.to_dict():
            raise ConfigError(f"checkpoint is for arch {obj.get('arch_id')}, not {spec.arch_id}",
                              source=str(path), field="arch")
        return obj["model"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ConfigError("neither a checkpoint nor a state_dict", source=str(path), field="weights")


def evaluate_weights(spec: ArchSpec, weights: str | Path, data: str, split: str = "test", *,
                     input_size: int | None = None, flip: bool = False, device: str | None = None,
                     skip_bad: bool = False) -> dict:
    """Score saved weights on a split; returns the JSON-ready result (metrics, per joint, names)."""
    size = input_size or spec.input_size
    state = load_weights(weights, spec)
    try:
        model = build_model(spec, input_size=size)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--input-size") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"weights do not fit arch {spec.arch_id} ({str(err).splitlines()[0]})",
                          source=str(weights), field="weights") from None
    dev = resolve_device(device)
    model.to(dev)
    poses = load_poses(data, split, size, skip_bad=skip_bad)
    check_input_size(spec, poses, size)
    scores = evaluate(model, poses, device=dev, flip=flip, full=True)
    names = list(poses.meta.get("joint_names") or [f"joint{i}" for i in range(spec.joints)])
    return {"arch_id": spec.arch_id, "weights": str(weights), "data": data, "split": split,
            "input_size": size, "flip": flip, "metric": poses.meta.get("metric", "pck"),
            "samples": int(len(poses.images)),
            "skipped": int(poses.meta.get("skipped", 0)), "joint_names": names,
            "metrics": {key: s.to_dict() for key, s in scores.items()}}


def format_table(result: dict) -> str:
    """Per-joint table of the main metric, then the mean (and OKS AP where computed)."""
    main = result["metrics"]["main"]
    width = max(len(n) for n in result["joint_names"] + ["mean"])
    lines = [f"{'joint':<{width}}  {main['name']:>8}  {'count':>6}"]
    for name, value, count in zip(result["joint_names"], main["per_joint"], main["counts"]):
        lines.append(f"{name:<{width}}  {100 * value:8.2f}  {count:6d}")
    lines.append(f"{'mean':<{width}}  {100 * main['mean']:8.2f}  {sum(main['counts']):6d}")
    if "oks_ap" in result["metrics"]:
        ap = result["metrics"]["oks_ap"]
        lines.append(f"OKS AP {100 * ap['mean']:.2f}  AP50 {100 * ap['ap50']:.2f}  AP75 {100 * ap['ap75']:.2f}")
    return "\n".join(lines)
