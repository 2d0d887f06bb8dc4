"""Proxy training: a short, budgeted run that turns an ArchSpec into a validation score.

The search calls `train_proxy` once per trial; `callback(epoch, metrics)` after every epoch is where
Ray Tune plugs in. The epoch loop itself is trainers.engine's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from space.errors import ConfigError
from space.model import build_model
from space.profile import count_params, resolve_device
from space.spec import ArchSpec, size_multiple
from trainers.budget import ProxyBudget  # noqa: F401  (defined there; imported from here too)
from trainers.data import PoseSet, subset_indices
from trainers.engine import (
    Batcher,
    Callback,
    Engine,
    NonFiniteLossError,  # noqa: F401  (train_proxy raises it; callers import it from here)
    StepGuard,
)

EpochCallback = Callable[[int, dict], None]


@dataclass
class ProxyResult:
    pck: float  # the val set's main metric (PCK@0.2, PCKh@0.5, ...) after the last epoch
    per_joint: list[float]
    loss_curve: list[float]  # mean training loss per epoch
    val_curve: list[float]  # val score per epoch
    images_per_s: float  # training images per second (validation excluded)
    wall_s: float  # whole call, validation included
    epochs: int
    steps: int
    params: int
    metric: str = "pck@0.2"
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_input_size(spec: ArchSpec, poses: PoseSet, input_size: int | None) -> int:
    size = int(poses.images.shape[1])
    if input_size is not None and input_size != size:
        raise ConfigError(
            f"data prepared at {size} px but input_size is {input_size}; load it at that size",
            source="<budget>",
            field="input_size",
        )
    if size % size_multiple(spec.depth):
        raise ConfigError(
            f"input size {size} is not divisible by 4 * 2**depth = {size_multiple(spec.depth)}",
            source="<budget>",
            field="input_size",
        )
    return size


def train_proxy(
    spec: ArchSpec,
    train: PoseSet,
    val: PoseSet,
    budget: ProxyBudget,
    *,
    callback: EpochCallback | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
    step_guard: StepGuard | None = None,
    callbacks: Sequence[Callback] = (),
) -> ProxyResult:
    """Train `spec` from scratch under `budget` and score it on `val` after every epoch.

    `callbacks` are further engine callbacks (trainers.engine.Callback), run after the proxy's own:
    the search keeps a reference to the trained model with one (search.artifacts.KeepModel).

    `step_guard()` is entered around every training step and every evaluation: a study passes one
    that pauses the trial while its latency meter measures on the same device (search.quiet)."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train_proxy(
            spec, train, val, budget, callback, resolve_device(device), step_guard, callbacks
        )
    finally:
        if threads:
            torch.set_num_threads(previous_threads)


class _Report(Callback):
    """The proxy's per-epoch metrics: recorded for the result and handed to the caller's callback."""

    def __init__(self, callback: EpochCallback | None):
        self.callback = callback
        self.history: list[dict] = []

    def on_epoch(self, engine: Engine, metrics: dict) -> None:
        report = {
            "epoch": metrics["epoch"],
            "pck": metrics["val"],
            "loss": metrics["loss"],
            "steps": metrics["steps"],
            "images_per_s": engine.seen / max(engine.train_s, 1e-9),
            "wall_s": metrics["wall_s"],
        }
        self.history.append(report)
        if self.callback is not None:
            self.callback(report["epoch"], dict(report))


def _train_proxy(
    spec: ArchSpec,
    train: PoseSet,
    val: PoseSet,
    budget: ProxyBudget,
    callback: EpochCallback | None,
    dev: torch.device,
    step_guard: StepGuard | None,
    callbacks: Sequence[Callback] = (),
) -> ProxyResult:
    start = time.perf_counter()
    size = check_input_size(spec, train, budget.input_size)
    torch.manual_seed(budget.seed)
    model = build_model(spec, input_size=size).to(dev)
    engine = Engine(
        model,
        spec,
        torch.optim.Adam(model.parameters(), lr=budget.lr),
        dev,
        step_guard=step_guard,
        eval_batch_size=max(budget.batch_size, 64),
    )
    indices = subset_indices(len(train.images), budget.subset, budget.seed)
    batches = Batcher(
        train, indices, budget.batch_size, dev, budget.sigma, budget.augment, budget.seed
    )
    report = _Report(callback)
    history = engine.run(
        batches,
        val,
        range(1, budget.epochs + 1),
        callbacks=[report, *callbacks],
        max_steps=budget.max_steps,
        max_seconds=budget.max_seconds,
        started=start,
    )
    main = engine.scores["main"]
    return ProxyResult(
        pck=main.mean,
        per_joint=main.per_joint,
        loss_curve=[h["loss"] for h in history],
        val_curve=[h["val"] for h in history],
        images_per_s=engine.seen / max(engine.train_s, 1e-9),
        wall_s=time.perf_counter() - start,
        epochs=len(history),
        steps=engine.steps,
        params=count_params(model),
        metric=main.name,
        history=report.history,
    )
