"""Search strategies against random search at equal compute, on the study's own LSPET proxy.

    python benchmarks/sampler_quality.py --jobs 2                    # 5 seeds, the study's budget: hours
    python benchmarks/sampler_quality.py --jobs 2 --budget 20        # what docs/results.md reports
    python benchmarks/sampler_quality.py --quick                     # minutes: tiny proxy, 2 seeds

Every strategy gets the same compute per run: `--budget` N is N x the proxy's time cap
(`proxy.max_seconds`, 75 s for softgate; `--unit-seconds` otherwise) of training seconds, each
trial charged the seconds its training took (measured once, when the arch was first trained, and
kept in the cache, so the charge is the same for every strategy and seed). Seconds, not
image-epochs: under the time cap a small arch completes more epochs than a large one in the same
time, so image-epochs would charge fast archs more. A trial stopped early by ASHA costs the
fraction of its training's seconds up to that epoch, and a trial that repeats an architecture
already trained in the same run costs nothing (the study reuses such results too).

Strategies (`--strategies`): `random`; `nsga2` (the previous default); the cost-aware sampler's
parts alone and together, `warm` (reference designs first, then random), `cost` (cost-aware
selection, no warm start), `mf` (random with ASHA), `warm+cost`, `all` (warm+cost with ASHA);
and `default`, the study file's own sampler and scheduler.

Each run is an Optuna ask/tell study of sequential trials. Every architecture is trained once,
in full (the study's proxy budget, threads 1), and its per-epoch PCK curve and latency go to a
JSON-lines cache (`--cache`) shared by runs, strategies, workers and invocations: so all
strategies see one fixed function, and ASHA's decisions are replayed from the curves with Ray's
own bracket bookkeeping (a stopped trial is PRUNED, as in the study, and does not count on the
front). Finished runs are logged too (`--log`): an interrupted benchmark rerun with the same
arguments resumes where it stopped.

Figures, per strategy, mean and spread over seeds:
- hypervolume regret: HV of the union of every architecture the cache holds under this proxy
  (the best front known) minus HV of the run's front; target: default / random <= 0.5, with a
  paired t-test and a one-sided Wilcoxon test over seeds;
- the hypervolume ratio to random with the fixed reference point (PCK 0, 1.1 x the slowest
  latency in the cache), kept for continuity: it stays near 1 because most of the area under
  PCK ~0.1 is reached by any architecture;
- the best PCK under latency budgets: the 25th, 50th and 75th percentile of latency over the
  space, estimated from every arch the random runs drew (uniform draws from the space).
The last line is `regret ratio (default/random) X.XX over N seeds`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from optuna._hypervolume import compute_hypervolume  # noqa: E402  (optuna exposes it no other way)
from optuna.trial import TrialState  # noqa: E402

from benchmarks.common import append_jsonl, digest, read_jsonl, worker_pool  # noqa: E402
from search.config import StudyConfig, build_sampler  # noqa: E402
from search.latency import LatencyMeter, meter_settings  # noqa: E402
from search.strategy import TRAIN_SECONDS  # noqa: E402
from space.references import references_in_space  # noqa: E402
from space.spec import ArchSpec  # noqa: E402
from trainers.data import load_poses  # noqa: E402
from trainers.proxy import NonFiniteLossError, ProxyBudget, train_proxy  # noqa: E402

ASHA = {"grace_period": 1, "reduction_factor": 2}  # the study's `scheduler: {name: asha}` defaults
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": {"name": "random"}, "asha": None},
    "nsga2": {"sampler": {"name": "nsga2", "options": {"population_size": 8}}, "asha": None},
    "warm": {"sampler": {"name": "costaware", "options": {"cost_aware": False}}, "asha": None},
    "cost": {"sampler": {"name": "costaware", "options": {"warm_start": False}}, "asha": None},
    "mf": {"sampler": {"name": "random"}, "asha": ASHA},
    "warm+cost": {"sampler": {"name": "costaware", "options": {}}, "asha": None},
    "all": {"sampler": {"name": "costaware", "options": {}}, "asha": ASHA},
}
MAX_REPEATS = 50  # a run ends after this many trials in a row of archs it already has
DEFAULT_STRATEGIES = ("random", "default", "warm", "cost", "mf", "all")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--study",
        default="softgate",
        help="study file giving the space, data, proxy, sampler and latency",
    )
    p.add_argument("--data", help="override the study's data (default: its LSPET path)")
    p.add_argument(
        "--budget",
        type=float,
        help="training seconds per run, in units of the proxy's max_seconds "
        "(default: the study's trials)",
    )
    p.add_argument(
        "--unit-seconds", type=float, help="seconds per budget unit (default: proxy.max_seconds)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--strategies",
        nargs="+",
        default=list(DEFAULT_STRATEGIES),
        choices=sorted(STRATEGIES) + ["default"],
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="budget 6 x 5 s, 2 seeds, 2 epochs on 64 images, val 32",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs (and prefill trainings) at a time, one process each",
    )
    p.add_argument(
        "--cache",
        default="runs/sampler_quality/objectives.jsonl",
        help="objective cache (JSON lines)",
    )
    p.add_argument(
        "--log", default="runs/sampler_quality/runs.jsonl", help="finished runs (JSON lines)"
    )
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.budget = args.budget or 6
        args.seeds = args.seeds if argv and "--seeds" in argv else [0, 1]
    return args


def resolve_data(source: str) -> str:
    # study files give the dataset relative to the repo root (where launch.py runs)
    if Path(source).exists() or ":" in source:  # a generated format (synthetic) falls through
        return source
    return str(REPO / source) if (REPO / source).exists() else source


@dataclasses.dataclass(frozen=True)
class Setup:
    """What an objective value depends on: one cache key for every strategy, seed and worker."""

    cfg: StudyConfig
    data: dict
    budget: dict
    cache: str
    unit_s: float  # seconds of training per unit of --budget

    @property
    def key(self) -> str:
        return digest(
            {
                "data": self.data,
                "splits": [self.cfg.data.train_split, self.cfg.data.val_split, self.cfg.data.seed],
                "budget": self.budget,
                "latency": meter_settings(self.cfg.latency.to_dict()),
            }
        )


def make_setup(args: argparse.Namespace) -> Setup:
    cfg = StudyConfig.load(args.study)
    data = {
        "source": resolve_data(args.data or cfg.data.source),
        "train": cfg.data.train,
        "val": cfg.data.val,
    }
    budget = cfg.proxy
    if args.quick:
        data.update(train=64, val=32)
        budget = dataclasses.replace(budget, epochs=2, max_seconds=None)
        args.unit_seconds = args.unit_seconds or 5.0
    unit = args.unit_seconds or budget.max_seconds
    if not unit:
        raise SystemExit("error: the proxy has no max_seconds: give --unit-seconds")
    return Setup(cfg, data, budget.to_dict(), str(Path(args.cache).resolve()), float(unit))


class Objective:
    """The full proxy training of an arch (per-epoch PCK curve, latency, seconds), cached by arch id.

    Several processes share the cache file: each record is one append, and a process rereads the
    file before training an arch it has not seen (another may have trained it)."""

    def __init__(self, setup: Setup):
        self.setup, self.key = setup, setup.key
        self.path = Path(setup.cache)
        self.cache: dict[str, dict] = {}
        self.trained, self.trained_s = 0, 0.0
        self._data = None
        self._meter = None
        self.reload()

    def reload(self) -> None:
        for rec in read_jsonl(self.path):
            if rec.get("setup") == self.key:
                self.cache.setdefault(rec["arch_id"], rec)  # the first record of an arch wins

    def _prepared(self):
        if self._data is None:
            cfg, d, size = self.setup.cfg, self.setup.data, self.setup.budget["input_size"]
            self._data = tuple(
                load_poses(d["source"], split, size, subset=n, seed=cfg.data.seed)
                for split, n in ((cfg.data.train_split, d["train"]), (cfg.data.val_split, d["val"]))
            )
            self._meter = LatencyMeter(**meter_settings(self.setup.cfg.latency.to_dict()))
        return self._data

    def evaluate(self, arch: dict) -> dict:
        spec = ArchSpec.from_dict(arch)
        if spec.arch_id not in self.cache:
            self.reload()
        if spec.arch_id not in self.cache:
            self._train(spec)
        return self.cache[spec.arch_id]

    def _train(self, spec: ArchSpec) -> None:
        train, val = self._prepared()
        start = time.perf_counter()
        rec = {"setup": self.key, "arch_id": spec.arch_id, "arch": spec.to_dict()}
        try:
            result = train_proxy(spec, train, val, ProxyBudget(**self.setup.budget), threads=1)
            rec.update(
                pck=float(result.pck),
                curve=[float(v) for v in result.val_curve],
                train_s=float(result.wall_s),
                params=int(result.params),
            )
            rec["latency_ms"] = float(self._meter.measure(spec.to_dict())["latency_ms"])
        except NonFiniteLossError:
            rec.update(pck=None, curve=[], train_s=time.perf_counter() - start, latency_ms=None)
        append_jsonl(self.path, rec)
        self.cache.setdefault(spec.arch_id, rec)
        self.trained += 1
        self.trained_s += time.perf_counter() - start


def prefill(setup: Setup, arch: dict) -> str:
    """Train one arch into the cache (a worker job: the reference designs every warm start asks)."""
    torch.set_num_threads(1)
    Objective(setup).evaluate(arch)
    return ArchSpec.from_dict(arch).arch_id


def strategy_config(setup: Setup, name: str) -> dict[str, Any]:
    if name != "default":
        return STRATEGIES[name]
    cfg = setup.cfg
    return {
        "sampler": {"name": cfg.sampler.name, "options": dict(cfg.sampler.options)},
        "asha": None
        if cfg.scheduler is None
        else {
            "grace_period": cfg.scheduler.grace_period,
            "reduction_factor": cfg.scheduler.reduction_factor,
        },
    }


def make_sampler(setup: Setup, strategy: dict, seed: int) -> optuna.samplers.BaseSampler:
    sampler = dataclasses.replace(
        setup.cfg.sampler,
        name=strategy["sampler"]["name"],
        seed=seed,
        options=strategy["sampler"].get("options", {}),
    )
    return build_sampler(dataclasses.replace(setup.cfg, sampler=sampler))


def make_bracket(strategy: dict, epochs: int):
    """Ray Tune's own ASHA bookkeeping, set up as search/study.py sets up its ASHAScheduler."""
    if not strategy["asha"]:
        return None
    from ray.tune.schedulers.async_hyperband import _Bracket

    a = strategy["asha"]
    return _Bracket(
        min_t=a["grace_period"], max_t=epochs + 1, reduction_factor=a["reduction_factor"], s=0
    )


