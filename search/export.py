"""After a study: find it in its storage and export the Pareto-optimal architectures as YAML.

Also home of the small helpers that `report` and `dashboard` share: `locate_study` (a study name or
file -> storage URL and run folder, by search.locate) and `open_study` (load it, or a ConfigError
naming the studies that do exist). Everything here reads the storage; nothing writes to it.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml

from search.config import StudyConfig, engine_url, mask_url  # noqa: F401  (mask_url is re-exported)
from search.export_swap import replace_folder
from search.faults import fault_point
from search.locate import RunFolder, find_study_file  # find_study_file: also imported from here
from search.measures import measure_names
from search.storage import StoredStudy, scrub
from search.urls import check_storage_url
from space.errors import ConfigError

INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("rank", "file", "trial", "arch_id")  # what export_files recognises
EXPORT_HEADER = (
    "# softgate-nas export:"  # first line of every exported YAML: how an export is recognised
)

# trial user attrs copied into an exported YAML's `metrics:` besides the measures (storage contract in docs/design.md)
EXTRA_METRIC_ATTRS = (
    "latency_p25_ms",
    "latency_p75_ms",
    "latency_cv",
    "images_per_s",
    "wall_s",
    "epochs",
    "per_joint_pck",
)


def metric_attrs() -> tuple[str, ...]:
    """The trial user attrs an export's `metrics:` holds: every registered measure (search.measures), then the rest."""
    return (*measure_names(), *EXTRA_METRIC_ATTRS)


QUIET_COLUMNS = (
    "latency_quiet_ms",
    "latency_quiet_low_ms",
    "latency_quiet_high_ms",
    "latency_decided_by",
)


def summary_columns() -> tuple[str, ...]:
    """The columns of index.csv and the report's Pareto table after the objectives."""
    return (*measure_names(), "images_per_s")


@dataclass(frozen=True)
class StudyLocation:
    """Where a study lives. `storage` may hold credentials: print `mask_url(storage)` instead."""

    name: str
    storage: str
    run_dir: Path
    export_dir: Path
    source: str  # the study file, or "<arg>" when the study was named directly


def locate_study(study: str, storage: str | None = None, out: str | None = None) -> StudyLocation:
    """Resolve `--study/--storage/--out` the way the study runner does.

    A study file (a name in studies/ or a path) gives the Optuna study name, storage and folders via
    `search.config.StudyConfig`; any other name is taken as the Optuna study name itself, with the
    default run folder runs/<name> and storage sqlite:///runs/<name>/study.db. `--out` is the run
    folder; `--storage` overrides the storage URL.
    """
    file = find_study_file(study)  # a path that is missing: StudyConfig.load reports it
    if file is not None:
        cfg = StudyConfig.load(str(file)).with_overrides(storage=storage, out=out)
        return StudyLocation(
            name=cfg.name,
            storage=cfg.storage_url,
            run_dir=cfg.run_dir,
            export_dir=cfg.export_dir,
            source=str(file),
        )
    if storage is not None:  # checked as the study file's --storage is: before any connection
        check_storage_url(storage, "<arg>", "--storage")
    run = RunFolder.of(study, out or None)
    return StudyLocation(
        name=study,
        storage=storage or run.storage_url,
        run_dir=run.path,
        export_dir=run.export_dir,
        source="<arg>",
    )


