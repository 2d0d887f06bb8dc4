"""Hypervolume reached by the study's default sampler (NSGA-II) versus random search, equal budget.

    python benchmarks/sampler_quality.py --quick          # a few minutes: 8 trials per run, tiny proxy
    python benchmarks/sampler_quality.py --jobs 2         # the study's trials (40) and proxy: hours on 2 cores
    python benchmarks/sampler_quality.py --jobs 2 --trials 24

For each seed, one Optuna study per sampler runs the same number of trials on the softgate design
space, each trial a real-data (LSPET) proxy: `trainers.proxy.train_proxy` for PCK (by default the
study's own proxy budget and data subset, so the benchmark measures the search users run) and the
study's latency meter (`search.latency.LatencyMeter`) for latency. The hypervolume uses one
reference point for all runs: PCK 0 and the worst latency of any evaluated arch x 1.1. Target:
mean NSGA-II HV / mean random HV >= 1.10.

Objectives are cached by arch id (and budget, data and latency setup) in a JSON-lines file
(`--cache`), shared by all runs and kept across invocations: the samplers are compared on one
fixed function, an arch sampled twice is trained once, and since seeded samplers replay the same
choices on the same values, an interrupted benchmark rerun with the same arguments resumes where
it stopped. `--jobs N` runs N (seed, sampler) studies at a time in separate processes, each
training with one torch thread.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import append_jsonl, digest, read_jsonl, worker_pool  # noqa: E402
from search.config import StudyConfig  # noqa: E402
from search.latency import LatencyMeter  # noqa: E402
from search.report import hypervolume_history  # noqa: E402
from search.samplers import build_sampler  # noqa: E402
from space.search_space import SearchSpace  # noqa: E402
from trainers.data import load_poses  # noqa: E402
from trainers.proxy import NonFiniteLossError, ProxyBudget, train_proxy  # noqa: E402


# the latency settings an objective cache entry is keyed by: those of the measurement (and `cache`,
# kept so that entries written before other keys existed still match); study-only keys such as
# `pause_trials` do not change a value measured here
CACHE_LATENCY_KEYS = ("device", "threads", "warmup", "runs", "min_seconds", "cache", "clock")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="softgate", help="study file giving the space, data, sampler and latency setup")
    p.add_argument("--data", help="override the study's data (default: its LSPET path)")
    p.add_argument("--trials", type=int, help="trials per run (default: the study's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sampler", choices=("nsga2", "tpe", "gp"),
                   help="compare this sampler with random instead of the study's (its options are dropped)")
    p.add_argument("--population", type=int, help="NSGA-II population (default: the study's sampler options)")
    p.add_argument("--epochs", type=int, help="proxy epochs (default: the study's proxy)")
    p.add_argument("--train", type=int, help="training images (default: the study's data.train)")
    p.add_argument("--val", type=int, help="validation images (default: the study's data.val)")
    p.add_argument("--input-size", type=int, help="proxy resolution (default: the study's)")
    p.add_argument("--quick", action="store_true",
                   help="8 trials per run, population 4, 1 epoch on 64 images, val 32")
    p.add_argument("--jobs", type=int, default=1, help="(seed, sampler) studies run at a time, one process each")
    p.add_argument("--cache", default="runs/sampler_quality/objectives.jsonl",
                   help="objective cache shared by runs and invocations (JSON lines)")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.trials = args.trials or 8
        args.population = args.population or 4
        args.epochs, args.train, args.val = 1, 64, 32
    return args


def resolve_data(source: str) -> str:
    # study files give the dataset relative to the repo root (where launch.py runs)
    if Path(source).exists() or ":" in source or source.startswith("synthetic"):
        return source
    return str(REPO / source) if (REPO / source).exists() else source


class Objective:
    """PCK (proxy) and latency of a sampled arch, cached by arch id in a JSON-lines file.

    Several processes may share the file: each line is appended with one write, and a process
    rereads the file before training an arch it has not seen (another may have trained it)."""

    def __init__(self, space: SearchSpace, train, val, budget: ProxyBudget, meter: LatencyMeter,
                 cache_path: Path, setup: dict):
        self.space, self.train, self.val, self.budget, self.meter = space, train, val, budget, meter
        self.cache_path = cache_path
        self.setup = digest(setup)
        self.cache: dict[str, tuple[float, float] | None] = {}
        self.trained = 0
        self.evaluated_s = 0.0
        self._reload()

    def _reload(self) -> None:
        for rec in read_jsonl(self.cache_path):
            if rec.get("setup") == self.setup:
                values = None if rec["pck"] is None else (rec["pck"], rec["latency_ms"])
                self.cache.setdefault(rec["arch_id"], values)  # the first record of an arch wins

    def _store(self, arch_id: str, values: tuple[float, float] | None) -> None:
        append_jsonl(self.cache_path, {"setup": self.setup, "arch_id": arch_id,
                                       "pck": None if values is None else values[0],
                                       "latency_ms": None if values is None else values[1]})
        self.cache.setdefault(arch_id, values)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        spec = self.space.sample(trial)
        trial.set_user_attr("arch_id", spec.arch_id)
        if spec.arch_id not in self.cache:
            self._reload()
        if spec.arch_id not in self.cache:
            start = time.perf_counter()
            try:
                result = train_proxy(spec, self.train, self.val, self.budget, threads=1)
                latency = self.meter.measure(spec.to_dict())["latency_ms"]
                self._store(spec.arch_id, (float(result.pck), float(latency)))
            except NonFiniteLossError:
                self._store(spec.arch_id, None)
            self.trained += 1
            self.evaluated_s += time.perf_counter() - start
        values = self.cache[spec.arch_id]
        if values is None:
            raise NonFiniteLossError(f"arch {spec.arch_id} diverged")
        return values


def run_study(job: dict[str, Any]) -> dict[str, Any]:
    """One (seed, sampler) study of `job["trials"]` trials; in a worker process with --jobs > 1."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(1)
    cfg, seed, name = job["cfg"], job["seed"], job["sampler"]
    d, budget, lat = job["data"], ProxyBudget(**job["budget"]), cfg.latency
    train = load_poses(d["source"], cfg.data.train_split, budget.input_size, subset=d["train"], seed=cfg.data.seed)
    val = load_poses(d["source"], cfg.data.val_split, budget.input_size, subset=d["val"], seed=cfg.data.seed)
    meter = LatencyMeter(device=lat.device, threads=lat.threads, warmup=lat.warmup, runs=lat.runs,
                         min_seconds=lat.min_seconds, cache=True)
    objective = Objective(SearchSpace.from_dict(cfg.space, source=cfg.source), train, val, budget, meter,
                          Path(job["cache"]), job["setup"])
    if name == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = build_sampler(dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, seed=seed)))
    start = time.perf_counter()
    study = optuna.create_study(directions=cfg.directions, sampler=sampler, study_name=f"{name}-{seed}")
    study.set_metric_names(cfg.objective_names)
    study.optimize(objective, n_trials=job["trials"], catch=(NonFiniteLossError,))
    wall = time.perf_counter() - start
    print(f"seed {seed} {name:7s}: {job['trials']} trials in {wall:.0f}s, {objective.trained} archs trained "
          f"({objective.evaluated_s:.0f}s), the rest from the cache", flush=True)
    return {"seed": seed, "sampler": name, "trials": study.get_trials(deepcopy=False),
            "trained": objective.trained, "evaluated_s": objective.evaluated_s, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = StudyConfig.load(args.study)
    trials = args.trials or cfg.trials
    data = {"source": resolve_data(args.data or cfg.data.source),
            "train": args.train or cfg.data.train, "val": args.val or cfg.data.val}
    size = args.input_size or cfg.proxy.input_size
    # the study's budget, time cap included (as in the study, it bounds the slowest archs); the
    # cache keeps the first value of an arch, so both samplers still see one fixed function
    budget = dataclasses.replace(cfg.proxy, epochs=args.epochs or cfg.proxy.epochs, input_size=size,
                                 **({"max_seconds": None} if args.quick else {})).to_dict()
    sampler = cfg.sampler
    if args.sampler and args.sampler != sampler.name:
        sampler = dataclasses.replace(sampler, name=args.sampler, options={})
    if args.population:
        sampler = dataclasses.replace(sampler, options={**sampler.options, "population_size": args.population})
    sampler_cfg = dataclasses.replace(cfg, sampler=sampler)
    default = sampler.name

    t0 = time.perf_counter()
    for split, n in ((cfg.data.train_split, data["train"]), (cfg.data.val_split, data["val"])):
        load_poses(data["source"], split, size, subset=n, seed=cfg.data.seed)  # fill the disk cache once
    print(f"data {data['source']}: train {data['train']}, val {data['val']} at {size} px, {budget['epochs']} "
          f"epochs (prepared in {time.perf_counter() - t0:.0f}s); {trials} trials per run, seeds {args.seeds}; "
          f"sampler {default} {sampler.options} vs random; {args.jobs} at a time; "
          f"cache {args.cache}", flush=True)

    setup = {"data": data, "splits": [cfg.data.train_split, cfg.data.val_split, cfg.data.seed],
             "budget": budget, "latency": {k: getattr(cfg.latency, k) for k in CACHE_LATENCY_KEYS}}
    jobs = [{"cfg": sampler_cfg, "seed": seed, "sampler": name, "trials": trials, "data": data, "budget": budget,
             "cache": str(Path(args.cache).resolve()), "setup": setup}
            for seed in args.seeds for name in (default, "random")]
    if args.jobs > 1:
        with worker_pool(args.jobs) as pool:
            results = list(pool.map(run_study, jobs))
    else:
        results = [run_study(job) for job in jobs]
    studies: dict[tuple[int, str], optuna.Study] = {}
    for res in results:
        study = optuna.create_study(directions=cfg.directions, study_name=f"{res['sampler']}-{res['seed']}")
        study.add_trials(res["trials"])
        studies[(res["seed"], res["sampler"])] = study
    trained = sum(r["trained"] for r in results)
    evaluated_s = sum(r["evaluated_s"] for r in results)

    values = [t.values for s in studies.values() for t in s.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    worst_latency = max(v[1] for v in values)
    ref = [0.0, 1.1 * worst_latency]
    rows = []
    for seed in args.seeds:
        hv = {name: float(hypervolume_history(studies[(seed, name)], ref)["hypervolume"].iloc[-1])
              for (s, name) in studies if s == seed}
        rows.append({"seed": seed, **hv})
    mean = {name: sum(r[name] for r in rows) / len(rows) for name in (default, "random")}
    ratio = mean[default] / mean["random"] if mean["random"] > 0 else float("inf")

    print(f"\nhypervolume, reference point pck 0, latency {ref[1]:.3f} ms (worst x 1.1)")
    print(f"{'seed':>4}  {default:>10}  {'random':>10}  ratio")
    for r in rows:
        print(f"{r['seed']:>4}  {r[default]:10.4f}  {r['random']:10.4f}  "
              f"{r[default] / r['random'] if r['random'] else float('inf'):.3f}")
    print(f"mean  {mean[default]:10.4f}  {mean['random']:10.4f}  {ratio:.3f}   (target >= 1.10: "
          f"{'met' if ratio >= 1.10 else 'NOT met'})")
    print(f"{trained} archs trained in this invocation ({evaluated_s:.0f}s of training and latency), the rest "
          f"from {args.cache}; total {time.perf_counter() - t0:.0f}s")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": " ".join(sys.argv), "trials": trials, "seeds": args.seeds, "data": data,
            "budget": budget, "sampler": sampler.to_dict(), "reference_point": ref,
            "per_seed": rows, "mean": mean, "ratio": ratio, "trained_now": trained,
            "wall_s": time.perf_counter() - t0}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
