"""The report's figures (search/report.py writes them): the Pareto front, the hypervolume history
and the mean trained objective per choice of each design axis, each axis labelled with what was
measured (`metric_label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (also on machines without a display)
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.study import StudyDirection  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from search.export import objective_names, pareto_trials  # noqa: E402


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


# -- what each axis measured, in words (every figure must read without the docs) -----------------
METRIC_WORDS = {
    "pck": "PCK@0.2 (torso)",
    "pckh": "PCKh@0.5 (head size)",
    "oks": "PCK@0.2 (sqrt of box area)",
}


def _data_words(source: str) -> tuple[str, str]:
    """(the data set's metric in words, its name) for a data source string; ("PCK", the string)
    where the data set is not on this machine (the label says less, the report is written)."""
    from space.errors import ConfigError
    from trainers.data import data_source, parse_data

    try:
        fmt, path, _ = parse_data(source)
        metric = data_source(source).fmt.metric
    except (ConfigError, OSError, ValueError):
        return "PCK", source
    return METRIC_WORDS.get(metric, metric), path.name if path is not None else fmt


def metric_label(study: optuna.Study, name: str) -> str:
    """An axis label for measure `name`: what was measured, on what, in which unit, from the
    study's stored config (data source, val split and size; latency device and threads)."""
    from search.measures import MEASURES, TRAINED

    cfg = study.user_attrs.get("config") or {}
    if name == "latency_ms":
        lat = cfg.get("latency") or {}
        if not lat:
            return "latency (ms, median, batch 1)"
        threads = lat.get("threads", 1)
        return (
            f"latency (ms, median, batch 1, {lat.get('device', 'cpu')}, "
            f"{threads} thread{'' if threads == 1 else 's'})"
        )
    measure = MEASURES.get(name)
    if measure is None:
        return name
    if measure.stage != TRAINED or name != "pck":
        return f"{name} ({measure.unit})"
    data = cfg.get("data") or {}
    if not data.get("source"):
        return "PCK, proxy validation split (0-1)"
    words, dataset = _data_words(str(data["source"]))
    size = f", {data['val']} images" if data.get("val") else ""
    return f"{words}, proxy validation: {dataset} {data.get('val_split', 'val')}{size} (0-1)"


def plot_values(
    table: pd.DataFrame, metric: str, title: str, path: Path, xlabel: str | None = None
) -> Path:
    """values.png: `values_figure`."""
    return _save(values_figure(table, metric, title, xlabel), path)


def values_figure(
    table: pd.DataFrame, metric: str, title: str, xlabel: str | None = None
) -> plt.Figure:
    """Small multiples, one horizontal bar chart per axis: mean `metric` per choice, whiskers
    +-1 std (choices with n >= 2), "n=K" (trained archs) and the mean beside each bar."""
    axes_names = list(dict.fromkeys(table["axis"]))
    cols = min(3, len(axes_names))
    rows = -(-len(axes_names) // cols)
    per_row = 1.0 + 0.35 * int(table.groupby("axis").size().max())
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 0.9 + per_row * rows), squeeze=False)
    mean_col, std_col = f"{metric}_mean", f"{metric}_std"
    tops = table[mean_col].fillna(0.0) + table[std_col].fillna(0.0)
    top = float(tops.max()) if len(tops) else 1.0
    for ax, name in zip(axes.flat, axes_names):
        part = table[table["axis"] == name]
        means, stds = part[mean_col].fillna(0.0).to_numpy(), part[std_col].fillna(0.0).to_numpy()
        bars = ax.barh(
            part["value"].astype(str),
            means,
            xerr=stds,
            color="tab:blue",
            error_kw={"ecolor": "black", "capsize": 3, "lw": 1},
        )
        labels = [
            f"n={n}" if n == 0 else f"{m:.3f}, n={n}"
            for m, n in zip(part[mean_col], part["trials"])
        ]
        ax.bar_label(bars, labels=labels, padding=4, fontsize=8)
        ax.invert_yaxis()  # the space's order, top to bottom
        ax.set_xlim(0, top * 1.45 or 1.0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel or f"mean {metric}", fontsize=8)
    for ax in list(axes.flat)[len(axes_names) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0.0 for c in trial.constraints.values())  # as optuna's best_trials


def plot_pareto(study: optuna.Study, path: Path) -> Path:
    """pareto.png: `pareto_figure`."""
    return _save(pareto_figure(study), path)


def pareto_figure(study: optuna.Study) -> plt.Figure:
    """Every COMPLETE trial, the Pareto-optimal ones highlighted and joined by a step line (the
    best first objective reachable at each second-objective value); x = second objective
    (latency), y = first (PCK), axes labelled with what was measured (`metric_label`). A reused
    result (user attr `reused_from`) is its earlier trial's point, drawn once."""
    trials = [t for t in complete_trials(study) if "reused_from" not in t.user_attrs]
    front = sorted(pareto_trials(study), key=lambda t: (t.values[1], t.number))
    front = [t for t in front if "reused_from" not in t.user_attrs]
    fig, ax = plt.subplots(figsize=(7, 5))
    _scatter_others(ax, trials, {t.number for t in front})
    _draw_front(study, ax, front)
    _draw_quiet_front(ax, quiet_front(study))
    _label_pareto(study, ax, trials)
    return fig


