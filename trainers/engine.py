"""The training engine: the one epoch loop behind the proxy (trainers.proxy) and full training (trainers.fit).

`Engine.run` trains epoch after epoch and scores the val set after each; what a trainer adds
(recording a history, a progress bar, checkpoints, reporting to Ray Tune) goes in `Callback`s.
The engine owns AMP (bf16 on GPUs that have it, fp16 with a GradScaler otherwise, fp32 on CPU), the
non-finite loss check, the step and time budgets and the step guard.

The hot loop keeps the data as uint8 tensors in memory, augments whole batches with torch ops and
never syncs with the device per step, so its images/s stays close to a bare forward/backward loop
(benchmarks/proxy_throughput.py).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from torch import Tensor, nn

from space.profile import resolve_device
from space.spec import ArchSpec
from trainers.augment import augment_batch
from trainers.data import PoseSet
from trainers.heatmaps import (
    crop_to_heatmap,
    decode_heatmaps,
    flip_heatmaps,
    heatmap_to_crop,
    render_heatmaps,
)
from trainers.metrics import Score, score_poses, uncrop

StepGuard = Callable[[], AbstractContextManager]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (diverged run: the search records a failed trial)."""


def prepare_images(images_u8: Tensor) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [0, 1], the network's input, channels_last.

    The permuted HWC batch already has channels_last strides; keeping that layout (also after
    augmentation) lets oneDNN / cuDNN run the convs in their fastest layout: ~10-20% faster steps.
    """
    return (
        images_u8.permute(0, 3, 1, 2)
        .float()
        .div_(255.0)
        .contiguous(memory_format=torch.channels_last)
    )


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

    def __init__(
        self,
        poses: PoseSet,
        indices: np.ndarray,
        batch_size: int,
        device: torch.device,
        sigma: float | None,
        augment: bool,
        seed: int,
    ):
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

    def epoch(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        n = len(self.indices)
        order = self.indices[torch.randperm(n, generator=self.order_gen)]
        bs = min(self.batch_size, n)
        for k in range(len(self)):
            idx = order[k * bs : (k + 1) * bs]
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
        hj = torch.cat(
            [crop_to_heatmap(joints[..., :2], self.size // out), joints[..., 2:3]], dim=-1
        )
        target, weight = render_heatmaps(hj, out, self.sigma)
        return x, target, weight


def supervised(outputs: list[Tensor], spec: ArchSpec) -> list[Tensor]:
    """Every stack's output under intermediate supervision, else only the last."""
    return outputs if spec.intermediate_supervision else outputs[-1:]


