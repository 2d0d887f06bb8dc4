"""Tuning only: sampler_quality's runs on a surrogate of its cached proxy trainings (NAS-Bench-301 style).

    python benchmarks/sampler_surrogate.py --cache runs/sampler_quality_idle/objectives.jsonl \
        --budget 12 --seeds 0 1 2 3 4 5 6 7 8 9 --jobs 2 --variant "per_second=false"

An architecture the cache holds scores what it measured; any other one scores what a random forest
fitted on the cache predicts, plus noise of the forest's cross-validated error, drawn from the arch
id (so every run sees one fixed function); its latency and training seconds come from ridge fits of
their logs. Runs take seconds, not hours, so many seeds and sampler options can be tried; the
headline figures come from benchmarks/sampler_quality.py, on real trainings, never from this.
`--variant` sets costaware options of the `default` strategy (`key=value`, YAML values), each
variant a row against random search.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import sampler_quality as sq  # noqa: E402
from benchmarks.common import worker_pool  # noqa: E402
from search.strategy import Encoder, fit_log_ridge, model_costs  # noqa: E402


class SurrogateObjective(sq.Objective):
    """The cache's measurements where it has them, a fitted surrogate elsewhere."""

    def _prepared(self):
        if self._data is None:
            done = [r for r in self.cache.values() if r.get("pck") is not None]
            self._data = _fit(Encoder(self.setup.cfg.space), done)
        return self._data

    def _train(self, spec) -> None:
        # kept in memory only: a simulated record never reaches the cache file
        encoder, forest, noise, latency, seconds, bounds = self._prepared()
        arch = spec.to_dict()
        costs = model_costs(arch)
        x = encoder.matrix([arch], [costs])
        rng = np.random.default_rng(int(hashlib.sha256(spec.arch_id.encode()).hexdigest()[:8], 16))
        pck = max(float(forest.predict(x)[0] + noise * rng.standard_normal()), 0.0)
        # latency noise of about the ridge fit's own error (13 %, docs/results.md section 6)
        lat = float(latency(x)[0] * np.exp(0.1 * rng.standard_normal()))
        self.cache.setdefault(
            spec.arch_id,
            {
                "setup": self.key,
                "arch_id": spec.arch_id,
                "arch": arch,
                "pck": pck,
                "curve": [pck],
                "latency_ms": lat,
                "train_s": float(np.clip(seconds(x)[0], *bounds)),
                "params": int(costs["params"]),
            },
        )


def _fit(encoder: Encoder, done: list[dict]):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import cross_val_predict

    x = encoder.matrix([r["arch"] for r in done], [model_costs(r["arch"]) for r in done])
    y = np.array([r["pck"] for r in done])
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=0)
    noise = float(np.std(y - cross_val_predict(forest, x, y, cv=5)))
    secs = np.array([r["train_s"] for r in done])
    return (
        encoder,
        forest.fit(x, y),
        noise,
        fit_log_ridge(x, np.array([r["latency_ms"] for r in done])),
        fit_log_ridge(x, secs),
        (secs.min(), secs.max()),
    )


def run_one(job: dict) -> dict:
    sq.Objective = SurrogateObjective
    return sq.run_one(job)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cache", required=True)
    p.add_argument("--budget", type=float, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--variant", action="append", default=[], help="costaware options, 'k=v,k=v' (repeatable)"
    )
    args = p.parse_args()
    setup = sq.make_setup(sq.parse_args(["--budget", str(args.budget), "--cache", args.cache]))
    base = sq.strategy_config(setup, "default")
    strategies = {"random": sq.STRATEGIES["random"]}
    for v in args.variant or [""]:
        opts = dict(
            base["sampler"]["options"],
            **{
                k: yaml.safe_load(val) for k, val in (kv.split("=", 1) for kv in v.split(",") if kv)
            },
        )
        strategies[v or "default"] = {**base, "sampler": {**base["sampler"], "options": opts}}
    jobs = [
        {"name": n, "strategy": s, "seed": seed, "budget": args.budget, "setup": setup}
        for seed in args.seeds
        for n, s in strategies.items()
    ]
    with worker_pool(args.jobs) as pool:
        results = list(pool.map(run_one, jobs))
    known = dict(
        sq.Objective(setup).cache
    )  # the measured records, one per arch, as the runs saw them
    for res in results:
        for t in res["trials"]:
            known.setdefault(t["arch_id"], {"pck": t["pck"], "latency_ms": t["latency_ms"]})
    fig = sq.figures(results, list(known.values()), list(strategies), args.seeds)
    sq.print_figures(fig, argparse.Namespace(seeds=args.seeds), args.budget, setup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
