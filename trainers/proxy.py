"""Proxy training: a short, budgeted run that turns an ArchSpec into a validation score.

The search calls `train_proxy` once per trial; `callback(epoch, metrics)` after every epoch is where
Ray Tune plugs in. The hot loop keeps the data as uint8 tensors in memory, augments whole batches
with torch ops and never syncs with the device per step, so its images/s stays close to a bare
forward/backward loop (benchmarks/proxy_throughput.py).
"""
from __future__ import annotations

import math
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from space.errors import ConfigError
from space.model import build_model
from space.profile import resolve_device as profile_device
from space.spec import ArchSpec
from trainers.augment import augment_batch
from trainers.budget import ProxyBudget  # noqa: F401  (defined there; imported from here too)
from trainers.data import PoseSet
from trainers.heatmaps import (crop_to_heatmap, decode_heatmaps, flip_heatmaps,
                               heatmap_to_crop, render_heatmaps)
from trainers.metrics import Score, score_poses, uncrop

Callback = Callable[[int, dict], None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (diverged run: the search records a failed trial)."""


@dataclass
class ProxyResult:
    pck: float                       # the val set's main metric (PCK@0.2, PCKh@0.5, ...) after the last epoch
    per_joint: list[float]
    loss_curve: list[float]          # mean training loss per epoch
    val_curve: list[float]           # val score per epoch
    images_per_s: float              # training images per second (validation excluded)
    wall_s: float                    # whole call, validation included
    epochs: int
    steps: int
    params: int
    metric: str = "pck@0.2"
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None picks CUDA when there is one; anything else is checked by space.profile.resolve_device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return profile_device(device)


def prepare_images(images_u8: Tensor) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [0, 1], the network's input, channels_last.

    The permuted HWC batch already has channels_last strides; keeping that layout (also after
    augmentation) lets oneDNN / cuDNN run the convs in their fastest layout: ~10-20% faster steps.
    """
    return images_u8.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def heatmap_loss(outputs: list[Tensor], target: Tensor, weight: Tensor) -> Tensor:
    """MSE between every supervised stack's heatmaps and the target, masked by joint weight, summed over stacks."""
    mask = weight[..., None, None]
    return sum(((out.float() - target) ** 2 * mask).mean() for out in outputs)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it (no loss scaling needed), fp16 otherwise; None on CPU (fp32)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Batcher:
    """Turns the in-memory uint8 PoseSet into training batches on the device: index, copy, augment, target.

    Shared by the proxy and the full trainer so both see exactly the same data pipeline.
    """

    def __init__(self, poses: PoseSet, indices: np.ndarray, batch_size: int, device: torch.device,
                 sigma: float | None, augment: bool, seed: int):
        with warnings.catch_warnings():
            # images may be the cache's read-only memmap (shared page cache across trial processes);
            # we only ever read it through index_select, which copies
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.images = torch.from_numpy(np.ascontiguousarray(poses.images))
        self.joints = torch.from_numpy(np.ascontiguousarray(poses.joints, dtype=np.float32))
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = batch_size
        self.device = device
        self.size = int(poses.images.shape[1])
        self.sigma = sigma
        self.augment = augment
        self.flip_pairs = [tuple(p) for p in poses.meta.get("flip_pairs", [])]
        self.order_gen = torch.Generator().manual_seed(seed)
        # a CPU generator: the same seed gives the same augmentation on CPU and GPU
        self.aug_gen = torch.Generator().manual_seed(seed + 1)

    def __len__(self) -> int:
        n = len(self.indices)
        # drop the ragged last batch (BatchNorm dislikes tiny batches), unless that is all there is
        return max(1, n // self.batch_size)

    def epoch(self):
        n = len(self.indices)
        order = self.indices[torch.randperm(n, generator=self.order_gen)]
        bs = min(self.batch_size, n)
        for k in range(len(self)):
            idx = order[k * bs:(k + 1) * bs]
            yield self.batch(idx)

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        imgs = self.images.index_select(0, idx)
        joints = self.joints.index_select(0, idx)
        if self.device.type == "cuda":
            # a pinned staging copy (PyTorch caches pinned blocks) lets the upload overlap with compute;
            # the uint8 batch is 4x smaller than floats, the conversion happens on the GPU
            imgs = imgs.pin_memory().to(self.device, non_blocking=True)
            joints = joints.pin_memory().to(self.device, non_blocking=True)
        x = prepare_images(imgs)
        if self.augment:
            x, joints = augment_batch(x, joints, self.flip_pairs, self.aug_gen)
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.size // 4
        hj = torch.cat([crop_to_heatmap(joints[..., :2], self.size // out), joints[..., 2:3]], dim=-1)
        target, weight = render_heatmaps(hj, out, self.sigma)
        return x, target, weight


def supervised(outputs: list[Tensor], spec: ArchSpec) -> list[Tensor]:
    """Every stack's output under intermediate supervision, else only the last."""
    return outputs if spec.intermediate_supervision else outputs[-1:]


def train_step(model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, spec: ArchSpec,
               x: Tensor, target: Tensor, weight: Tensor, dtype: torch.dtype | None) -> Tensor:
    """One optimisation step; returns the detached loss (no host sync)."""
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        outputs = model(x)
    loss = heatmap_loss(supervised(outputs, spec), target, weight)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.detach()


@torch.no_grad()
def predict(model: nn.Module, poses: PoseSet, *, batch_size: int = 64, device: str | torch.device | None = None,
            flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions in ORIGINAL image pixels (N, J, 2) and heatmap maxima (N, J) for a PoseSet.

    flip: average the last stack's heatmaps with those of the mirrored image (mirrored back, left and
    right joints swapped by meta['flip_pairs']). See trainers.heatmaps for why no pixel shift is needed.
    """
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    pairs = [tuple(p) for p in poses.meta.get("flip_pairs", [])]
    dtype = amp_dtype(dev)
    coords, maxvals = [], []
    for i in range(0, len(poses.images), batch_size):
        chunk = torch.from_numpy(np.array(poses.images[i:i + batch_size]))  # a copy: the memmap is read-only
        x = prepare_images(chunk.to(dev, non_blocking=True))
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            hm = model(x)[-1].float()
            if flip:
                hm = 0.5 * (hm + flip_heatmaps(model(x.flip(-1))[-1].float(), pairs))
        c, m = decode_heatmaps(hm)
        coords.append(heatmap_to_crop(c, x.shape[-1] // hm.shape[-1]).cpu())
        maxvals.append(m.cpu())
    model.train(was_training)
    crop = torch.cat(coords).numpy()
    return uncrop(crop, poses.affine).astype(np.float32), torch.cat(maxvals).numpy()


def evaluate(model: nn.Module, poses: PoseSet, *, batch_size: int = 64, device: str | torch.device | None = None,
             flip: bool = False, full: bool = False) -> dict[str, Score]:
    """Score a model on a PoseSet with the set's metric (see trainers.metrics.score_poses)."""
    pred, maxvals = predict(model, poses, batch_size=batch_size, device=device, flip=flip)
    return score_poses(pred, poses.joints_orig, poses.norm, poses.meta.get("metric", "pck"), maxvals, full)


def check_input_size(spec: ArchSpec, poses: PoseSet, input_size: int | None) -> int:
    size = int(poses.images.shape[1])
    if input_size is not None and input_size != size:
        raise ConfigError(f"data prepared at {size} px but input_size is {input_size}; load it at that size",
                          source="<budget>", field="input_size")
    if size % (4 * 2 ** spec.depth):
        raise ConfigError(f"input size {size} is not divisible by 4 * 2**depth = {4 * 2 ** spec.depth}",
                          source="<budget>", field="input_size")
    return size


def train_proxy(spec: ArchSpec, train: PoseSet, val: PoseSet, budget: ProxyBudget, *,
                callback: Callback | None = None, device: str | torch.device | None = None,
                threads: int | None = None,
                step_guard: Callable[[], AbstractContextManager] | None = None) -> ProxyResult:
    """Train `spec` from scratch under `budget` and score it on `val` after every epoch.

    `step_guard()` is entered around every training step and every evaluation: a study passes one
    that pauses the trial while its latency meter measures on the same device (search.quiet)."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train_proxy(spec, train, val, budget, callback, resolve_device(device), step_guard or nullcontext)
    finally:
        if threads:
            torch.set_num_threads(previous_threads)


def _train_proxy(spec: ArchSpec, train: PoseSet, val: PoseSet, budget: ProxyBudget,
                 callback: Callback | None, dev: torch.device,
                 step_guard: Callable[[], AbstractContextManager]) -> ProxyResult:
    start = time.perf_counter()
    size = check_input_size(spec, train, budget.input_size)
    torch.manual_seed(budget.seed)
    model = build_model(spec, input_size=size).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=budget.lr)
    dtype = amp_dtype(dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)

    n = len(train.images)
    indices = np.arange(n)
    if budget.subset is not None and budget.subset < n:
        indices = np.sort(np.random.default_rng(budget.seed).choice(n, budget.subset, replace=False))
    batches = Batcher(train, indices, budget.batch_size, dev, budget.sigma, budget.augment, budget.seed)

    steps, seen, train_s = 0, 0, 0.0
    loss_curve, val_curve, history = [], [], []
    scores: dict[str, Score] = {}
    model.train()
    for epoch in range(1, budget.epochs + 1):
        t0 = time.perf_counter()
        losses = []
        stop = False
        batch_iter = batches.epoch()
        while True:
            with step_guard():  # the batch's augmentation is device work too
                batch = next(batch_iter, None)
                if batch is None:
                    break
                x, target, weight = batch
                loss = train_step(model, opt, scaler, spec, x, target, weight, dtype)
            losses.append(loss)
            steps += 1
            seen += len(x)
            # On CPU the check is free; on a GPU it would sync every step, so only check now and then.
            if dev.type != "cuda" or steps % 50 == 0:
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"loss is {loss.item()} at step {steps} (epoch {epoch})")
            if (budget.max_steps is not None and steps >= budget.max_steps) or \
                    (budget.max_seconds is not None and time.perf_counter() - start >= budget.max_seconds):
                stop = True
                break
        epoch_loss = float(torch.stack(losses).mean())  # one sync per epoch
        if not math.isfinite(epoch_loss):
            raise NonFiniteLossError(f"loss is {epoch_loss} in epoch {epoch}")
        train_s += time.perf_counter() - t0
        with step_guard():
            scores = evaluate(model, val, batch_size=max(budget.batch_size, 64), device=dev)
        main = scores["main"]
        loss_curve.append(epoch_loss)
        val_curve.append(main.mean)
        metrics = {"epoch": epoch, "pck": main.mean, "loss": epoch_loss, "steps": steps,
                   "images_per_s": seen / max(train_s, 1e-9), "wall_s": time.perf_counter() - start}
        history.append(metrics)
        if callback is not None:
            callback(epoch, dict(metrics))
        if stop:
            break
    main = scores["main"]
    return ProxyResult(pck=main.mean, per_joint=main.per_joint, loss_curve=loss_curve, val_curve=val_curve,
                       images_per_s=seen / max(train_s, 1e-9), wall_s=time.perf_counter() - start,
                       epochs=len(loss_curve), steps=steps, params=params, metric=main.name, history=history)
