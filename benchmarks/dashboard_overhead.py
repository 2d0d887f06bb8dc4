"""Overhead of the trials' optuna-dashboard notes and artifacts (search/artifacts.py) on the main job.

    python benchmarks/dashboard_overhead.py                 # smoke study, 3 runs each way (~7 min on 2 cores)
    python benchmarks/dashboard_overhead.py --repeats 5 --out overhead.json

Runs the smoke study (synthetic data, `launch.py --study` in a subprocess, into temporary run folders)
with `dashboard: {notes: true, artifacts: true}` and with both false, alternating which goes first in
each repeat so that a drift in the machine's load falls on both sides alike. Prints each run's wall
time, the ratio of the median wall times (on / off; target: within the runs' own spread, i.e. no
measurable slowdown), and the mean worker-side trial time (`wall_s`, which includes drawing the PNG).

Because a study's wall time on a shared machine varies by more than the few hundredths of a second at
stake, it also times the two pieces the key adds, in this process: drawing the PNG of a smoke-size
network (`search.artifacts.preview_png`, in the worker) and writing the note and both artifacts into a
real SQLite study (`TrialExtras.record`, in the driver), median of several runs, as a fraction of the
mean trial time with the key off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--study", default="smoke", help="study name in studies/ or a study YAML (default smoke)"
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="runs with the key on, and as many off (default 3)"
    )
    p.add_argument("--out", help="write the figures as JSON here")
    return p.parse_args(argv)


def study_copy(study: str, dest: Path, on: bool) -> Path:
    """The study file with the dashboard key on or off, under its own name."""
    from search.locate import resolve_study_file

    raw = yaml.safe_load(resolve_study_file(study).read_text())
    raw.update(
        name=f"{raw['name']}-dash-{'on' if on else 'off'}", dashboard={"notes": on, "artifacts": on}
    )
    path = dest / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_once(study_file: Path, out: Path) -> float:
    """Wall time of one `launch.py --study` run, start-up and export included."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "--study", str(study_file), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"study run failed:\n{proc.stderr[-3000:]}")
    return wall


def trial_seconds(out: Path, name: str) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    return [float(t.user_attrs["wall_s"]) for t in study.get_trials() if "wall_s" in t.user_attrs]


def measure(study: str, repeats: int, tmp: Path) -> dict[str, dict[str, list[float]]]:
    files = {on: study_copy(study, tmp, on) for on in (True, False)}
    runs: dict[str, dict[str, list[float]]] = {
        k: {"wall_s": [], "trial_s": []} for k in ("on", "off")
    }
    for r in range(repeats):
        for on in (True, False) if r % 2 == 0 else (False, True):
            key, out = ("on" if on else "off"), tmp / f"run-{r}-{'on' if on else 'off'}"
            wall = run_once(files[on], out)
            runs[key]["wall_s"].append(wall)
            runs[key]["trial_s"] += trial_seconds(out, files[on].stem)
            print(f"repeat {r + 1}/{repeats} dashboard {key:3s}: {wall:6.1f} s", flush=True)
    return runs


def _median_s(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def smoke_network(study: str) -> tuple:
    """The largest network of the study's space at the proxy's size (untrained) and the val set."""
    from search.config import StudyConfig
    from space.model import build_model
    from space.spec import ArchSpec
    from trainers.data import load_poses

    cfg = StudyConfig.load(study)
    d, size = cfg.data, cfg.proxy.input_size
    spec = ArchSpec.from_dict({**cfg.space.grid()[-1], "input_size": size})
    val = load_poses(d.source, d.val_split, size, subset=d.val, seed=d.seed)
    return spec, build_model(spec).eval(), val


def piece_costs(study: str, tmp: Path) -> dict[str, float]:
    """Seconds per trial of what the key adds: the worker's PNG, the driver's note and uploads."""
    import optuna
    import torch

    from search.artifacts import TrialExtras, preview_png

    torch.set_num_threads(1)
    spec, model, val = smoke_network(study)
    png = preview_png(model, val)  # imports and first-call costs: paid once per worker
    draw = _median_s(lambda: preview_png(model, val))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.create_study(study_name="pieces", storage=f"sqlite:///{tmp / 'pieces.db'}")
    extras = TrialExtras(True, True, tmp / "pieces-artifacts")
    attrs = {
        "arch": spec.to_dict(),
        "arch_id": spec.arch_id,
        "params": 1,
        "flops": 1,
        "latency_ms": 1.0,
        "pck_curve": [0.1, 0.2],
        "loss_curve": [0.03, 0.02],
    }
    record_times: list[float] = []
    for _ in range(7):
        trial = storage.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        start = time.perf_counter()
        extras.record(trial, "COMPLETE", {"pck": 0.2}, png)
        record_times.append(time.perf_counter() - start)
        storage.tell(trial, 0.2)
    return {
        "preview_png_s": draw,
        "record_s": statistics.median(record_times),
        "png_bytes": len(png),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dash-overhead-") as tmp:
        pieces = piece_costs(args.study, Path(tmp))
        runs = measure(args.study, args.repeats, Path(tmp))
    on, off = (statistics.median(runs[k]["wall_s"]) for k in ("on", "off"))
    spread = {
        k: (max(v["wall_s"]) - min(v["wall_s"])) / statistics.median(v["wall_s"])
        for k, v in runs.items()
    }
    trial = {k: statistics.mean(v["trial_s"]) for k, v in runs.items()}
    print(f"study {args.study}, {args.repeats} run(s) each way, same machine, alternating order")
    print(
        f"median wall time: on {on:.1f} s, off {off:.1f} s; ratio on/off {on / off:.3f} "
        f"(spread between runs: on {spread['on']:.1%}, off {spread['off']:.1%})"
    )
    print(
        f"mean trial time in the worker (wall_s): on {trial['on']:.2f} s, off {trial['off']:.2f} s; "
        f"ratio {trial['on'] / trial['off']:.3f}"
    )
    added = pieces["preview_png_s"] + pieces["record_s"]
    print(
        f"the pieces, per trial: PNG drawn in the worker {pieces['preview_png_s'] * 1e3:.0f} ms "
        f"({pieces['png_bytes'] / 1e3:.0f} kB), note + 2 uploads in the driver {pieces['record_s'] * 1e3:.0f} ms: "
        f"{added / trial['off']:.2%} of a trial (key off)"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "study": args.study,
                    "runs": runs,
                    "ratio": on / off,
                    "trial_ratio": trial["on"] / trial["off"],
                    "pieces": pieces,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