def quiet_front(study: optuna.Study) -> dict[str, dict]:
    """The exported front as the quiet re-measurement decided it (the study's user attr
    `quiet_latency`, search/remeasure.py): arch id -> trial, pck, latencies; empty when the front was
    decided by in-study values."""
    kept = study.user_attrs.get("quiet_latency") or {}
    return {k: v for k, v in kept.items() if isinstance(v, dict)}


def _draw_quiet_front(ax, quiet: dict[str, dict]) -> None:
    """The exported archs at their quiet latency (interval as a horizontal bar), joined: the front
    that was exported, beside the in-study one it was screened from."""
    rows = sorted(
        (q for q in quiet.values() if q.get("pck") is not None), key=lambda q: q["latency_quiet_ms"]
    )
    if not rows:
        return
    xs = [q["latency_quiet_ms"] for q in rows]
    ys = [q["pck"] for q in rows]
    low = [x - q.get("latency_quiet_low_ms", x) for x, q in zip(xs, rows)]
    high = [q.get("latency_quiet_high_ms", x) - x for x, q in zip(xs, rows)]
    ax.step(xs, ys, where="post", color="tab:green", lw=1.2, ls="--", zorder=2)
    ax.errorbar(
        xs,
        ys,
        xerr=[low, high],
        fmt="D",
        color="tab:green",
        ms=6,
        mfc="none",
        capsize=3,
        zorder=4,
        label=f"exported ({len(rows)}): quiet interleaved latency, which decided the front",
    )
    for x, y, q in zip(xs, ys, rows):
        if q.get("trial") is not None:
            ax.annotate(
                f"#{q['trial']}",
                (x, y),
                textcoords="offset points",
                xytext=(-4, 6),
                ha="right",
                fontsize=7,
                color="tab:green",
            )


def _scatter_others(ax, trials: list[optuna.trial.FrozenTrial], on_front: set[int]) -> None:
    """The trials off the front: feasible ones in blue, those over a constraint limit as grey x."""
    groups = (
        (
            "other trials",
            "tab:blue",
            "o",
            [t for t in trials if t.number not in on_front and _feasible(t)],
        ),
        ("over a constraint limit", "lightgrey", "x", [t for t in trials if not _feasible(t)]),
    )
    for label, colour, marker, group in groups:
        if group:
            ax.scatter(
                [t.values[1] for t in group],
                [t.values[0] for t in group],
                c=colour,
                marker=marker,
                s=22,
                alpha=0.7,
                label=f"{label} ({len(group)})",
            )


def _draw_front(study: optuna.Study, ax, front: list[optuna.trial.FrozenTrial]) -> None:
    """The Pareto-optimal trials in red, joined by a step line, numbered when at most 20."""
    names = objective_names(study)
    xs, ys = [t.values[1] for t in front], [t.values[0] for t in front]
    x_max = study.directions[1] == StudyDirection.MAXIMIZE
    ax.step(
        xs,
        ys,
        where="pre" if x_max else "post",
        color="tab:red",
        lw=1.5,
        zorder=2,
        label=f"front by in-study {names[1]} (screening): best {names[0]} at each",
    )
    ax.scatter(
        xs,
        ys,
        c="tab:red",
        s=40,
        zorder=3,
        edgecolors="black",
        linewidths=0.5,
        label=f"Pareto-optimal ({len(front)})",
    )
    if len(front) <= 20:
        for t in front:
            ax.annotate(
                f"#{t.number}",
                (t.values[1], t.values[0]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )


def _label_pareto(study: optuna.Study, ax, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Axis labels, the title (which corner is better, how many reused results), grid and legend."""
    names = objective_names(study)
    x_max = study.directions[1] == StudyDirection.MAXIMIZE
    ax.set_xlabel(metric_label(study, names[1]))
    ax.set_ylabel(metric_label(study, names[0]))
    better = (
        ("top" if study.directions[0] == StudyDirection.MAXIMIZE else "bottom")
        + " "
        + ("right" if x_max else "left")
    )
    reused = len(complete_trials(study)) - len(trials)
    again = ""
    if reused:
        again = f"; {reused} reused result{'s' if reused != 1 else ''} not drawn again"
    ax.set_title(
        f"{study.study_name}: Pareto front of {len(trials)} archs\n"
        f"(#N = trial number; {better} is better{again})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def plot_hypervolume(
    history: pd.DataFrame,
    reference_point: Sequence[float],
    title: str,
    path: Path,
    names: Sequence[str] = (),
) -> Path:
    """hypervolume.png: `hypervolume_figure`."""
    return _save(hypervolume_figure(history, reference_point, title, names), path)


def hypervolume_figure(
    history: pd.DataFrame, reference_point: Sequence[float], title: str, names: Sequence[str] = ()
) -> plt.Figure:
    """Hypervolume after each COMPLETE trial (step line), integer trial ticks, the reference
    point named by objective."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(history["trial"], history["hypervolume"], where="post", marker="o", markersize=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    unit = f"{names[0]} x {names[1]}, " if len(names) >= 2 else ""
    ax.set_ylabel(f"hypervolume ({unit}area the front\ndominates up to the reference point)")
    ref = (
        ", ".join(f"{n} {r:.4g}" for n, r in zip(names, reference_point))
        if names
        else (str([round(r, 4) for r in reference_point]))
    )
    ax.set_title(f"{title}\nreference point: {ref}; higher is better", fontsize=9)
    ax.grid(alpha=0.3)
    return fig
