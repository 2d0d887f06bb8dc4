"""After a study: trials as CSV, the Pareto front (PNG + self-contained HTML), hypervolume history
(CSV + PNG) and, for one-axis ablations, a table of mean and std per value of that axis.

The HTML embeds the PNG and the Pareto table, so it needs no plotly and opens offline. The tables
and files are here; the figures are drawn by search/report_plots.py.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna._hypervolume import compute_hypervolume  # optuna exposes it no other way
from optuna.study import StudyDirection

from search.export import mask_url, objective_names, open_study, pareto_trials, summary_columns
from search.measures import measure_names
from search.report_plots import (
    complete_trials,
    metric_label,
    plot_hypervolume,
    plot_pareto,
    plot_values,
    quiet_front,
)


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
    values = np.array([t.values for t in complete_trials(study)], dtype=float)
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
    for trial in sorted(complete_trials(study), key=lambda t: t.number):
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

    trials = complete_trials(study)
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
        for t in complete_trials(study)
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
        *_quiet_html(study),
        "<h2>Hypervolume history</h2>",
        f"<p>reference point {html.escape(str([round(r, 6) for r in reference_point]))}</p>",
        _img(images[1]),
    ]
    if ablation is not None:
        parts += ["<h2>Ablation</h2>", ablation.to_html(float_format="%.4g")]
    parts.append("<p>All trials: trials.csv</p></body></html>")
    return "\n".join(parts)


def _quiet_html(study: optuna.Study) -> list[str]:
    """The exported front as the quiet re-measurement decided it, when there was one."""
    from search.remeasure import QUIET_KEYS

    quiet = quiet_front(study)
    if not quiet:
        return []
    table = pd.DataFrame(
        [{"arch_id": k, **v} for k, v in quiet.items()],
        columns=["trial", "arch_id", "pck", *QUIET_KEYS],
    ).sort_values("latency_quiet_ms")
    return [
        "<h2>Exported front: latency decided by the quiet interleaved pass</h2>",
        "<p>The table above is the front by in-study latency (each arch timed once beside "
        "training; the screening value). Before the export, that front and the archs within its "
        "noise band were timed again in one process with no trial running, interleaved round-robin "
        "(median and bootstrap interval); those values decided the exported front below (green "
        "in the figure).</p>",
        table.to_html(index=False, float_format="%.4g"),
    ]


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
    if not complete_trials(study):
        return written

    ref = list(reference_point) if reference_point is not None else default_reference_point(study)
    written.update(_write_hypervolume(study, ref, out))
    if len(objective_names(study)) >= 2:
        written["pareto_png"] = plot_pareto(study, out / "pareto.png")
    written.update(_write_values(study, out))
    pareto = _pareto_table(study)
    ablation_files, ablation = _write_ablations(study, out)
    written.update(ablation_files)
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


def _write_hypervolume(study: optuna.Study, ref: list[float], out: Path) -> dict[str, Path]:
    """hypervolume.csv and hypervolume.png (`hypervolume_history` against `ref`)."""
    history = hypervolume_history(study, ref)
    written = {"hypervolume": out / "hypervolume.csv"}
    history.to_csv(written["hypervolume"], index=False)
    written["hypervolume_png"] = plot_hypervolume(
        history,
        ref,
        f"Hypervolume: {study.study_name}",
        out / "hypervolume.png",
        objective_names(study),
    )
    return written


def _pareto_table(study: optuna.Study) -> pd.DataFrame:
    """The Pareto-optimal trials, one row each: objectives, then `summary_columns`."""
    names = objective_names(study)
    return pd.DataFrame(
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


def _write_ablations(study: optuna.Study, out: Path) -> tuple[dict[str, Path], pd.DataFrame | None]:
    """ablation.csv for a one-axis study (`ablation_table`), then search.ablation's files (per
    value of the varied arch fields, and the paper's claims); the files by kind, and the table the
    HTML shows (ablation.csv's, else ablation_values.csv's, else None)."""
    from search.ablation import write_ablation

    written: dict[str, Path] = {}
    ablation = None
    axis = ablation_axis(study)
    if axis is not None:
        ablation = ablation_table(study, axis)
        written["ablation"] = out / "ablation.csv"
        ablation.to_csv(written["ablation"])
    written.update(write_ablation(study, out))
    if ablation is None and "ablation_values" in written:
        ablation = pd.read_csv(written["ablation_values"])
    return written, ablation
