"""After a study: retrain its Pareto architectures and the reference designs fully, score them on the test split.

The steps of `launch.py finalize` (docs/results-workflow.md, "Finalize"): `found_candidates` (the
export, or the storage's front) -> `with_references` (the paper's and Newell's designs projected
onto the same sizes) -> `plan_runs` (one run per arch and seed, under runs/NAME/final/) -> Ray
Tune trials of `train_run` -> `collect_rows` -> `write_outputs`, `store_results`, `dominance_lines`.

Checkpoints are chosen on a validation split, never on the test split: `trainers.data.selection_splits`
gives train's carved part where a dataset's val split is its test split (LSPET).
"""
from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from search.family import LADDER_WIDTHS
from search.export import INDEX_NAME, StudyLocation, export_files, open_study, pareto_trials
from space.errors import ConfigError
from space.files import read_yaml_file
from space.references import DESIGN_KEYS, REFERENCES, SHAPE_KEYS, project_reference
from trainers.io import save_json

FINAL_DIR = "final"
RECORD = "final.json"  # a finished run: written last, atomically; its presence means "never retrain"
MAX_EPOCHS = 10000


@dataclass
class Candidate:
    """One architecture to retrain: found by the study, a reference design, or both."""

    arch: dict
    arch_id: str
    source: str                 # found | reference | found+reference | family
    reference: str = ""         # the reference's name, where it is one
    family: str = ""            # the hand-design family it is a member of (search/family.py)
    trial: int | None = None    # the study's trial, where found
    proxy_pck: float | None = None


@dataclass
class Run:
    """One training of a candidate with one seed, in its own folder."""

    candidate: Candidate
    seed: int
    folder: Path
    record: dict | None = field(default=None)  # final.json's content once finished

    @property
    def done(self) -> bool:
        return (self.folder / RECORD).is_file()


def parse_references(text: str, flag: str = "--references") -> list[str]:
    """`--references paper,newell` (or `--family`) -> names; "none" -> []; ConfigError for an
    unknown name."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in REFERENCES]
    if unknown or not names:
        raise ConfigError(f"unknown reference {(unknown or [text])[0]!r} (choose from {', '.join(REFERENCES)}, "
                          "or none)", source="<arg>", field=flag)
    return list(dict.fromkeys(names))


def parse_widths(text: str) -> list[int]:
    """`--family-widths 16,32,64` -> [16, 32, 64]; ConfigError for anything but positive integers."""
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise ConfigError(f"expected positive integers separated by commas, got {text!r}",
                          source="<arg>", field="--family-widths")
    return widths


def check_counts(epochs: int, seeds: int, top: int | None) -> None:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigError(f"must be 1..{MAX_EPOCHS}, got {epochs}", source="<arg>", field="--epochs")
    if seeds < 1:
        raise ConfigError(f"must be at least 1, got {seeds}", source="<arg>", field="--seeds")
    if top is not None and top < 1:
        raise ConfigError(f"must be at least 1, got {top}", source="<arg>", field="--top")


def _from_export(export_dir: Path) -> list[Candidate]:
    """The export's archs in its index's order; an exported YAML that is unreadable or holds no
    `arch:` mapping, or an index row without a whole trial number, is a one-line ConfigError."""
    with open(export_dir / INDEX_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    found = []
    for k, row in enumerate(rows):
        path = export_dir / row["file"]
        record = read_yaml_file(path, what="an exported YAML file")
        if not isinstance(record, dict) or not isinstance(record.get("arch"), dict):
            raise ConfigError("holds no 'arch:' mapping (not an exported arch)", source=str(path))
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        try:
            trial, pck = int(row["trial"]), metrics.get("pck")
            proxy_pck = None if pck is None else float(pck)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"row {k + 1}: {err}", source=str(export_dir / INDEX_NAME),
                              field=row["file"]) from None
        found.append(Candidate(record["arch"], row["arch_id"], "found", trial=trial,
                               proxy_pck=proxy_pck))
    return found


def _from_storage(loc: StudyLocation) -> list[Candidate]:
    study = open_study(loc.storage, loc.name)
    found, seen = [], set()
    for t in pareto_trials(study):
        arch_id = t.user_attrs.get("arch_id")
        if "arch" in t.user_attrs and arch_id not in seen:
            seen.add(arch_id)
            found.append(Candidate(t.user_attrs["arch"], arch_id, "found", trial=t.number,
                                   proxy_pck=t.user_attrs.get("pck")))
    if not found:
        raise ConfigError("no Pareto-optimal trial with an architecture", source=loc.source, field=loc.name)
    return found


def found_candidates(loc: StudyLocation, top: int | None) -> list[Candidate]:
    """The study's export (its ranked index), else its Pareto front in the storage; the first `top`."""
    if export_files(loc.export_dir) is not None:
        found = _from_export(loc.export_dir)
    else:
        try:
            found = _from_storage(loc)
        except ConfigError as err:
            raise ConfigError(f"no export in {loc.export_dir} and no study to read ({err.message})",
                              source=loc.source, field="study") from None
    return found[:top] if top else found


