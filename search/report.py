"""After a study: trials as CSV, the Pareto front (PNG + self-contained HTML), hypervolume history
(CSV + PNG) and, for one-axis ablations, a table of mean and std per value of that axis.

The HTML embeds the PNG and the Pareto table, so it needs no plotly and opens offline.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (also on machines without a display)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna._hypervolume import compute_hypervolume  # noqa: E402  (optuna exposes it no other way)
from optuna.study import StudyDirection  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from search.export import mask_url, objective_names, open_study, pareto_trials, summary_columns  # noqa: E402
from search.measures import measure_names  # noqa: E402


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _flat_cell(value):
    # lists (per-joint PCK, PCK curve, branch split) stay one readable cell each
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """All trials, one row each: optuna's columns plus user attrs flattened (`user_attrs_arch.width`)."""
    trials = study.get_trials(deepcopy=False)
    df = study.trials_dataframe(
        attrs=(
            "number",
            "state",
            "values",
            "datetime_start",
            "datetime_complete",
            "duration",
            "params",
        )
    )
    if not trials:
        return df
    attrs = pd.json_normalize([t.user_attrs for t in trials], sep=".")
    attrs = attrs.map(_flat_cell).add_prefix("user_attrs_")
    return pd.concat([df.reset_index(drop=True), attrs], axis=1)


def default_reference_point(study: optuna.Study) -> list[float]:
    """Reference point for hypervolume: for a maximised objective 0 (PCK 0), for a minimised one the
    worst value x 1.1 (latency); if a value has the other sign, 10 % beyond the worst value."""
    values = np.array([t.values for t in _complete(study)], dtype=float)
    ref = []
    for i, direction in enumerate(study.directions):
        col = values[:, i] if len(values) else np.zeros(1)
        if direction == StudyDirection.MAXIMIZE:
            worst = col.min()
            ref.append(float(min(0.0, worst - 0.1 * abs(worst))))
        else:
            worst = col.max()
            ref.append(float(max(0.0, worst + 0.1 * abs(worst))))
    return ref


def hypervolume_history(
    study: optuna.Study, reference_point: Sequence[float] | None = None
) -> pd.DataFrame:
    """Hypervolume of the Pareto front of COMPLETE trials 0..n, for each COMPLETE trial n (by number).

    Columns: trial, hypervolume, pareto_size. Points that do not dominate the reference point, and
    trials that violate a constraint, add nothing. Pass a fixed `reference_point` to compare
    studies (benchmarks/sampler_quality.py does).
    """
    ref = np.asarray(
        reference_point if reference_point is not None else default_reference_point(study), float
    )
    if len(ref) != len(study.directions):
        raise ValueError(
            f"reference point has {len(ref)} values, the study {len(study.directions)} objectives"
        )
    # optuna's hypervolume assumes minimisation: flip the sign of maximised objectives
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    ref_min = signs * ref
    front = np.empty((0, len(ref)))
    hv, rows = 0.0, []
    for trial in sorted(_complete(study), key=lambda t: t.number):
        point = signs * np.asarray(trial.values, float)
        dominated = len(front) and (front <= point).all(axis=1).any()
        feasible = all(c <= 0.0 for c in trial.constraints.values())  # as optuna's best_trials
        if feasible and not dominated and (point < ref_min).all():
            front = np.vstack([front[~(point <= front).all(axis=1)], point])
            hv = float(compute_hypervolume(front, ref_min, assume_pareto=True))
        rows.append({"trial": trial.number, "hypervolume": hv, "pareto_size": len(front)})
    return pd.DataFrame(rows, columns=["trial", "hypervolume", "pareto_size"])


def _metric(study: optuna.Study, trial: optuna.trial.FrozenTrial, name: str):
    names = objective_names(study)
    return trial.values[names.index(name)] if name in names else trial.user_attrs.get(name)


def _axis_value(trial: optuna.trial.FrozenTrial, key: str):
    for source in (trial.params, trial.user_attrs.get("arch") or {}, trial.user_attrs):
        if key in source:
            value = source[key]
            return json.dumps(value) if isinstance(value, (list, dict)) else value
    return None


def ablation_axis(study: optuna.Study) -> str | None:
    """The one axis a study varied (a grid over one axis), else None.

    Looks at the sampled parameters first, then at the arch specs of COMPLETE trials.
    """
    from search.ablation import GRID_PARAMS  # the grid index and proxy seed are not design axes

    trials = _complete(study)
    for keys_of in (
        lambda t: {k: v for k, v in t.params.items() if k not in GRID_PARAMS},
        lambda t: t.user_attrs.get("arch") or {},
    ):
        keys = sorted({k for t in trials for k in keys_of(t)})
        varying = [
            k
            for k in keys
            if len({json.dumps(keys_of(t).get(k), sort_keys=True) for t in trials}) > 1
        ]
        if varying:
            return varying[0] if len(varying) == 1 else None
    return None


