"""Re-measure a front's latency quietly and interleaved, and decide the front again from it.

Inside a study each architecture is timed once, beside training trials, on a machine that drifts:
good enough to screen, not to decide which architectures are Pareto-optimal. Before a front is
exported (at the end of a study, in `export`, in `finalize`), every architecture on it, and every one
within the noise band of it, is timed again in one process with no trial running, interleaved
(space/interleaved.py), and membership is recomputed from those values. The in-study value stays as
the screening value (`latency_ms`); the re-measured one is `latency_quiet_ms`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NOISE_BAND = 0.15  # the spread between two in-study measurements of one arch (docs/search.md)


@dataclass(frozen=True)
class Point:
    """One candidate: a key (arch_id), its trained score (higher is better) and its latency."""

    key: str
    score: float
    latency: float


def front_keys(points: Sequence[Point]) -> list[str]:
    """Keys of the points no other point beats (a higher score at no more latency, or the same
    score at less), by latency."""

    def beaten(p: Point) -> bool:
        return any(
            o.latency <= p.latency
            and o.score >= p.score
            and (o.latency < p.latency or o.score > p.score)
            for o in points
        )

    return [p.key for p in sorted(points, key=lambda p: p.latency) if not beaten(p)]


def within_band(points: Sequence[Point], band: float = NOISE_BAND) -> list[str]:
    """Keys of the points that could be on the front if latencies were off by `band`: no other point
    beats them by more than the noise (a higher score at a latency lower by more than `band`)."""

    def clearly_beaten(p: Point) -> bool:
        return any(
            o.score > p.score and o.latency * (1 + band) < p.latency * (1 - band) for o in points
        )

    return [p.key for p in sorted(points, key=lambda p: p.latency) if not clearly_beaten(p)]


def quiet_latencies(
    archs: Mapping[str, dict],
    latency: Mapping[str, Any],
    *,
    input_size: int | None = None,
    reference: str | None = None,
    target: float = 0.01,
    max_seconds: float = 120.0,
) -> dict[str, dict[str, Any]]:
    """Each arch (key -> ArchSpec dict) timed interleaved with the study's latency settings
    (`latency`: device, threads, backend, clock); per key the pass's figures (space.interleaved)
    and `latency_quiet_ms`, its ratio to `reference` times the reference's median."""
    from search.latency import backend_name, uses_thread_clock
    from space.interleaved import measure_interleaved
    from space.model import build_model
    from space.spec import ArchSpec

    specs = {k: ArchSpec.from_dict(a) for k, a in archs.items()}
    size = int(input_size or next(iter(specs.values())).input_size)
    models = {k: build_model(s, input_size=size).eval() for k, s in specs.items()}
    backend = backend_name(dict(latency))
    clock = uses_thread_clock(
        latency["device"], latency["threads"], latency.get("clock", "auto"), backend
    )
    stats = measure_interleaved(
        models,
        size,
        reference=reference,
        backend=backend,
        device=latency["device"],
        threads=latency["threads"],
        thread_clock=clock,
        target=target,
        max_seconds=max_seconds,
    )
    ref_ms = stats[next(iter(stats.values())).reference].median_ms
    return {
        k: s.as_dict() | {"latency_quiet_ms": s.ratio * ref_ms, "input_size": size}
        for k, s in stats.items()
    }


def requalify(points: Sequence[Point], quiet: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The front recomputed from the quiet latencies of the points that have one."""
    return front_keys(
        [
            Point(p.key, p.score, float(quiet[p.key]["latency_quiet_ms"]))
            for p in points
            if p.key in quiet
        ]
    )


DECIDED_BY = "quiet interleaved pass"


def _feasible(trial: Any) -> bool:
    return all(v <= 0 for v in (trial.user_attrs.get("constraints") or {}).values())


def quiet_front(
    study: Any, latency: Mapping[str, Any], trained: str = "pck", band: float = NOISE_BAND
) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """The study's front decided by quiet latencies: (its trials, first trial per arch, best
    `trained` first; per arch id the pass's figures). For a study whose objectives are not
    (`trained` maximised, latency_ms minimised) it is not defined: ([], {})."""
    import optuna

    names = list(study.metric_names or ())
    seconds = float(latency.get("remeasure_seconds", 60.0))
    if sorted(names) != sorted([trained, "latency_ms"]) or seconds <= 0:
        return [], {}
    first: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        a = t.user_attrs
        if "arch" in a and a.get("arch_id") and _feasible(t) and t.values is not None:
            first.setdefault(a["arch_id"], t)
    if not first:
        return [], {}
    value = {k: dict(zip(names, t.values)) for k, t in first.items()}
    points = [Point(k, v[trained], v["latency_ms"]) for k, v in value.items()]
    keys = within_band(points, band)
    quiet = quiet_latencies(
        {k: first[k].user_attrs["arch"] for k in keys}, latency, max_seconds=seconds
    )
    front = requalify([p for p in points if p.key in quiet], quiet)
    trials = sorted(
        (first[k] for k in front),
        key=lambda t: (-value[t.user_attrs["arch_id"]][trained], t.number),
    )
    return trials, quiet


def study_latency(study: Any) -> dict[str, Any]:
    """The latency settings a study was run with (its stored config), else the defaults."""
    from search.sections import LatencyConfig

    stored = (study.user_attrs.get("config") or {}).get("latency") or {}
    return LatencyConfig().to_dict() | stored


def quiet_metrics(quiet: Mapping[str, Any]) -> dict[str, Any]:
    """An exported arch's quiet-latency metrics (beside the in-study `latency_ms`)."""
    scale = quiet["latency_quiet_ms"] / quiet["ratio"]
    return {
        "latency_quiet_ms": quiet["latency_quiet_ms"],
        "latency_quiet_low_ms": quiet["ratio_low"] * scale,
        "latency_quiet_high_ms": quiet["ratio_high"] * scale,
        "latency_decided_by": DECIDED_BY,
    }


QUIET_KEYS = ("latency_ms", "latency_quiet_ms", "latency_quiet_low_ms", "latency_quiet_high_ms")


def keep_quiet_latencies(study: Any, files: Sequence[Any], note: bool = True) -> None:
    """The quiet latencies that decided an exported front (its YAML `files`), kept in the study: the
    user attr `quiet_latency` (arch id -> trial, the trained score, both latencies and the interval;
    `report` reads it) and, with `note`, the study's optuna-dashboard note (search/artifacts.py)."""
    from pathlib import Path

    import yaml

    quiet = {}
    for path in files:
        record = yaml.safe_load(Path(path).read_text())
        m = record.get("metrics", {})
        if "latency_quiet_ms" in m:
            kept = {k: m.get(k) for k in QUIET_KEYS}
            kept |= {"trial": record["provenance"].get("trial"), "pck": m.get("pck")}
            quiet[record["provenance"]["arch_id"]] = kept
    if not quiet:  # decided by in-study values: an earlier export's quiet front is no longer it
        if "quiet_latency" in study.user_attrs:
            study.set_user_attr("quiet_latency", {"decided_by": "in-study latency"})
        return
    study.set_user_attr("quiet_latency", {"decided_by": DECIDED_BY, **quiet})
    if note:
        from search.artifacts import save_front_note

        save_front_note(study, quiet)