def with_references(found: list[Candidate], references: list[str]) -> list[Candidate]:
    """`found` plus each reference at each size among them; deduplicated by arch_id (a reference that
    is a found arch becomes one "found+reference" candidate)."""
    from space.spec import ArchSpec

    by_id = {c.arch_id: c for c in found}
    for cand in found:
        for name in references:
            arch = project_reference(cand.arch, name)
            arch_id = ArchSpec.from_dict(arch).arch_id
            known = by_id.get(arch_id)
            if known is None:
                by_id[arch_id] = Candidate(arch, arch_id, "reference", reference=name)
            elif known.source == "found":
                known.source, known.reference = "found+reference", name
    return list(by_id.values())


def with_families(candidates: list[Candidate], families: list[str],
                  widths: Sequence[int] = LADDER_WIDTHS) -> list[Candidate]:
    """`candidates` plus each family's ladder (search/family.py) at the found archs' smallest stacks
    and depth; a member that is already a candidate is marked as one, not trained twice."""
    from search.family import family_ladder
    from space.spec import ArchSpec

    found = [c.arch for c in candidates if c.source != "reference"] or [candidates[0].arch]
    base = dict(found[0]) | {"stacks": min(a["stacks"] for a in found),
                             "depth": min(a["depth"] for a in found)}
    by_id = {c.arch_id: c for c in candidates}
    for name in families:
        for arch in family_ladder(name, base, widths):
            arch_id = ArchSpec.from_dict(arch).arch_id
            known = by_id.setdefault(arch_id, Candidate(arch, arch_id, "family", reference=name))
            known.family = name
    return list(by_id.values())


def plan_runs(candidates: list[Candidate], seeds: int, final_dir: Path) -> list[Run]:
    runs = []
    for cand in candidates:
        for seed in range(seeds):
            run = Run(cand, seed, final_dir / f"{cand.arch_id}-s{seed}")
            if run.done:
                run.record = json.loads((run.folder / RECORD).read_text())
            runs.append(run)
    return runs


def check_fresh(final_dir: Path, resume: bool) -> None:
    """An earlier finalize's runs are continued only with --resume, never trained over."""
    if not resume and final_dir.is_dir() and any(final_dir.iterdir()):
        raise ConfigError("holds an earlier finalize; pass --resume to continue it, or --out for a new one",
                          source=str(final_dir), field="--resume")


# -- one run, in a Ray worker ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunJob:
    """What every run shares: the data, its splits and the training settings."""

    data: str
    epochs: int
    input_size: int | None
    splits: tuple[str, str]
    cpus: int
    device: str