def ablation_table(study: optuna.Study, key: str) -> pd.DataFrame:
    """COMPLETE trials grouped by `key` (a sampled parameter, arch field or user attr): count, then
    mean and std of the objectives and the registered measures (search.measures)."""
    metrics = list(dict.fromkeys(objective_names(study) + measure_names()))
    rows = [
        {key: _axis_value(t, key), **{m: _metric(study, t, m) for m in metrics}}
        for t in _complete(study)
    ]
    df = pd.DataFrame(rows, columns=[key] + metrics)
    metrics = [m for m in metrics if df[m].notna().any()]
    df[metrics] = df[metrics].astype(float)
    table = df.groupby(key, dropna=False)[metrics].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table.insert(0, "trials", df.groupby(key, dropna=False).size())
    return table


# -- per-value summary: mean of the trained objective per choice of each axis the space varies ---------------
def trained_metric(study: optuna.Study) -> str:
    """The study's trained objective (a TRAINED measure, e.g. pck), else pck (a user attr of every trial)."""
    from search.measures import MEASURES, TRAINED

    trained = [n for n in objective_names(study) if n in MEASURES and MEASURES[n].stage == TRAINED]
    return trained[0] if trained else "pck"


def _choice_label(value) -> str:
    if value is None:
        return "-"  # a field a choice switches off
    if isinstance(value, (list, tuple)):
        return ",".join(
            str(v) for v in value
        )  # a branch split, as the space writes it: 1/2,1/4,1/4
    return str(value)


def space_choices(study: optuna.Study) -> dict[str, list[str]]:
    """Each axis with more than one choice in the stored study config's space, its choices as labels;
    without a stored space, the arch fields that vary among the trained trials."""
    from search.ablation import trained_trials
    from space.search_space import SearchSpace

    space = (study.user_attrs.get("config") or {}).get("space")
    if space:
        axes = SearchSpace.from_dict(space).to_dict()
        return {k: [_choice_label(v) for v in vs] for k, vs in axes.items() if len(vs) > 1}
    seen: dict[str, list[str]] = {}
    for t in trained_trials(study):
        for key, value in t.user_attrs["arch"].items():
            labels = seen.setdefault(key, [])
            if _choice_label(value) not in labels:
                labels.append(_choice_label(value))
    return {k: v for k, v in seen.items() if len(v) > 1}