def open_study(storage_url: str, study_name: str) -> StoredStudy:
    """Load an existing study; ConfigError (listing the known names) when there is none.

    Never creates anything: a SQLite URL whose file is missing is refused before optuna sees it,
    because optuna would create an empty database there.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    masked = mask_url(storage_url)
    check_storage_url(storage_url, masked, "storage")
    try:
        url = make_url(storage_url)
    except ArgumentError as err:
        raise ConfigError(
            f"not a storage URL: {masked} ({scrub(str(err), storage_url)})",
            source="<arg>",
            field="storage",
        ) from None
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        if not Path(url.database).is_file():
            raise ConfigError(
                f"no study storage at {url.database}; run the study first or pass --storage",
                source=masked,
                field="storage",
            )
    try:
        rdb = optuna.storages.RDBStorage(engine_url(storage_url))
        names = optuna.get_all_study_names(storage=rdb)
    except (SQLAlchemyError, ImportError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = scrub(reason, storage_url)  # drivers quote the URL, password and all
        raise ConfigError(
            f"cannot open storage: {reason}", source=masked, field="storage"
        ) from None
    if study_name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            f"no study named {study_name!r}; known studies: {known}", source=masked, field="study"
        )
    return StoredStudy(study_name, rdb)  # as optuna.load_study, keeping the storage at hand


def objective_names(study: optuna.Study) -> list[str]:
    """The study's metric names (set by the runner), else value_0, value_1, ..."""
    names = study.metric_names
    return list(names) if names else [f"value_{i}" for i in range(len(study.directions))]


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal COMPLETE trials, best first on the first objective."""
    first_max = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return sorted(
        study.best_trials, key=lambda t: (-t.values[0] if first_max else t.values[0], t.number)
    )


def _record(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, storage_url: str, now: str
) -> dict:
    attrs = trial.user_attrs
    metrics = dict(zip(objective_names(study), trial.values))
    metrics.update({k: attrs[k] for k in metric_attrs() if k in attrs and k not in metrics})
    provenance = {
        "study": study.study_name,
        "trial": trial.number,
        "arch_id": attrs.get("arch_id"),
        "data": attrs.get("data"),
        "budget": attrs.get("budget"),
        "node_id": attrs.get("node_id"),
        "completed": trial.datetime_complete.isoformat(timespec="seconds")
        if trial.datetime_complete
        else None,
        "exported": now,
        "storage": mask_url(storage_url),
        "softgate_version": study.user_attrs.get("softgate_version"),
    }
    return {"arch": attrs["arch"], "metrics": metrics, "provenance": provenance}


def export_files(out_dir: Path) -> set[str] | None:
    """The files an earlier export wrote into `out_dir` (its index.csv and the YAMLs it lists), or
    None when `out_dir` holds no export. Recognised by its own marks only: an index.csv with the
    export's columns whose every listed file is a YAML starting with the export's header line."""
    return _read_export(out_dir)[0]


def _read_export(out_dir: Path) -> tuple[set[str] | None, str | None]:
    """(`export_files`, None), or (None, why the folder is not an export) where an index.csv is
    there to tell ("index.csv lists 02-x.yaml, which is missing", ...)."""
    index = out_dir / INDEX_NAME
    try:
        with open(index, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                return None, f"{INDEX_NAME} has no {', '.join(missing)} column"
            listed = {row["file"] for row in reader}
        for name in sorted(listed, key=str):
            if not isinstance(name, str) or Path(name).name != name or not name.endswith(".yaml"):
                return None, f"{INDEX_NAME} lists {name!r}, which is not a YAML file in the folder"
            with open(out_dir / name) as fh:
                if not fh.readline().startswith(EXPORT_HEADER):
                    return None, f"{INDEX_NAME} lists {name}, which is not an exported YAML"
    except FileNotFoundError as err:
        found = err.filename and Path(err.filename).name != INDEX_NAME
        return (
            None,
            f"{INDEX_NAME} lists {Path(err.filename).name}, which is missing" if found else None,
        )
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError) as err:
        return None, f"{INDEX_NAME} cannot be read ({type(err).__name__})"
    return listed | {INDEX_NAME}, None


def add_index_columns(out_dir: str | Path, columns: dict[str, dict[str, object]]) -> bool:
    """Add (or replace) columns of an export's index.csv: `columns` maps an arch_id to its new cells.
    Rewritten atomically; the export's own columns and files stay, so `export_files` still knows it.
    False when `out_dir` holds no export."""
    from trainers.io import atomic_write

    out_dir = Path(out_dir)
    if export_files(out_dir) is None:
        return False
    with open(out_dir / INDEX_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = list(rows[0]) if rows else []
    for row in rows:
        for key, value in columns.get(row["arch_id"], {}).items():
            row[key] = "" if value is None else value
            names += [key] if key not in names else []

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=names, restval="")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(out_dir / INDEX_NAME, write)
    return True


def _check_target(out_dir: Path, force: bool) -> set[str]:
    """What may be replaced in `out_dir` (an earlier export's files); ConfigError when the folder
    holds anything else than an export, or an export and no `force`."""
    if not out_dir.exists():
        return set()
    if not out_dir.is_dir():
        raise ConfigError(
            "is a file, not a folder; export.dir must be a folder",
            source=str(out_dir),
            field="export.dir",
        )
    present = {p.name for p in out_dir.iterdir()}
    if not present:
        return set()
    own, why = _read_export(out_dir)
    if own is None and why:  # an index.csv, but not an export's as written: say what is wrong
        raise ConfigError(
            f"is a folder that is not an export as written ({why}); restore or "
            "remove the export's files, or export into another folder",
            source=str(out_dir),
            field="export.dir",
        )
    if own is None:
        example = sorted(present)[0]
        raise ConfigError(
            f"is a folder that is not an export (it holds {len(present)} other entries, "
            f"e.g. {example}); export into an empty folder or an earlier export",
            source=str(out_dir),
            field="export.dir",
        )
    if not force:
        raise ConfigError(
            "an export already exists here; pass --force to replace it",
            source=str(out_dir),
            field="--force",
        )
    return own


def export_study(
    storage_url: str,
    study_name: str,
    out_dir: str | Path,
    force: bool = False,
    remeasure: bool = False,
) -> list[Path]:
    """Write one YAML per Pareto-optimal architecture plus index.csv into `out_dir`; return the YAML paths.

    Pareto-optimal feasible COMPLETE trials (optuna's `best_trials`), best first on the first
    objective; when one arch appears on the front in several trials, its best-ranked trial is
    exported and the others are listed under `provenance.same_arch_trials`.

    Each YAML has `arch:` (loadable by `space.spec.load_arch`), `metrics:` and `provenance:`.
    Only ever removes what an export wrote: `out_dir` must be missing, empty, or an earlier export
    (`export_files`); an earlier export is only replaced with `force=True`, and then only its own
    files. Atomic: everything is written into a temporary folder beside `out_dir` and renamed into
    place, so a crash leaves either the old export or the new one (docs/reliability.md); what a
    killed export left beside `out_dir` (search/export_swap.py) is removed by the next one.

    With `remeasure` and objectives (pck, latency_ms), the front and the archs within its noise
    band are timed again with the study's latency settings, quietly and interleaved, and the front
    is decided by those latencies (search/remeasure.py); each YAML keeps both values and says which
    decided. Run it with no trial running (the end of a study does).
    """
    out_dir = Path(out_dir)
    study = open_study(storage_url, study_name)
    old_files = _check_target(out_dir, force)
    best = _exportable(study, storage_url)
    quiet: dict[str, dict] = {}
    if remeasure:
        from search.remeasure import quiet_front, study_latency

        best, quiet = quiet_front(study, study_latency(study))
        best = best or _exportable(study, storage_url)
    files = replace_folder(
        out_dir,
        old_files,
        lambda tmp: _write_export(study, best, storage_url, tmp, quiet),
        last=INDEX_NAME,
    )
    return [out_dir / f for f in files]


def _exportable(study: optuna.Study, storage_url: str) -> list[optuna.trial.FrozenTrial]:
    best = pareto_trials(study)
    if not best:
        complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        why = f"{complete} trials complete, none feasible" if complete else "no COMPLETE trials"
        raise ConfigError(
            f"{why}, nothing to export", source=mask_url(storage_url), field=study.study_name
        )
    missing = [t.number for t in best if "arch" not in t.user_attrs]
    if missing:
        raise ConfigError(
            f"trials {missing} have no 'arch' user attribute (not a softgate-nas study?)",
            source=mask_url(storage_url),
            field=study.study_name,
        )
    return best


def _write_export(
    study: optuna.Study,
    best: list[optuna.trial.FrozenTrial],
    storage_url: str,
    folder: Path,
    quiet: dict[str, dict] | None = None,
) -> list[str]:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    names = objective_names(study)
    # the same arch can sit on the front twice (re-sampled, equal or trade-off values): one file
    # per arch, for its best-ranked trial, naming the others
    by_arch: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for trial in best:
        by_arch.setdefault(trial.user_attrs.get("arch_id") or f"trial{trial.number}", []).append(
            trial
        )
    rows, files = [], []
    for rank, (arch_id, (trial, *same)) in enumerate(by_arch.items(), start=1):
        record = _record(study, trial, storage_url, now)
        record["provenance"]["same_arch_trials"] = [t.number for t in same]
        if quiet and arch_id in quiet:
            from search.remeasure import quiet_metrics

            record["metrics"].update(quiet_metrics(quiet[arch_id]))
        file = f"{rank:02d}-{arch_id}.yaml"
        header = (
            f"{EXPORT_HEADER} study {study.study_name}, trial {trial.number}, "
            f"Pareto rank {rank} of {len(by_arch)}\n"
        )
        (folder / file).write_text(header + yaml.safe_dump(record, sort_keys=False))
        files.append(file)
        fault_point("export_write")
        m = record["metrics"]
        rows.append(
            {
                "rank": rank,
                "file": file,
                "trial": trial.number,
                "arch_id": arch_id,
                **{n: m.get(n) for n in names},
                **{k: m.get(k) for k in summary_columns() if k not in names},
                **{k: m.get(k) for k in QUIET_COLUMNS if quiet},
                "same_arch_trials": " ".join(str(t.number) for t in same),
            }
        )
    with open(folder / INDEX_NAME, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return files
