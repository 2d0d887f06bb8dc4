"""Is the front's latency decided by the architectures or by the machine's drift?

    python benchmarks/front_latency.py --study softgate          # after `launch.py --study softgate`

Takes a finished study's front plus every architecture within the noise band of it
(search/remeasure.py), re-measures them `--passes` times, each pass in a fresh process, interleaved
round-robin until every ratio to the reference is within `--target` (space/interleaved.py), and prints:
  (a) per arch, the spread over the passes (CV) of its ratio to the reference (what decides the
      front) and of its milliseconds;
  (b) in how many passes the recomputed Pareto membership equals the majority membership;
  (c) Kendall tau and median relative error of the in-study latencies against the re-measured ones;
  (d) the operator table's (space/latency_table.py) tau and error against them, calibrated
      leave-one-out;
and last `front latency: max CV X.X % over N archs, membership stable in K of P`.
Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from benchmarks.common import worker_pool  # noqa: E402

LATENCY = {"device": "cpu", "threads": 1, "backend": "torch", "clock": "auto"}


def candidates(storage: str, study_name: str, band: float) -> tuple[dict, dict, list]:
    """(key -> arch, key -> in-study latency, the Points) of the front and its noise band."""
    import optuna

    from search.remeasure import Point, within_band

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage)
    archs, points = {}, {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        a = t.user_attrs
        if "arch" in a and "pck" in a and "latency_ms" in a and a["arch_id"] not in points:
            archs[a["arch_id"]] = a["arch"]
            points[a["arch_id"]] = Point(a["arch_id"], float(a["pck"]), float(a["latency_ms"]))
    keep = within_band(list(points.values()), band)
    return (
        {k: archs[k] for k in keep},
        {k: points[k].latency for k in keep},
        [points[k] for k in keep],
    )


def one_pass(job: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: one interleaved pass over the archs."""
    import torch

    from search.remeasure import quiet_latencies

    torch.set_num_threads(1)
    t0 = time.time()
    quiet = quiet_latencies(
        job["archs"],
        job["latency"],
        reference=job["reference"],
        target=job["target"],
        max_seconds=job["max_seconds"],
    )
    return {"seconds": time.time() - t0, "quiet": quiet}