def values_table(study: optuna.Study) -> pd.DataFrame:
    """Per axis and choice (`space_choices`): the trained trials' count, and mean and std of the
    trained objective. A choice no trained trial took has count 0 and no mean. A trial that
    reused an earlier trial's result (`reused_from`) is not counted (`trained_trials`)."""
    from search.ablation import trained_trials

    metric, names = trained_metric(study), objective_names(study)
    trials = trained_trials(study)
    rows = []
    for axis, choices in space_choices(study).items():
        by_choice: dict[str, list[float]] = {c: [] for c in choices}
        for t in trials:
            value = t.values[names.index(metric)] if metric in names else t.user_attrs.get(metric)
            if value is not None:
                by_choice.setdefault(_choice_label(t.user_attrs["arch"].get(axis)), []).append(
                    float(value)
                )
        for choice, got in by_choice.items():
            rows.append(
                {
                    "axis": axis,
                    "value": choice,
                    "trials": len(got),
                    f"{metric}_mean": float(np.mean(got)) if got else np.nan,
                    f"{metric}_std": float(np.std(got, ddof=1)) if len(got) > 1 else np.nan,
                }
            )
    return pd.DataFrame(
        rows, columns=["axis", "value", "trials", f"{metric}_mean", f"{metric}_std"]
    )


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
    names = objective_names(study)
    trials = [t for t in _complete(study) if "reused_from" not in t.user_attrs]
    front = sorted(pareto_trials(study), key=lambda t: (t.values[1], t.number))
    front = [t for t in front if "reused_from" not in t.user_attrs]
    on_front = {t.number for t in front}
    fig, ax = plt.subplots(figsize=(7, 5))
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
    xs, ys = [t.values[1] for t in front], [t.values[0] for t in front]
    x_max = study.directions[1] == StudyDirection.MAXIMIZE
    ax.step(
        xs,
        ys,
        where="pre" if x_max else "post",
        color="tab:red",
        lw=1.5,
        zorder=2,
        label=f"front: best {names[0]} at each {names[1]}",
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
    ax.set_xlabel(metric_label(study, names[1]))
    ax.set_ylabel(metric_label(study, names[0]))
    better = (
        ("top" if study.directions[0] == StudyDirection.MAXIMIZE else "bottom")
        + " "
        + ("right" if x_max else "left")
    )
    reused = len(_complete(study)) - len(trials)
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
    return fig


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


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _objectives_text(study: optuna.Study) -> str:
    pairs = zip(objective_names(study), study.directions)
    return ", ".join(f"{n} ({d.name.lower()})" for n, d in pairs)


def _html(
    study: optuna.Study,
    storage_url: str,
    pareto: pd.DataFrame,
    images: list[Path],
    reference_point: Sequence[float],
    ablation: pd.DataFrame | None,
) -> str:
    n_by_state = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)]).value_counts()
    summary = ", ".join(f"{n} {state}" for state, n in n_by_state.items()) or "no trials"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>softgate-nas report: {html.escape(study.study_name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        f"<p>storage {html.escape(mask_url(storage_url))}; trials: {html.escape(summary)}; "
        f"objectives: {html.escape(_objectives_text(study))}</p>",
        "<h2>Pareto front</h2>",
        _img(images[0]),
        pareto.to_html(index=False, float_format="%.4g"),
        "<h2>Hypervolume history</h2>",
        f"<p>reference point {html.escape(str([round(r, 6) for r in reference_point]))}</p>",
        _img(images[1]),
    ]
    if ablation is not None:
        parts += ["<h2>Ablation</h2>", ablation.to_html(float_format="%.4g")]
    parts.append("<p>All trials: trials.csv</p></body></html>")
    return "\n".join(parts)


def _write_values(study: optuna.Study, out: Path) -> dict[str, Path]:
    """values.csv and values.png (`values_table`), when the space varies an axis."""
    table = values_table(study)
    if table.empty:
        return {}
    table.to_csv(out / "values.csv", index=False)
    metric = trained_metric(study)
    title = (
        f"{study.study_name}: mean {metric} per choice of each design axis\n"
        "bars: mean, whiskers: \u00b11 std; n = archs trained with that choice "
        "(a reused result counted once)"
    )
    png = plot_values(
        table, metric, title, out / "values.png", xlabel=f"mean {metric_label(study, metric)}"
    )
    return {"values": out / "values.csv", "values_png": png}


def write_report(
    storage_url: str,
    study_name: str,
    out_dir: str | Path,
    reference_point: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Write trials.csv, pareto.png, pareto.html, hypervolume.csv, hypervolume.png, values.csv and
    values.png (per choice of each axis the space varies; `values_table`) (and ablation.csv for
    one-axis studies; ablation_values.csv and claims.csv from search.ablation) into `out_dir`,
    replacing earlier ones; return them by kind.

    With no COMPLETE trial only trials.csv is written.
    """
    study = open_study(storage_url, study_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"trials": out / "trials.csv"}
    trials_frame(study).to_csv(written["trials"], index=False)
    if not _complete(study):
        return written

    names = objective_names(study)
    ref = list(reference_point) if reference_point is not None else default_reference_point(study)
    history = hypervolume_history(study, ref)
    written["hypervolume"] = out / "hypervolume.csv"
    history.to_csv(written["hypervolume"], index=False)
    written["hypervolume_png"] = plot_hypervolume(
        history, ref, f"Hypervolume: {study.study_name}", out / "hypervolume.png", names
    )
    if len(names) >= 2:
        written["pareto_png"] = plot_pareto(study, out / "pareto.png")
    written.update(_write_values(study, out))

    pareto = pd.DataFrame(
        [
            {
                "trial": t.number,
                "arch_id": t.user_attrs.get("arch_id"),
                **dict(zip(names, t.values)),
                **{k: t.user_attrs.get(k) for k in summary_columns() if k not in names},
            }
            for t in pareto_trials(study)
        ]
    )
    ablation = None
    axis = ablation_axis(study)
    if axis is not None:
        ablation = ablation_table(study, axis)
        written["ablation"] = out / "ablation.csv"
        ablation.to_csv(written["ablation"])

    # ablation studies (search/ablation.py): per value of the varied arch fields, and the paper's claims
    from search.ablation import write_ablation

    written.update(write_ablation(study, out))
    if ablation is None and "ablation_values" in written:
        ablation = pd.read_csv(written["ablation_values"])
    if "pareto_png" in written:
        written["pareto_html"] = out / "pareto.html"
        written["pareto_html"].write_text(
            _html(
                study,
                storage_url,
                pareto,
                [written["pareto_png"], written["hypervolume_png"]],
                ref,
                ablation,
            )
        )
    return written