def stopped_at(bracket, trial_number: int, curve: list[float]) -> int | None:
    """The epoch at which ASHA stops this trial (replaying its curve), or None if it runs to the end."""
    if bracket is None:
        return None
    from ray.tune.schedulers import TrialScheduler

    trial = types.SimpleNamespace(trial_id=str(trial_number))
    for epoch, pck in enumerate(curve[:-1], start=1):  # the last epoch ends the trial anyway
        if bracket.on_result(trial, epoch, pck) == TrialScheduler.STOP:
            return epoch
    return None


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One (strategy, seed) run under the compute budget; in a worker process with --jobs > 1."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(1)
    setup, strategy, seed = job["setup"], job["strategy"], job["seed"]
    space = setup.cfg.space
    objective = Objective(setup)
    study = optuna.create_study(
        directions=setup.cfg.directions, sampler=make_sampler(setup, strategy, seed)
    )
    study.set_metric_names(setup.cfg.objective_names)
    bracket = make_bracket(strategy, int(setup.budget["epochs"]))
    limit, spent, trials, seen = job["budget"] * setup.unit_s, 0.0, [], set()
    start = time.perf_counter()
    repeats = 0  # in a row: a small space can be used up before the budget is
    while spent < limit and repeats < MAX_REPEATS:
        trial = study.ask()
        spec = space.sample(trial)
        rec = objective.evaluate(spec.to_dict())
        repeat = spec.arch_id in seen
        seen.add(spec.arch_id)
        row = {
            "number": trial.number,
            "arch_id": spec.arch_id,
            "cost": 0,
            "state": "COMPLETE",
            "pck": rec["pck"],
            "latency_ms": rec["latency_ms"],
        }
        if rec["pck"] is None:  # diverged: its training still cost its seconds
            row.update(state="FAIL", cost=0.0 if repeat else float(rec["train_s"]))
            study.tell(trial, state=TrialState.FAIL)
        else:
            stop = None if repeat else stopped_at(bracket, trial.number, rec["curve"])
            share = (stop or len(rec["curve"])) / max(len(rec["curve"]), 1)
            row["cost"] = 0.0 if repeat else share * float(rec["train_s"])
            _tell(study, trial, setup.cfg.objective_names, rec, stop, row)
        spent += row["cost"]
        repeats = repeats + 1 if repeat else 0
        trials.append(row)
    return {
        "strategy": job["name"],
        "seed": seed,
        "config": strategy,
        "budget": job["budget"],
        "setup": setup.key,
        "trials": trials,
        "spent": spent,
        "trained_now": objective.trained,
        "trained_s": objective.trained_s,
        "wall_s": time.perf_counter() - start,
    }