def train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    spec: ArchSpec,
    x: Tensor,
    target: Tensor,
    weight: Tensor,
    dtype: torch.dtype | None,
) -> Tensor:
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
def predict(
    model: nn.Module,
    poses: PoseSet,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
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
        chunk = torch.from_numpy(
            np.array(poses.images[i : i + batch_size])
        )  # a copy: the memmap is read-only
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


def evaluate(
    model: nn.Module,
    poses: PoseSet,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flip: bool = False,
    full: bool = False,
) -> dict[str, Score]:
    """Score a model on a PoseSet with the set's metric (see trainers.metrics.score_poses)."""
    pred, maxvals = predict(model, poses, batch_size=batch_size, device=device, flip=flip)
    return score_poses(
        pred,
        poses.joints_orig,
        poses.norm,
        poses.meta.get("metric", "pck"),
        maxvals,
        full,
        meta=poses.meta,
    )


class Callback:
    """Hooks into `Engine.run`; override the ones you need. They run outside the step guard."""

    def on_step(self, engine: Engine, loss: Tensor) -> None:
        """After every training step. `loss` is detached and not synced: `.item()` waits for the device."""

    def on_epoch(self, engine: Engine, metrics: dict) -> None:
        """After every epoch's evaluation, with that epoch's metrics (see `Engine.run`)."""


class Engine:
    """Trains one model with one optimizer (and an optional per-epoch lr scheduler) on one device.

    `step_guard()` is entered around every training step (the batch's augmentation included) and every
    evaluation: a study passes one that pauses the trial while its latency meter measures (search.quiet).
    `steps`, `seen` (images; both updated every step) and `train_s` (training seconds, evaluation
    excluded; updated every epoch) add up over `run`s; `epoch` is the current epoch's number and
    `scores` the last evaluation's scores.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: ArchSpec,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        *,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        step_guard: StepGuard | None = None,
        eval_batch_size: int = 64,
    ):
        self.model, self.spec, self.optimizer, self.device = model, spec, optimizer, device
        self.scheduler = scheduler
        self.dtype = amp_dtype(device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.step_guard = step_guard or nullcontext
        self.eval_batch_size = eval_batch_size
        self.steps, self.seen, self.train_s, self.epoch = 0, 0, 0.0, 0
        self.scores: dict[str, Score] = {}

    def run(
        self,
        batches: Batcher,
        val: PoseSet,
        epochs: Iterable[int],
        *,
        callbacks: Sequence[Callback] = (),
        max_steps: int | None = None,
        max_seconds: float | None = None,
        started: float | None = None,
    ) -> list[dict]:
        """Train one epoch per number in `epochs`, score `val` after each; returns every epoch's metrics.

        Metrics: epoch, loss (mean train loss), val (main score), metric (its name), per_joint, lr (at
        the epoch's start), steps (so far), images_per_s (this epoch's training), epoch_s (training and
        evaluation), wall_s (since `started`, a time.perf_counter() value; default: now).
        Training stops at the step where `max_steps` (counted over all runs) or `max_seconds` (since
        `started`) is reached; that cut epoch is still evaluated and reported.
        Raises NonFiniteLossError when the loss becomes NaN or infinite.
        """
        started = time.perf_counter() if started is None else started

        def out_of_budget() -> bool:
            return (max_steps is not None and self.steps >= max_steps) or (
                max_seconds is not None and time.perf_counter() - started >= max_seconds
            )

        history = []
        self.model.train()
        for epoch in epochs:
            t0, seen_before, self.epoch = time.perf_counter(), self.seen, epoch
            lr = self.optimizer.param_groups[0]["lr"]
            loss, stop = self._train_epoch(batches, callbacks, out_of_budget)
            train_s = time.perf_counter() - t0
            self.train_s += train_s
            seen = self.seen - seen_before
            if self.scheduler is not None:
                self.scheduler.step()
            main = self._evaluate(val)
            metrics = {
                "epoch": epoch,
                "loss": loss,
                "val": main.mean,
                "metric": main.name,
                "per_joint": main.per_joint,
                "lr": lr,
                "steps": self.steps,
                "images_per_s": seen / max(train_s, 1e-9),
                "epoch_s": time.perf_counter() - t0,
                "wall_s": time.perf_counter() - started,
            }
            history.append(metrics)
            for callback in callbacks:
                callback.on_epoch(self, dict(metrics))
            if stop:
                break
        return history

    def _evaluate(self, val: PoseSet) -> Score:
        """Score `val` under the step guard, keeping every score in `self.scores`; the main one."""
        with self.step_guard():
            self.scores = evaluate(
                self.model, val, batch_size=self.eval_batch_size, device=self.device
            )
        return self.scores["main"]

    def _train_epoch(
        self, batches: Batcher, callbacks: Sequence[Callback], out_of_budget: Callable[[], bool]
    ) -> tuple[float, bool]:
        """One pass over `batches`: (mean loss, whether the budget ran out)."""
        losses = []
        batch_iter = batches.epoch()
        while True:
            with self.step_guard():  # the batch's augmentation is device work too
                batch = next(batch_iter, None)
                if batch is None:
                    break
                x, target, weight = batch
                loss = train_step(
                    self.model,
                    self.optimizer,
                    self.scaler,
                    self.spec,
                    x,
                    target,
                    weight,
                    self.dtype,
                )
            losses.append(loss)
            self.steps += 1
            self.seen += len(x)
            # On CPU the check is free; on a GPU it would sync every step, so only check now and then.
            if (self.device.type != "cuda" or self.steps % 50 == 0) and not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at step {self.steps} (epoch {self.epoch})"
                )
            for callback in callbacks:
                callback.on_step(self, loss)
            if out_of_budget():
                return self._epoch_loss(losses), True
        return self._epoch_loss(losses), False

    def _epoch_loss(self, losses: list[Tensor]) -> float:
        value = float(torch.stack(losses).mean())  # one sync per epoch
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss is {value} in epoch {self.epoch}")
        return value
