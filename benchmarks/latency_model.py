"""How well latency can be predicted without timing each architecture: the operator lookup table
(space/latency_table.py) and the sampler's ridge model, against interleaved measurements.

    python benchmarks/latency_model.py                     # 40 + 8 archs, 64 and 256 px, torch and ORT

Draws `--n` test and `--calib` calibration architectures from the study's space (seeded), times all
of them interleaved (space/interleaved.py, 1 thread, the thread clock) with each backend at each size,
and predicts the test archs' latency two ways:
  table  the operator table (measured once per device, kept in `--table`), its sum calibrated on the
         `--calib` archs alone (scale and per-operator overhead, least squares);
  ridge  the costaware sampler's model (log latency ~ one-hot design choices + log params and FLOPs),
         5-fold cross-validated over the test archs (so it learns from 4/5 of them).
Prints, per backend and size, Kendall tau and the median relative error of each against the
measurement. Run it on a quiet machine: the interleaved measurement is the reference.
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

from benchmarks.latency_backends import sample_archs  # noqa: E402


def rel_errors(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.median(np.abs(pred - meas) / meas))


def agreement(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    return {
        "tau": float(kendalltau(pred, meas).statistic),
        "median_rel_err": rel_errors(pred, meas),
    }


def ridge_cv(archs: list[dict], measured: np.ndarray, space: Any, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions of the sampler's ridge model (log latency on its encoder's features)."""
    from search.strategy import Encoder, fit_log_ridge, model_costs

    encoder = Encoder(space)
    x = encoder.matrix(archs, [model_costs(a) for a in archs])
    pred = np.empty(len(archs))
    order = np.random.default_rng(0).permutation(len(archs))
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        pred[test] = fit_log_ridge(x[train], measured[train])(x[test])
    return pred


def table_predictions(
    specs: list[Any], size: int, table_path: Path, calib: int, measured: np.ndarray
) -> np.ndarray:
    """The table's calibrated predictions for every arch (calibrated on the first `calib`)."""
    from space.latency_table import LatencyTable, trace_ops
    from space.model import build_model

    table = LatencyTable.load(table_path) if table_path.exists() else LatencyTable()
    calls = [trace_ops(build_model(s, input_size=size), size) for s in specs]
    added = sum(table.add(c) for c in calls)
    if added:
        table_path.parent.mkdir(parents=True, exist_ok=True)
        table.save(table_path)
    sums = [table.kernel_sum(c) for c in calls]
    table.calibrate(sums[:calib], measured[:calib])
    return np.array([table.predict(c) for c in calls])


def measure(specs: list[Any], size: int, backend: str, max_seconds: float) -> np.ndarray:
    from space.interleaved import measure_interleaved
    from space.model import build_model

    models = {s.arch_id: build_model(s, input_size=size).eval() for s in specs}
    stats = measure_interleaved(
        models,
        size,
        backend=backend,
        threads=1,
        thread_clock=True,
        target=0.02,
        max_seconds=max_seconds,
    )
    return np.array([stats[s.arch_id].median_ms for s in specs])


def run(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from space.search_space import SearchSpace

    space_dict = yaml.safe_load((REPO / "studies" / f"{args.study}.yaml").read_text())["space"]
    space = SearchSpace.from_dict(space_dict)
    specs = sample_archs(space, args.n + args.calib, args.seed)
    archs = [s.to_dict() for s in specs]
    results: dict[str, Any] = {"n": args.n, "calib": args.calib, "rows": []}
    for size in args.sizes:
        table_path = Path(args.table)
        for backend in args.backends:
            t0 = time.time()
            meas = measure(specs, size, backend, args.max_seconds)
            table = table_predictions(specs, size, table_path, args.calib, meas)
            test = slice(args.calib, None)
            ridge = ridge_cv(archs[test], meas[test], space)
            row = {
                "backend": backend,
                "size": size,
                "seconds": round(time.time() - t0),
                "table": agreement(table[test], meas[test]),
                "ridge": agreement(ridge, meas[test]),
                "measured_ms": {"min": float(meas.min()), "max": float(meas.max())},
            }
            results["rows"].append(row)
            print_row(row, args.n)
    return results


def print_row(row: dict[str, Any], n: int) -> None:
    t, r = row["table"], row["ridge"]
    print(
        f"latency model {row['backend']} {row['size']} px: table tau {t['tau']:.2f} error "
        f"{100 * t['median_rel_err']:.1f} % | ridge tau {r['tau']:.2f} error "
        f"{100 * r['median_rel_err']:.1f} % over {n} archs "
        f"({row['measured_ms']['min']:.1f}-{row['measured_ms']['max']:.1f} ms, "
        f"{row['seconds']} s)",
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", default="softgate")
    p.add_argument("--n", type=int, default=40, help="test architectures")
    p.add_argument("--calib", type=int, default=8, help="architectures the table is calibrated on")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[64, 256])
    p.add_argument("--backends", type=lambda s: s.split(","), default=["torch", "onnxruntime"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=300.0, help="per interleaved pass")
    p.add_argument("--table", default="runs/latency_table/cpu-1thread.json")
    p.add_argument("--out", default="runs/latency_model.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(1)
    results = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    taus = [r["table"]["tau"] for r in results["rows"]]
    print(
        f"latency table: tau {min(taus):.2f}-{max(taus):.2f}, median error "
        f"{100 * statistics.median(r['table']['median_rel_err'] for r in results['rows']):.1f} % "
        f"over {args.n} archs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