def _tell(study, trial, names: list[str], rec: dict, stop: int | None, row: dict) -> None:
    if stop is not None:  # as the study's searcher: PRUNED, its last PCK kept as a user attr
        row.update(state="PRUNED", pck=rec["curve"][stop - 1])
        trial.set_user_attr("pck", row["pck"])
        trial.set_user_attr("pruned_at_epoch", stop)
        study.tell(trial, state=TrialState.PRUNED)
        return
    values = {"pck": rec["pck"], "latency_ms": rec["latency_ms"], "params": rec.get("params")}
    trial.set_user_attr(TRAIN_SECONDS, float(rec["train_s"]))  # as a study's trial records it
    study.tell(trial, [float(values[n]) for n in names])


# -- figures --------------------------------------------------------------------------------------
def front_points(rows: list[dict]) -> np.ndarray:
    """(-pck, latency) of the COMPLETE rows: optuna's hypervolume minimises."""
    pts = [(-r["pck"], r["latency_ms"]) for r in rows if r["state"] == "COMPLETE"]
    return np.asarray(pts, float).reshape(-1, 2)


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    points = points[(points < ref).all(axis=1)]
    return float(compute_hypervolume(points, ref)) if len(points) else 0.0


def best_under(rows: list[dict], limit: float) -> float:
    return max(
        (r["pck"] for r in rows if r["state"] == "COMPLETE" and r["latency_ms"] <= limit),
        default=0.0,
    )


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def ratio(a: float, b: float) -> float:
    # both fronts complete (a small space): equally good
    return a / b if b > 1e-12 else (1.0 if a <= 1e-12 else float("inf"))


