"""After a study: retrain its Pareto architectures and the reference designs fully, score them on the test split.

The steps of `launch.py finalize` (docs/results-workflow.md, "Finalize"): `found_candidates` (the
export, or the storage's front) -> `with_references` (the paper's and Newell's designs projected
onto the same sizes) -> `with_families` -> `plan_runs` (one run per arch and seed, under
runs/NAME/final/) -> Ray Tune trials of `train_run` -> `measure` (one quiet pass) -> in
search/final_report.py `collect_rows` -> `write_outputs`, `store_results`, `dominance_lines`.

Checkpoints are chosen on a validation split, never on the test split: `trainers.data.selection_splits`
gives train's carved part where a dataset's val split is its test split (LSPET).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from search.export import INDEX_NAME, StudyLocation, export_files, open_study, pareto_trials
from search.family import LADDER_WIDTHS
from space.errors import ConfigError
from space.files import read_yaml_file
from space.references import REFERENCES, project_reference
from trainers.io import save_json

FINAL_DIR = "final"
RECORD = (
    "final.json"  # a finished run: written last, atomically; its presence means "never retrain"
)
MAX_EPOCHS = 10000


@dataclass
class Candidate:
    """One architecture to retrain: found by the study, a reference design, or both."""

    arch: dict
    arch_id: str
    source: str  # found | reference | found+reference | family
    reference: str = ""  # the reference's name, where it is one
    family: str = ""  # the hand-design family it is a member of (search/family.py)
    trial: int | None = None  # the study's trial, where found
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
        raise ConfigError(
            f"unknown reference {(unknown or [text])[0]!r} (choose from {', '.join(REFERENCES)}, "
            "or none)",
            source="<arg>",
            field=flag,
        )
    return list(dict.fromkeys(names))


def parse_widths(text: str) -> list[int]:
    """`--family-widths 16,32,64` -> [16, 32, 64]; ConfigError for anything but positive integers."""
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise ConfigError(
            f"expected positive integers separated by commas, got {text!r}",
            source="<arg>",
            field="--family-widths",
        )
    return widths


def check_counts(epochs: int, seeds: int, top: int | None) -> None:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigError(
            f"must be 1..{MAX_EPOCHS}, got {epochs}", source="<arg>", field="--epochs"
        )
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
            raise ConfigError(
                f"row {k + 1}: {err}", source=str(export_dir / INDEX_NAME), field=row["file"]
            ) from None
        found.append(
            Candidate(record["arch"], row["arch_id"], "found", trial=trial, proxy_pck=proxy_pck)
        )
    return found


def _from_storage(loc: StudyLocation) -> list[Candidate]:
    study = open_study(loc.storage, loc.name)
    found, seen = [], set()
    for t in pareto_trials(study):
        arch_id = t.user_attrs.get("arch_id")
        if "arch" in t.user_attrs and arch_id not in seen:
            seen.add(arch_id)
            found.append(
                Candidate(
                    t.user_attrs["arch"],
                    arch_id,
                    "found",
                    trial=t.number,
                    proxy_pck=t.user_attrs.get("pck"),
                )
            )
    if not found:
        raise ConfigError(
            "no Pareto-optimal trial with an architecture", source=loc.source, field=loc.name
        )
    return found


def found_candidates(loc: StudyLocation, top: int | None) -> list[Candidate]:
    """The study's export (its ranked index), else its Pareto front in the storage; the first `top`."""
    if export_files(loc.export_dir) is not None:
        found = _from_export(loc.export_dir)
    else:
        try:
            found = _from_storage(loc)
        except ConfigError as err:
            raise ConfigError(
                f"no export in {loc.export_dir} and no study to read ({err.message})",
                source=loc.source,
                field="study",
            ) from None
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


def with_families(
    candidates: list[Candidate], families: list[str], widths: Sequence[int] = LADDER_WIDTHS
) -> list[Candidate]:
    """`candidates` plus each family's ladder (search/family.py) at the found archs' smallest stacks
    and depth; a member that is already a candidate is marked as one, not trained twice."""
    from search.family import family_ladder
    from space.spec import ArchSpec

    found = [c.arch for c in candidates if c.source != "reference"] or [candidates[0].arch]
    base = dict(found[0]) | {
        "stacks": min(a["stacks"] for a in found),
        "depth": min(a["depth"] for a in found),
    }
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
        raise ConfigError(
            "holds an earlier finalize; pass --resume to continue it, or --out for a new one",
            source=str(final_dir),
            field="--resume",
        )


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
    from trainers.evaluate import evaluate_weights
    from trainers.fit import BEST, LAST, fit

    torch.set_num_threads(job.cpus)
    run = config["run"]
    folder, spec, seed = Path(run["folder"]), ArchSpec.from_dict(run["arch"]), int(run["seed"])
    summary = fit(
        spec,
        job.data,
        folder,
        epochs=job.epochs,
        input_size=job.input_size,
        seed=seed,
        resume=(folder / LAST).exists(),
        progress=False,
        device=job.device,
        train_split=job.splits[0],
        val_split=job.splits[1],
        workers=1,
    )
    test = evaluate_weights(
        spec,
        folder / BEST,
        job.data,
        "test",
        input_size=job.input_size,
        flip=True,
        device=job.device,
    )
    main = test["metrics"]["main"]
    save_json(
        {
            "arch_id": spec.arch_id,
            "seed": seed,
            "epochs": job.epochs,
            "input_size": summary["input_size"],
            "metric": test["metric"],
            "metric_name": main["name"],
            "train_split": job.splits[0],
            "val_split": job.splits[1],
            "val": summary["best"]["score"],
            "best_epoch": summary["best"]["epoch"],
            "test_split": "test",
            "test": main["mean"],
            "test_samples": test["samples"],
        },
        folder / RECORD,
    )


def run_tune(
    runs: list[Run], job: RunJob, resources: dict, concurrency: int, out_dir: Path
) -> None:
    """The unfinished runs as Ray Tune trials, `concurrency` at a time (Ray must be up)."""
    import time

    from ray import tune

    todo = [r for r in runs if not r.done]
    if not todo:
        return
    configs = [
        {"folder": str(r.folder.resolve()), "arch": r.candidate.arch, "seed": r.seed} for r in todo
    ]
    trainable = tune.with_resources(tune.with_parameters(train_run, job=job), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(
            name=f"final-{int(time.time())}",
            verbose=0,
            storage_path=str((out_dir / "ray").resolve()),
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
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
            out[c.arch_id] = {
                "params": count_params(model),
                "flops": count_flops(model, size),
                "latency_ms": q["latency_quiet_ms"],
                "latency_low_ms": q["ratio_low"] * q["latency_quiet_ms"] / q["ratio"],
                "latency_high_ms": q["ratio_high"] * q["latency_quiet_ms"] / q["ratio"],
            }
    return out
