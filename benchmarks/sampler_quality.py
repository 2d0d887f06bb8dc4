"""Hypervolume reached by the study's default sampler (NSGA-II) versus random search, equal budget.

    python benchmarks/sampler_quality.py --quick          # a few minutes: 8 trials per run, tiny proxy
    python benchmarks/sampler_quality.py                  # 24 trials per run (the softgate study's), ~30-45 min on 2 cores

For each seed, one Optuna study per sampler runs the same number of trials on the softgate design
space, each trial a real-data (LSPET) proxy: `trainers.proxy.train_proxy` for PCK and the study's
latency meter (`search.latency.LatencyMeter`) for latency. Objectives are cached by arch id, so an
architecture sampled twice (in any run) gets the same values: the samplers are compared on one
fixed function, and the benchmark runs faster. The hypervolume uses one reference point for all
runs: PCK 0 and the worst latency of any evaluated arch x 1.1. Target: mean NSGA-II HV / mean
random HV >= 1.10.

Sequential and single-threaded on purpose (torch threads = 1): the runs do not disturb each other.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402
import torch  # noqa: E402

from search.config import StudyConfig  # noqa: E402
from search.latency import LatencyMeter  # noqa: E402
from search.report import hypervolume_history  # noqa: E402
from search.study import build_sampler  # noqa: E402
from space.search_space import SearchSpace  # noqa: E402
from trainers.data import load_poses  # noqa: E402
from trainers.proxy import NonFiniteLossError, ProxyBudget, train_proxy  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="softgate", help="study file giving the space, data, sampler and latency setup")
    p.add_argument("--data", help="override the study's data (default: its LSPET path)")
    p.add_argument("--trials", type=int, help="trials per run (default: the study's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sampler", choices=("nsga2", "tpe", "gp"),
                   help="compare this sampler with random instead of the study's (its options are dropped)")
    p.add_argument("--population", type=int, help="NSGA-II population (default: the study's sampler options)")
    p.add_argument("--epochs", type=int, default=2, help="proxy epochs")
    p.add_argument("--train", type=int, default=300, help="training images (LSPET subset)")
    p.add_argument("--val", type=int, default=100, help="validation images")
    p.add_argument("--input-size", type=int, help="proxy resolution (default: the study's)")
    p.add_argument("--quick", action="store_true",
                   help="8 trials per run, population 4, 1 epoch on 64 images, val 32")
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
    """PCK (proxy) and latency of a sampled arch, cached by arch id across all runs."""

    def __init__(self, space: SearchSpace, train, val, budget: ProxyBudget, meter: LatencyMeter):
        self.space, self.train, self.val, self.budget, self.meter = space, train, val, budget, meter
        self.cache: dict[str, tuple[float, float] | None] = {}
        self.evaluated_s = 0.0

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        spec = self.space.sample(trial)
        trial.set_user_attr("arch_id", spec.arch_id)
        if spec.arch_id not in self.cache:
            start = time.perf_counter()
            try:
                result = train_proxy(spec, self.train, self.val, self.budget, threads=1)
                latency = self.meter.measure(spec.to_dict())["latency_ms"]
                self.cache[spec.arch_id] = (float(result.pck), float(latency))
            except NonFiniteLossError:
                self.cache[spec.arch_id] = None
            self.evaluated_s += time.perf_counter() - start
        values = self.cache[spec.arch_id]
        if values is None:
            raise NonFiniteLossError(f"arch {spec.arch_id} diverged")
        return values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(1)
    cfg = StudyConfig.load(args.study)
    trials = args.trials or cfg.trials
    data = resolve_data(args.data or cfg.data["source"])
    size = args.input_size or cfg.proxy["input_size"]
    budget = ProxyBudget(**{**cfg.proxy, "epochs": args.epochs, "max_seconds": None, "input_size": size})
    sampler_cfg = copy.deepcopy(cfg)
    if args.sampler and args.sampler != cfg.sampler["name"]:
        sampler_cfg.sampler.update(name=args.sampler, options={})
    if args.population:
        sampler_cfg.sampler["options"] = {**sampler_cfg.sampler["options"], "population_size": args.population}

    t0 = time.perf_counter()
    train = load_poses(data, cfg.data["train_split"], size, subset=args.train, seed=cfg.data["seed"])
    val = load_poses(data, cfg.data["val_split"], size, subset=args.val, seed=cfg.data["seed"])
    print(f"data {data}: train {len(train.images)}, val {len(val.images)} at {size} px "
          f"(prepared in {time.perf_counter() - t0:.0f}s); {trials} trials per run, seeds {args.seeds}; "
          f"sampler {sampler_cfg.sampler['name']} {sampler_cfg.sampler['options']} vs random", flush=True)

    lat = cfg.latency
    meter = LatencyMeter(device=lat["device"], threads=lat["threads"], warmup=lat["warmup"], runs=lat["runs"],
                         min_seconds=lat["min_seconds"], cache=True)
    objective = Objective(SearchSpace.from_dict(cfg.space, source=cfg.source), train, val, budget, meter)
    studies: dict[tuple[int, str], optuna.Study] = {}
    for seed in args.seeds:
        sampler_cfg.sampler["seed"] = seed
        for name, sampler in ((sampler_cfg.sampler["name"], build_sampler(sampler_cfg)),
                              ("random", optuna.samplers.RandomSampler(seed=seed))):
            start = time.perf_counter()
            study = optuna.create_study(directions=cfg.directions, sampler=sampler, study_name=f"{name}-{seed}")
            study.set_metric_names(cfg.objective_names)
            study.optimize(objective, n_trials=trials, catch=(NonFiniteLossError,))
            studies[(seed, name)] = study
            print(f"seed {seed} {name:7s}: {trials} trials in {time.perf_counter() - start:.0f}s, "
                  f"{len(objective.cache)} archs evaluated so far", flush=True)

    values = [t.values for s in studies.values() for t in s.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    worst_latency = max(v[1] for v in values)
    ref = [0.0, 1.1 * worst_latency]
    rows = []
    for seed in args.seeds:
        hv = {name: float(hypervolume_history(studies[(seed, name)], ref)["hypervolume"].iloc[-1])
              for (s, name) in studies if s == seed}
        rows.append({"seed": seed, **hv})
    default = sampler_cfg.sampler["name"]
    mean = {name: sum(r[name] for r in rows) / len(rows) for name in (default, "random")}
    ratio = mean[default] / mean["random"] if mean["random"] > 0 else float("inf")

    print(f"\nhypervolume, reference point pck 0, latency {ref[1]:.3f} ms (worst x 1.1)")
    print(f"{'seed':>4}  {default:>10}  {'random':>10}  ratio")
    for r in rows:
        print(f"{r['seed']:>4}  {r[default]:10.4f}  {r['random']:10.4f}  "
              f"{r[default] / r['random'] if r['random'] else float('inf'):.3f}")
    print(f"mean  {mean[default]:10.4f}  {mean['random']:10.4f}  {ratio:.3f}   (target >= 1.10: "
          f"{'met' if ratio >= 1.10 else 'NOT met'})")
    print(f"{len(objective.cache)} distinct archs evaluated in {objective.evaluated_s:.0f}s; "
          f"total {time.perf_counter() - t0:.0f}s")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": " ".join(sys.argv), "trials": trials, "seeds": args.seeds, "data": data,
            "budget": budget.to_dict(), "sampler": sampler_cfg.sampler, "reference_point": ref,
            "per_seed": rows, "mean": mean, "ratio": ratio, "archs": len(objective.cache),
            "wall_s": time.perf_counter() - t0}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