def paired_tests(a: list[float], b: list[float]) -> dict[str, float]:
    """Is `a` (the strategy's regret) lower than `b` (random's), seed by seed?"""
    from scipy import stats

    if len(a) < 2 or all(x == y for x, y in zip(a, b)):
        return {"t_p": float("nan"), "wilcoxon_p": float("nan")}
    return {
        "t_p": float(stats.ttest_rel(a, b).pvalue),
        "wilcoxon_p": float(stats.wilcoxon(a, b, alternative="less").pvalue),
    }


def figures(
    results: list[dict], cache: list[dict], strategies: list[str], seeds: list[int]
) -> dict:
    done = [r for r in cache if r.get("pck") is not None]
    ref = np.array([0.0, 1.1 * max(r["latency_ms"] for r in done)])
    best = hypervolume(front_points([dict(r, state="COMPLETE") for r in done]), ref)
    drawn = sorted(
        {
            t["latency_ms"]
            for r in results
            if r["strategy"] == "random"
            for t in r["trials"]
            if t["latency_ms"] is not None
        }
    )
    budgets = {q: float(np.percentile(drawn, q)) for q in (25, 50, 75)} if drawn else {}
    by = {(r["strategy"], r["seed"]): r for r in results}
    table = {}
    for name in strategies:
        runs = [by[(name, s)] for s in seeds]
        hv = [hypervolume(front_points(r["trials"]), ref) for r in runs]
        table[name] = {
            "hv": hv,
            "regret": [best - h for h in hv],
            "trials": [len(r["trials"]) for r in runs],
            "spent": [r["spent"] for r in runs],
            "best_under": {
                q: [best_under(r["trials"], b) for r in runs] for q, b in budgets.items()
            },
        }
    rnd = table.get("random")
    for row in table.values():
        if rnd:
            row["hv_ratio"] = statistics.fmean(row["hv"]) / max(statistics.fmean(rnd["hv"]), 1e-12)
            row["regret_ratio"] = ratio(
                statistics.fmean(row["regret"]), statistics.fmean(rnd["regret"])
            )
            row["tests"] = paired_tests(row["regret"], rnd["regret"])
    return {
        "reference_point": ref.tolist(),
        "best_known_hv": best,
        "archs_known": len(done),
        "latency_budgets": budgets,
        "table": table,
    }