def train_run(config: dict, *, job: RunJob) -> None:
    """The Ray trainable: fit one arch with one seed (continuing its last.pt), select on val, score
    best.pt on the test split with the flip test, write final.json last."""
    import torch

    from space.spec import ArchSpec
    from trainers.fit import BEST, LAST, evaluate_weights, fit

    torch.set_num_threads(job.cpus)
    run = config["run"]
    folder, spec, seed = Path(run["folder"]), ArchSpec.from_dict(run["arch"]), int(run["seed"])
    summary = fit(spec, job.data, folder, epochs=job.epochs, input_size=job.input_size, seed=seed,
                  resume=(folder / LAST).exists(), progress=False, device=job.device,
                  train_split=job.splits[0], val_split=job.splits[1], workers=1)
    test = evaluate_weights(spec, folder / BEST, job.data, "test", input_size=job.input_size, flip=True,
                            device=job.device)
    main = test["metrics"]["main"]
    save_json({"arch_id": spec.arch_id, "seed": seed, "epochs": job.epochs, "input_size": summary["input_size"],
               "metric": test["metric"], "metric_name": main["name"], "train_split": job.splits[0],
               "val_split": job.splits[1], "val": summary["best"]["score"], "best_epoch": summary["best"]["epoch"],
               "test_split": "test", "test": main["mean"], "test_samples": test["samples"]}, folder / RECORD)


def run_tune(runs: list[Run], job: RunJob, resources: dict, concurrency: int, out_dir: Path) -> None:
    """The unfinished runs as Ray Tune trials, `concurrency` at a time (Ray must be up)."""
    import time

    from ray import tune

    todo = [r for r in runs if not r.done]
    if not todo:
        return
    configs = [{"folder": str(r.folder.resolve()), "arch": r.candidate.arch, "seed": r.seed} for r in todo]
    trainable = tune.with_resources(tune.with_parameters(train_run, job=job), resources)
    tuner = tune.Tuner(trainable, param_space={"run": tune.grid_search(configs)},
                       tune_config=tune.TuneConfig(max_concurrent_trials=concurrency),
                       run_config=tune.RunConfig(name=f"final-{int(time.time())}", verbose=0,
                                                 storage_path=str((out_dir / "ray").resolve()),
                                                 failure_config=tune.FailureConfig(max_failures=1)))
    results = tuner.fit()
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} finalize run(s) failed; first: {errors[0]}")


# -- results ----------------------------------------------------------------------------------------------
def measure(candidates: list[Candidate], input_size: int | None, latency: dict) -> dict[str, dict]:
    """Per arch id: params, FLOPs (space.profile) and latency at the final size, every candidate
    timed in one quiet interleaved pass with the study's latency settings (search/remeasure.py), so
    that drift does not decide which is faster; `latency_ms` is that pass's value."""
    from search.remeasure import quiet_latencies
    from space.model import build_model
    from space.profile import count_flops, count_params
    from space.spec import ArchSpec

    out = {}
    for size in sorted({int(input_size or c.arch["input_size"]) for c in candidates}):
        group = [c for c in candidates if int(input_size or c.arch["input_size"]) == size]
        quiet = quiet_latencies({c.arch_id: c.arch for c in group}, latency, input_size=size)
        for c in group:
            model = build_model(ArchSpec.from_dict(c.arch), input_size=size).eval()
            q = quiet[c.arch_id]
            out[c.arch_id] = {"params": count_params(model), "flops": count_flops(model, size),
                              "latency_ms": q["latency_quiet_ms"],
                              "latency_low_ms": q["ratio_low"] * q["latency_quiet_ms"] / q["ratio"],
                              "latency_high_ms": q["ratio_high"] * q["latency_quiet_ms"] / q["ratio"]}
    return out


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def collect_rows(candidates: list[Candidate], runs: list[Run], profiles: dict[str, dict]) -> list[dict]:
    """One row per candidate: its design, profile, proxy PCK and test/val scores over its seeds."""
    rows = []
    for cand in candidates:
        records = [json.loads((r.folder / RECORD).read_text()) for r in runs if r.candidate is cand]
        test_mean, test_std = _mean_std([r["test"] for r in records])
        rows.append({"arch_id": cand.arch_id, "source": cand.source, "reference": cand.reference,
                     "family": cand.family, "trial": cand.trial, **{k: cand.arch.get(k) for k in SHAPE_KEYS[1:] + DESIGN_KEYS},
                     **profiles[cand.arch_id], "proxy_pck": cand.proxy_pck, "metric": records[0]["metric_name"],
                     "test_mean": test_mean, "test_std": test_std,
                     "val_mean": statistics.fmean(r["val"] for r in records), "seeds": len(records),
                     "val_split": records[0]["val_split"], "epochs": records[0]["epochs"]})
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


