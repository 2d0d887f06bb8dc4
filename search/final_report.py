"""The results of `launch.py finalize`: rows per architecture, the CSV, table and plot, the storage
and the verdicts (search/finalize.py plans and trains; this module turns the records into results).
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

from search.export import StudyLocation, open_study
from search.finalize import RECORD, Candidate, Run
from space.errors import ConfigError
from space.references import DESIGN_KEYS, SHAPE_KEYS


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def collect_rows(
    candidates: list[Candidate], runs: list[Run], profiles: dict[str, dict]
) -> list[dict]:
    """One row per candidate: its design, profile, proxy PCK and test/val scores over its seeds."""
    rows = []
    for cand in candidates:
        records = [json.loads((r.folder / RECORD).read_text()) for r in runs if r.candidate is cand]
        test_mean, test_std = _mean_std([r["test"] for r in records])
        rows.append(
            {
                "arch_id": cand.arch_id,
                "source": cand.source,
                "reference": cand.reference,
                "family": cand.family,
                "trial": cand.trial,
                **{k: cand.arch.get(k) for k in SHAPE_KEYS[1:] + DESIGN_KEYS},
                **profiles[cand.arch_id],
                "proxy_pck": cand.proxy_pck,
                "metric": records[0]["metric_name"],
                "test_mean": test_mean,
                "test_std": test_std,
                "val_mean": statistics.fmean(r["val"] for r in records),
                "seeds": len(records),
                "val_split": records[0]["val_split"],
                "epochs": records[0]["epochs"],
            }
        )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def write_csv(rows: list[dict], path: Path) -> None:
    from trainers.io import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)

    atomic_write(path, write)


MD_COLUMNS = (
    "arch_id",
    "source",
    "reference",
    "stacks",
    "width",
    "depth",
    "block",
    "gate",
    "fusion",
    "skip",
    "params",
    "flops",
    "latency_ms",
    "proxy_pck",
    "test_mean",
    "test_std",
    "val_mean",
)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(MD_COLUMNS) + " |", "|" + "---|" * len(MD_COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in MD_COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats (higher test score at no more latency), by latency."""

    def beaten(r: dict) -> bool:
        return any(
            o is not r and o["latency_ms"] <= r["latency_ms"] and o["test_mean"] > r["test_mean"]
            for o in rows
        )

    return sorted((r for r in rows if not beaten(r)), key=lambda r: r["latency_ms"])


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    styles = {
        "found": ("o", "tab:blue"),
        "reference": ("s", "tab:red"),
        "found+reference": ("D", "tab:purple"),
    }
    for source, (marker, colour) in styles.items():
        part = [r for r in rows if r["source"] == source]
        if part:
            ax.errorbar(
                [r["latency_ms"] for r in part],
                [r["test_mean"] for r in part],
                yerr=[r["test_std"] or 0 for r in part],
                fmt=marker,
                color=colour,
                label=source,
                capsize=3,
            )
    _plot_families(ax, rows)
    for r in rows:
        label = (
            f"{r['stacks']}x{r['width']}d{r['depth']}"
            if r["source"] == "family"
            else (r["reference"] or r["arch_id"][:8])
        )
        ax.annotate(
            label,
            (r["latency_ms"], r["test_mean"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    best = front(rows)
    ax.step(
        [r["latency_ms"] for r in best],
        [r["test_mean"] for r in best],
        where="post",
        color="grey",
        linestyle="--",
        label="front",
    )
    ax.set_xlabel("latency (ms, batch 1, one quiet interleaved pass)")
    ax.set_ylabel(f"test {rows[0]['metric']} (flip)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def _plot_families(ax: Any, rows: list[dict]) -> None:
    """Each family's members as points and its curve (search.family.FamilyCurve, what margins are
    measured against: the upper envelope, flat past its best point) as a line of the same colour."""
    from search.family import FamilyCurve

    markers = iter(("s", "^", "v", "<"))
    for name in dict.fromkeys(r["family"] for r in rows if r.get("family")):
        members = [r for r in rows if r.get("family") == name]
        dots = ax.errorbar(
            [r["latency_ms"] for r in members],
            [r["test_mean"] for r in members],
            yerr=[r["test_std"] or 0 for r in members],
            fmt=next(markers, "o"),
            alpha=0.6,
            capsize=2,
            label=f"{name} family",
        )
        curve = FamilyCurve.from_points([(r["latency_ms"], r["test_mean"]) for r in members])
        xs = [*curve.latency, curve.max_latency]
        ys = [*curve.score, curve.score[-1]]
        ax.plot(xs, ys, "-", color=dots.lines[0].get_color(), alpha=0.6)
        ax.set_xscale("log")  # a family's curve is linear in log latency between its members


def write_outputs(rows: list[dict], final_dir: Path, study_name: str) -> list[Path]:
    from trainers.io import atomic_write

    paths = [final_dir / "final.csv", final_dir / "final.md", final_dir / "final_pareto.png"]
    write_csv(rows, paths[0])
    title = f"# finalize: study {study_name}, {rows[0]['epochs']} epochs, {rows[0]['seeds']} seed(s)\n\n"
    atomic_write(paths[1], lambda tmp: Path(tmp).write_text(title + markdown_table(rows)))
    plot(rows, paths[2], f"{study_name}: test score vs latency")
    return paths


def final_attrs(row: dict) -> dict:
    """The trial user attrs of a found arch's final scores (optuna-dashboard shows them)."""
    metric = str(row["metric"]).replace("@", "_").replace(".", "")
    return {
        f"final_test_{metric}": row["test_mean"],
        f"final_test_{metric}_std": row["test_std"],
        f"final_val_{metric}": row["val_mean"],
        "final_latency_ms": row["latency_ms"],
        "final_epochs": row["epochs"],
        "final_seeds": row["seeds"],
    }


def final_study_name(study_name: str) -> str:
    return f"{study_name}-final"


def store_results(loc: StudyLocation, rows: list[dict]) -> bool:
    """The rows as the study's user attr `final`, and as the linked study NAME-final in the same
    storage: one COMPLETE trial per architecture, values (test score, latency), the row as user attrs
    (`found_trial` names the search's trial; a finished trial's own attrs cannot be changed), so
    optuna-dashboard shows both. Replaced on every finalize. False when there is no study to write to."""
    import warnings

    import optuna

    from trainers.io import jsonable

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_study(loc.storage, loc.name)
    except ConfigError:
        return False
    clean = jsonable(json.loads(json.dumps(rows, default=str)))
    study.set_user_attr("final", clean)
    name = final_study_name(loc.name)
    if name in optuna.get_all_study_names(study.rdb):
        optuna.delete_study(study_name=name, storage=study.rdb)
    linked = optuna.create_study(
        study_name=name, storage=study.rdb, directions=["maximize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        linked.set_metric_names([f"test_{rows[0]['metric']}", "latency_ms"])
    linked.set_user_attr("search_study", loc.name)
    for row, attrs in zip(rows, clean):
        extra = final_attrs(row) | {"found_trial": row["trial"]}
        linked.add_trial(
            optuna.trial.create_trial(
                values=[row["test_mean"], row["latency_ms"]],
                user_attrs={**attrs, **jsonable(extra)},
            )
        )
    return True


def dominance_lines(rows: list[dict]) -> list[str]:
    """For each reference: whether a found arch has a higher test score at no more latency, by how
    much, and whether that beats the seed spread (the two std summed)."""
    found = [r for r in rows if r["source"] != "reference"]
    lines = []
    for ref in (r for r in rows if r["source"] != "found"):
        rivals = [
            f
            for f in found
            if f is not ref
            and f["latency_ms"] <= ref["latency_ms"]
            and f["test_mean"] > ref["test_mean"]
        ]
        name = f"{ref['reference']} ({ref['arch_id']}, {ref['latency_ms']:.3g} ms, test {ref['test_mean']:.4f})"
        if not rivals:
            lines.append(f"{name}: no found architecture beats it at equal or lower latency")
            continue
        best = max(rivals, key=lambda f: f["test_mean"])
        diff = best["test_mean"] - ref["test_mean"]
        if best["test_std"] is None or ref["test_std"] is None:
            spread = "one seed: spread unknown"
        else:
            spread_sum = best["test_std"] + ref["test_std"]
            spread = f"{'larger' if diff > spread_sum else 'not larger'} than the seed spread ({spread_sum:.4f})"
        lines.append(
            f"{name}: dominated by {best['arch_id']} ({best['latency_ms']:.3g} ms, "
            f"test {best['test_mean']:.4f}), +{diff:.4f}; {spread}"
        )
    return lines