def print_figures(fig: dict, args: argparse.Namespace, budget: float, setup: Setup) -> None:
    print(
        f"\nbudget {budget:g} x {setup.unit_s:g} s = {budget * setup.unit_s:.0f} s of proxy training per run; "
        f"seeds {args.seeds}; reference point pck 0, latency {fig['reference_point'][1]:.2f} ms; best known "
        f"front: HV {fig['best_known_hv']:.4f} over {fig['archs_known']} archs"
    )
    qs = list(fig["latency_budgets"])
    head = "  ".join(f"best@p{q}({fig['latency_budgets'][q]:.1f}ms)" for q in qs)
    print(
        f"{'strategy':10s} {'trials':>6s} {'HV':>14s} {'regret':>15s} {'regret/rnd':>10s} {'HV/rnd':>6s} "
        f"{'t-test p':>8s} {'wilcoxon p':>10s}  {head}"
    )
    for name, row in fig["table"].items():
        hv, reg = mean_sd(row["hv"]), mean_sd(row["regret"])
        tests = row.get("tests", {})
        bests = "  ".join(
            f"{'{:.3f} +- {:.3f}'.format(*mean_sd(row['best_under'][q])):>18s}" for q in qs
        )
        print(
            f"{name:10s} {statistics.fmean(row['trials']):6.1f} {hv[0]:7.4f}+-{hv[1]:.4f} {reg[0]:8.4f}+-{reg[1]:.4f} "
            f"{row.get('regret_ratio', float('nan')):10.2f} {row.get('hv_ratio', float('nan')):6.3f} "
            f"{tests.get('t_p', float('nan')):8.3f} {tests.get('wilcoxon_p', float('nan')):10.3f}  {bests}"
        )


def surrogate_check(setup: Setup, cache: list[dict], folds: int = 5) -> dict[str, float]:
    """How well the costaware sampler's models predict what the cache measured: 5-fold cross-
    validation over every cached arch of the GP (PCK) and the ridge fit (log latency)."""
    from scipy.stats import kendalltau

    from search.strategy import Encoder, fit_gp, fit_log_ridge, model_costs

    done = [r for r in cache if r.get("pck") is not None]
    if len(done) < 2 * folds:
        return {}
    space = setup.cfg.space
    x = Encoder(space).matrix([r["arch"] for r in done], [model_costs(r["arch"]) for r in done])
    pck, lat = np.array([r["pck"] for r in done]), np.array([r["latency_ms"] for r in done])
    pred_pck, pred_lat = np.zeros(len(done)), np.zeros(len(done))
    for k in range(folds):
        test = np.arange(len(done)) % folds == k
        pred_pck[test] = fit_gp(x[~test], pck[~test], seed=0).predict(x[test])
        pred_lat[test] = fit_log_ridge(x[~test], lat[~test])(x[test])
    flops = x[:, -1]
    return {
        "archs": len(done),
        "gp_pck_tau": float(kendalltau(pred_pck, pck).statistic),
        "latency_tau": float(kendalltau(pred_lat, lat).statistic),
        "latency_mape": float(np.mean(np.abs(pred_lat - lat) / lat)),
        "flops_latency_tau": float(kendalltau(flops, lat).statistic),
    }


# -- driver ---------------------------------------------------------------------------------------
def run_key(job: dict) -> tuple:
    # a run is known by what it ran, not by its name: `default` shares the runs of its twin (all, ...)
    return (job["seed"], digest(job["strategy"]), job["budget"], job["setup"].key)