MD_COLUMNS = ("arch_id", "source", "reference", "stacks", "width", "depth", "block", "gate", "fusion", "skip",
              "params", "flops", "latency_ms", "proxy_pck", "test_mean", "test_std", "val_mean")


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(MD_COLUMNS) + " |", "|" + "---|" * len(MD_COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in MD_COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats (higher test score at no more latency), by latency."""
    def beaten(r: dict) -> bool:
        return any(o is not r and o["latency_ms"] <= r["latency_ms"] and o["test_mean"] > r["test_mean"]
                   for o in rows)
    return sorted((r for r in rows if not beaten(r)), key=lambda r: r["latency_ms"])


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    styles = {"found": ("o", "tab:blue"), "reference": ("s", "tab:red"), "found+reference": ("D", "tab:purple")}
    for source, (marker, colour) in styles.items():
        part = [r for r in rows if r["source"] == source]
        if part:
            ax.errorbar([r["latency_ms"] for r in part], [r["test_mean"] for r in part],
                        yerr=[r["test_std"] or 0 for r in part], fmt=marker, color=colour, label=source, capsize=3)
    _plot_families(ax, rows)
    for r in rows:
        label = f"{r['stacks']}x{r['width']}d{r['depth']}" if r["source"] == "family" else \
            (r["reference"] or r["arch_id"][:8])
        ax.annotate(label, (r["latency_ms"], r["test_mean"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    best = front(rows)
    ax.step([r["latency_ms"] for r in best], [r["test_mean"] for r in best], where="post", color="grey",
            linestyle="--", label="front")
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
    """Each family as a line through its members, by latency (its curve's points)."""
    markers = iter(("s-", "^-", "v-", "<-"))
    for name in dict.fromkeys(r["family"] for r in rows if r.get("family")):
        members = sorted((r for r in rows if r.get("family") == name), key=lambda r: r["latency_ms"])
        ax.errorbar([r["latency_ms"] for r in members], [r["test_mean"] for r in members],
                    yerr=[r["test_std"] or 0 for r in members], fmt=next(markers, "o-"), alpha=0.6,
                    capsize=2, label=f"{name} family")
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
    return {f"final_test_{metric}": row["test_mean"], f"final_test_{metric}_std": row["test_std"],
            f"final_val_{metric}": row["val_mean"], "final_latency_ms": row["latency_ms"],
            "final_epochs": row["epochs"], "final_seeds": row["seeds"]}


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
    linked = optuna.create_study(study_name=name, storage=study.rdb,
                                 directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        linked.set_metric_names([f"test_{rows[0]['metric']}", "latency_ms"])
    linked.set_user_attr("search_study", loc.name)
    for row, attrs in zip(rows, clean):
        extra = final_attrs(row) | {"found_trial": row["trial"]}
        linked.add_trial(optuna.trial.create_trial(values=[row["test_mean"], row["latency_ms"]],
                                                   user_attrs={**attrs, **jsonable(extra)}))
    return True


def dominance_lines(rows: list[dict]) -> list[str]:
    """For each reference: whether a found arch has a higher test score at no more latency, by how
    much, and whether that beats the seed spread (the two std summed)."""
    found = [r for r in rows if r["source"] != "reference"]
    lines = []
    for ref in (r for r in rows if r["source"] != "found"):
        rivals = [f for f in found if f is not ref and f["latency_ms"] <= ref["latency_ms"]
                  and f["test_mean"] > ref["test_mean"]]
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
        lines.append(f"{name}: dominated by {best['arch_id']} ({best['latency_ms']:.3g} ms, "
                     f"test {best['test_mean']:.4f}), +{diff:.4f}; {spread}")
    return lines