def run_passes(job: dict[str, Any], n: int, log: Path) -> list[dict[str, Any]]:
    """`n` passes, each in a fresh process; every finished pass is appended to `log` (JSON lines),
    and the passes already there for the same archs and settings are taken, not measured again."""
    key = json.dumps(job, sort_keys=True)
    passes = []
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("job") == key:
                passes.append(row["pass"])
    if passes:
        print(f"{min(len(passes), n)} pass(es) taken from {log}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    while len(passes) < n:
        with worker_pool(1) as pool:
            passes.append(pool.submit(one_pass, job).result())
        with log.open("a") as fh:
            fh.write(json.dumps({"job": key, "pass": passes[-1]}) + "\n")
        print(f"pass {len(passes)}/{n}: {passes[-1]['seconds']:.0f} s", flush=True)
    return passes[:n]


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def table_loo(archs: dict[str, dict], measured: dict[str, float], table_path: Path) -> np.ndarray:
    """The operator table's predictions, each calibrated on the other archs (leave one out)."""
    from space.latency_table import LatencyTable, trace_ops
    from space.model import build_model
    from space.spec import ArchSpec

    table = LatencyTable.load(table_path) if table_path.exists() else LatencyTable()
    keys = list(archs)
    calls = {}
    for k in keys:
        spec = ArchSpec.from_dict(archs[k])
        calls[k] = trace_ops(build_model(spec), spec.input_size)
        table.add(calls[k])
    sums = {k: table.kernel_sum(calls[k]) for k in keys}
    pred = []
    for k in keys:
        others = [o for o in keys if o != k]
        table.calibrate([sums[o] for o in others], [measured[o] for o in others])
        pred.append(table.predict(calls[k]))
    return np.array(pred)


def report(archs: dict, study_ms: dict, points: list, passes: list[dict], args) -> dict:
    from search.remeasure import requalify

    keys = list(archs)
    ratio = {k: [p["quiet"][k]["ratio"] for p in passes] for k in keys}
    ms = {k: [p["quiet"][k]["median_ms"] for p in passes] for k in keys}
    fronts = [tuple(requalify(points, p["quiet"])) for p in passes]
    majority = max(set(fronts), key=fronts.count)
    quiet_ms = {
        k: statistics.median(q for p in passes for q in [p["quiet"][k]["latency_quiet_ms"]])
        for k in keys
    }
    meas = np.array([quiet_ms[k] for k in keys])
    study = np.array([study_ms[k] for k in keys])
    table = table_loo(archs, quiet_ms, Path(args.table)) if len(keys) > 2 else meas
    return {
        "archs": {
            k: {
                "ratio_cv": cv(ratio[k]),
                "ms_cv": cv(ms[k]),
                "ratio": ratio[k],
                "ms": ms[k],
                "study_ms": study_ms[k],
                "quiet_ms": quiet_ms[k],
            }
            for k in keys
        },
        "fronts": [list(f) for f in fronts],
        "stable": fronts.count(majority),
        "pass_seconds": [p["seconds"] for p in passes],
        "study_vs_quiet": {
            "tau": float(kendalltau(study, meas).statistic),
            "median_rel_err": float(np.median(np.abs(study - meas) / meas)),
        },
        "table_vs_quiet": {
            "tau": float(kendalltau(table, meas).statistic),
            "median_rel_err": float(np.median(np.abs(table - meas) / meas)),
        },
    }


def print_report(rep: dict, reference: str) -> None:
    print(
        f"{'arch':14} {'ratio CV %':>10} {'ms CV %':>8} {'ratio':>6} {'quiet ms':>9} {'study ms':>9}"
    )
    for k, a in rep["archs"].items():
        mark = " (reference)" if k == reference else ""
        print(
            f"{k:14} {100 * a['ratio_cv']:10.2f} {100 * a['ms_cv']:8.2f} "
            f"{statistics.median(a['ratio']):6.3f} {a['quiet_ms']:9.2f} {a['study_ms']:9.2f}{mark}"
        )
    secs = rep["pass_seconds"]
    print(f"passes: {len(secs)}, {statistics.fmean(secs):.0f} s each on average")
    print(f"membership: {rep['stable']} of {len(rep['fronts'])} passes give the majority front")
    for name in ("study_vs_quiet", "table_vs_quiet"):
        r = rep[name]
        print(
            f"{name.replace('_', ' ')}: kendall tau {r['tau']:.2f}, median relative error "
            f"{100 * r['median_rel_err']:.1f} %"
        )
    max_cv = max(a["ratio_cv"] for a in rep["archs"].values())
    print(
        f"front latency: max CV {100 * max_cv:.1f} % over {len(rep['archs'])} archs, "
        f"membership stable in {rep['stable']} of {len(rep['fronts'])}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", default="softgate")
    p.add_argument("--storage", help="default: sqlite:///runs/STUDY/study.db")
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--band", type=float, default=0.15, help="noise band around the front")
    p.add_argument("--target", type=float, default=0.01, help="ratio interval half-width per pass")
    p.add_argument("--max-seconds", type=float, default=180.0, help="per pass")
    p.add_argument("--table", default="runs/latency_table/cpu-1thread.json")
    p.add_argument("--out", default="runs/front_latency.json")
    p.add_argument(
        "--log", default="runs/front_latency.jsonl", help="finished passes; a rerun resumes from it"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    storage = args.storage or f"sqlite:///runs/{args.study}/study.db"
    archs, study_ms, points = candidates(storage, args.study, args.band)
    reference = min(archs, key=lambda k: study_ms[k])  # fixed over the passes: the fastest
    job = {
        "archs": archs,
        "latency": LATENCY,
        "reference": reference,
        "target": args.target,
        "max_seconds": args.max_seconds,
    }
    passes = run_passes(job, args.passes, Path(args.log))
    rep = report(archs, study_ms, points, passes, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rep | {"reference": reference}, indent=1))
    print_report(rep, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