def run_all(jobs: list[dict], workers: int, log: Path) -> list[dict]:
    done = {(r["seed"], digest(r["config"]), r["budget"], r["setup"]): r for r in read_jsonl(log)}
    todo = list({run_key(j): j for j in jobs if run_key(j) not in done}.values())
    print(f"{len(jobs) - len(todo)} runs from {log}, {len(todo)} to run", flush=True)

    def finished(res: dict) -> None:
        append_jsonl(log, res)
        done[(res["seed"], digest(res["config"]), res["budget"], res["setup"])] = res
        print(
            f"  {res['strategy']:9s} seed {res['seed']}: {len(res['trials'])} trials, {res['trained_now']} "
            f"trained now ({res['trained_s']:.0f}s), run {res['wall_s']:.0f}s",
            flush=True,
        )

    if workers > 1:
        with worker_pool(workers) as pool:
            for res in pool.map(run_one, todo):
                finished(res)
    else:
        for job in todo:
            finished(run_one(job))
    return [dict(done[run_key(j)], strategy=j["name"]) for j in jobs]


def prefill_references(setup: Setup, workers: int) -> None:
    """Train the reference designs first, in parallel: every warm-started run asks for them."""
    space = setup.cfg.space
    known = Objective(setup).cache
    sizes = setup.cfg.sampler.options.get("reference_sizes", "smallest")  # the sampler's default
    archs = [
        a
        for a in references_in_space(space, sizes=sizes)
        if ArchSpec.from_dict(a).arch_id not in known
    ]
    if not archs:
        return
    print(f"prefill: training {len(archs)} reference designs", flush=True)
    if workers > 1:
        with worker_pool(workers) as pool:
            list(pool.map(prefill, [setup] * len(archs), archs))
    else:
        for arch in archs:
            prefill(setup, arch)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup = make_setup(args)
    budget = args.budget or setup.cfg.trials
    t0 = time.perf_counter()
    known_before = len(Objective(setup).cache)
    print(
        f"data {setup.data}, proxy {setup.budget}; strategies {args.strategies}; seeds {args.seeds}; "
        f"budget {budget:g} x {setup.unit_s:g} s of training per run; cache {args.cache}",
        flush=True,
    )
    if any(strategy_config(setup, n)["sampler"]["name"] == "costaware" for n in args.strategies):
        prefill_references(setup, args.jobs)
    # seed by seed, so that an interrupted benchmark has whole pairs; random first in each: warm and
    # mf replay its draws from the cache
    order = sorted(args.strategies, key=lambda n: n != "random")
    jobs = [
        {
            "name": n,
            "strategy": strategy_config(setup, n),
            "seed": s,
            "budget": budget,
            "setup": setup,
        }
        for s in args.seeds
        for n in order
    ]
    results = run_all(jobs, args.jobs, Path(args.log))
    # one record per arch, the one every run saw: two workers may have trained an arch at once
    cache = list(Objective(setup).cache.values())
    trained_now = len(cache) - known_before
    fig = figures(results, cache, args.strategies, args.seeds)
    print_figures(fig, args, budget, setup)
    fig["surrogate"] = surrogate_check(setup, cache)
    if fig["surrogate"]:
        sc = fig["surrogate"]
        print(
            f"costaware models, 5-fold over {sc['archs']} cached archs: GP PCK Kendall tau {sc['gp_pck_tau']:.2f}; "
            f"latency ridge tau {sc['latency_tau']:.2f}, mean abs error {100 * sc['latency_mape']:.1f} % "
            f"(FLOPs alone: tau {sc['flops_latency_tau']:.2f})"
        )
    print(f"total {time.perf_counter() - t0:.0f}s")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "seeds": args.seeds,
                    "budget": budget,
                    "data": setup.data,
                    "proxy": setup.budget,
                    "trained_now": trained_now,
                    **fig,
                },
                indent=2,
            )
        )
    if "default" in fig["table"] and "random" in fig["table"]:
        print(
            f"regret ratio (default/random) {fig['table']['default']['regret_ratio']:.2f} over {len(args.seeds)} seeds"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
