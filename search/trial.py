"""One proxy trial, run in a Ray worker: `cost` (build, count, measure) then `train` (the proxy).

`run_trial` never raises for the trial's own faults (bad arch, NaN loss, CUDA OOM): it reports
`fail_reason` instead, so that the study goes on and Ray's retries are kept for dead workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from search.faults import fault_point
from search.storage import one_line

log = logging.getLogger("softgate.trial")


@dataclass(frozen=True)
class TrialJob:
    """What every trial of a study shares (shipped once to the workers by `tune.with_parameters`)."""

    cpus: int
    gpus: float
    data: str  # the data source, recorded with each trial
    budget: dict  # ProxyBudget fields
    limits: dict  # measure name -> limit (`constraints: {max_<name>: limit}`; only those set)
    measures: (
        tuple  # the registered `search.measures.Measure`s (registered in the driver: sent by value)
    )
    meter: Any  # the study's latency meter (a Ray actor handle)
    quiet: Any = None  # the study's quiet window (trials step through it), or None
    previews: int = (
        0  # validation images drawn with the trained model's predictions (search.artifacts)
    )

    @classmethod
    def from_config(cls, cfg: Any, meter: Any, quiet: Any) -> TrialJob:
        from search.artifacts import PREVIEW_IMAGES
        from search.measures import MEASURES

        r = cfg.resources
        return cls(
            cpus=r.cpus_per_trial,
            gpus=r.gpus_per_trial,
            data=cfg.data.source,
            budget=cfg.proxy.to_dict(),
            limits=dict(cfg.constraints.limits),
            measures=tuple(MEASURES.values()),
            meter=meter,
            quiet=quiet,
            previews=PREVIEW_IMAGES if cfg.dashboard.artifacts else 0,
        )


def cost(spec: Any, job: TrialJob, latency: dict | None = None) -> dict:
    """The cost measures of `spec` (params, FLOPs, latency, ...) and the latency meter's other attrs
    (latency measured by the study's meter unless given)."""
    import ray

    from search.measures import compute_costs
    from space.model import build_model

    if not latency:
        pending = job.meter.measure.remote(spec.to_dict())
        fault_point("latency")  # the launcher dies while the meter measures
        latency = ray.get(pending)
    model = build_model(spec)
    values = compute_costs(list(job.measures), spec, model, spec.input_size, latency)
    del model
    return {**latency, **values}


def fits_memory(spec: Any, job: TrialJob, budget: dict | None = None) -> None:
    """ConfigError (the trial fails with it) for an arch too large for this machine: at batch 1 and
    the spec's size for measuring it, or with `budget` at its batch and size for training it."""
    import torch

    from space.guard import check_memory
    from space.spec import size_multiple

    device = "cuda" if job.gpus > 0 and torch.cuda.is_available() else "cpu"
    if budget is None:
        check_memory(spec, device=device)
        return
    size = budget.get("input_size") or spec.input_size
    if size % size_multiple(spec.depth) == 0:  # else the proxy refuses the size itself, saying why
        check_memory(
            spec, input_size=size, batch_size=budget["batch_size"], training=True, device=device
        )


def violations(attrs: dict, job: TrialJob) -> tuple[dict, list[str]]:
    """Optuna constraints `max_<name>` (value - limit, <= 0 is feasible) for the limits whose
    measure `attrs` has, and the limits `attrs` breaks, in words."""
    from search.measures import constraint_values
    from search.measures import violations as broken

    return constraint_values(job.limits, attrs), broken(job.limits, attrs)


def train(spec: Any, job: TrialJob, budget: dict, train_set: Any, val_set: Any) -> dict:
    """The proxy training of `spec`; each epoch's PCK is reported to Tune (for ASHA). With
    `job.previews`, the result's PREVIEW_KEY holds a PNG of the trained model's predictions."""
    import torch
    from ray import tune

    from search.artifacts import KeepModel
    from search.measures import trained_values
    from trainers.proxy import ProxyBudget, train_proxy

    curve: list[float] = []

    def on_epoch(epoch: int, metrics: dict) -> None:
        curve.append(float(metrics["pck"]))
        fault_point("epoch")
        tune.report({"pck": float(metrics["pck"]), "epoch": int(epoch)})

    device = "cuda" if job.gpus > 0 and torch.cuda.is_available() else "cpu"
    kept = KeepModel()
    res = train_proxy(
        spec,
        train_set,
        val_set,
        ProxyBudget(**budget),
        callback=on_epoch,
        device=device,
        threads=job.cpus,
        step_guard=job.quiet.step if job.quiet else None,
        callbacks=[kept],
    )
    if res.pck != res.pck:  # NaN
        raise FloatingPointError("proxy PCK is NaN")
    out = dict(
        **trained_values(list(job.measures), res),
        per_joint_pck=[float(x) for x in res.per_joint],
        images_per_s=float(res.images_per_s),
        epochs=int(res.epochs),
        train_s=float(res.wall_s),
        pck_curve=curve,
        loss_curve=[float(x) for x in res.loss_curve],
    )
    return {**out, **_preview(kept.model, val_set, job)}


def _preview(model: Any, val_set: Any, job: TrialJob) -> dict:
    """{PREVIEW_KEY: base64 PNG} of the model's predictions on `job.previews` validation images ({}
    for none); a drawing that fails costs the picture, not the trial."""
    from search.artifacts import PREVIEW_KEY, encode_preview, preview_png

    if not job.previews or model is None:
        return {}
    try:
        with (
            job.quiet.step() if job.quiet else contextlib.nullcontext()
        ):  # device work, as training is
            return {PREVIEW_KEY: encode_preview(preview_png(model, val_set, job.previews))}
    except Exception as err:
        log.warning("predictions preview not drawn: %s", one_line(err))
        return {}


def run_trial(config: dict, *, train_set: Any, val_set: Any, job: TrialJob) -> None:
    """One proxy trial: the Tune trainable (`config` comes from `StorageSearcher.suggest`)."""
    import ray
    import torch
    from ray import tune

    from search.artifacts import PREVIEW_KEY
    from search.measures import trained_values
    from space.spec import ArchSpec

    torch.set_num_threads(job.cpus)
    start = time.perf_counter()
    budget = {**job.budget, **({"seed": config["seed"]} if "seed" in config else {})}
    attrs: dict[str, Any] = {
        "data": job.data,
        "budget": budget,
        "node_id": ray.get_runtime_context().get_node_id(),
    }
    try:
        spec = ArchSpec.from_dict(config["arch"])
        attrs.update(arch=spec.to_dict(), arch_id=spec.arch_id)
        fits_memory(spec, job)  # cost() builds the network and the meter runs it
        attrs.update(cost(spec, job, config.get("latency")))
        constraints, violated = violations(attrs, job)
        if violated:  # skip the training: the sampler sees pck=0 and an infeasible trial
            attrs.update(
                **trained_values(list(job.measures), None),
                per_joint_pck=[],
                images_per_s=0.0,
                epochs=0,
                pck_curve=[],
                skipped="; ".join(violated),
            )
        else:
            fits_memory(spec, job, budget)
            attrs.update(train(spec, job, budget, train_set, val_set))
            constraints = violations(attrs, job)[0]  # limits on trained measures are known now
        if constraints:
            attrs["constraints"] = constraints
        attrs["wall_s"] = time.perf_counter() - start
        preview = {
            k: attrs.pop(k) for k in [PREVIEW_KEY] if k in attrs
        }  # an artifact, not a user attr
        tune.report(
            {"pck": attrs["pck"], "final": True, "attrs_json": json.dumps(attrs), **preview}
        )
    except (
        Exception
    ) as err:  # bad arch, NaN loss, CUDA OOM, ...: this trial fails, the study goes on
        attrs["wall_s"] = time.perf_counter() - start
        tune.report(
            {
                "final": True,
                "fail_reason": one_line(err),
                "attrs_json": json.dumps(attrs, default=str),
            }
        )
