"""Overhead of the study machinery: `launch.py --study` versus the same proxies in a bare loop.

    python benchmarks/study_overhead.py --quick                 # smoke study, 4 tiny trials (~1-2 min)
    python benchmarks/study_overhead.py                         # softgate study, 4 trials (~5 min on 2 cores)
    python benchmarks/study_overhead.py --study softgate --trials 8

1. The study runs through the CLI, in a subprocess, from a copy of the study file with
   concurrency 1 (so both sides use the same cores the same way) into a temporary run folder;
   its wall time covers everything a user waits for: Python and Ray start-up, data loading,
   sampling, trials, storage writes, the automatic export.
2. The bare loop trains the same architectures (read back from the study's storage, in trial
   order) one after another in this process, doing the per-trial work the study does and nothing
   else: data loading from the disk cache (warmed before either side runs), build_model,
   count_params, count_flops, latency with the study's meter settings (`search.latency.LatencyMeter`)
   and `trainers.proxy.train_proxy` on the same PoseSets, budget and thread count. Imports are not
   timed.

Prints both wall times and their ratio (target <= 1.10 for studies of at least a few minutes: Ray's
start-up is a fixed ~10-20 s that short studies cannot amortise), and how far the bare loop's PCK
is from the study's (the same seeds, so ~0: a check that both trained the same thing).
"""

from __future__ import annotations

import argparse
import json
import os
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
    p.add_argument("--study", default="softgate", help="study name in studies/ or a study YAML")
    p.add_argument("--trials", type=int, default=4, help="number of proxies (default 4)")
    p.add_argument("--data", help="override the study's data")
    p.add_argument(
        "--quick", action="store_true", help="the smoke study (4 tiny trials, synthetic data)"
    )
    p.add_argument("--keep", help="keep the study's run folder here instead of a temporary one")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.study = "smoke"
    return args


def study_file(study: str, dest: Path, trials: int) -> dict:
    """A copy of the study file with concurrency 1 and the given trial count; returns its dict."""
    from search.locate import resolve_study_file

    raw = yaml.safe_load(resolve_study_file(study).read_text())
    raw.update(name=f"overhead-{raw['name']}", concurrency=1, trials=trials)
    source = raw.get("data")
    source = source.get("source") if isinstance(source, dict) else source
    if isinstance(source, str) and not Path(source).is_absolute() and (REPO / source).exists():
        # relative data paths are relative to the repo root; the study runs elsewhere
        raw["data"]["source"] = str((REPO / source).resolve())
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


def run_study(file: Path, run_dir: Path, data: str | None) -> float:
    cmd = [sys.executable, str(REPO / "launch.py"), "--study", str(file), "--out", str(run_dir)]
    if data:
        cmd += ["--data", data]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=run_dir.parent, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - start
    print(done.stdout.rstrip())
    if done.returncode != 0:
        sys.exit(f"the study failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def warm_data_cache(cfg) -> None:
    """Prepare the crops once, untimed, so that neither side pays for the first decoding."""
    from trainers.data import clear_memo, load_poses

    size, d = cfg.proxy.input_size, cfg.data
    for split, n in ((d["train_split"], d["train"]), (d["val_split"], d["val"])):
        load_poses(d["source"], split, size, subset=n, seed=d["seed"])
    clear_memo()  # the bare loop reads from the disk cache, as the study does


def bare_loop(cfg, archs: list[dict], data: str) -> tuple[float, list[float]]:
    import torch

    from search.latency import LatencyMeter
    from space.model import build_model
    from space.profile import count_flops, count_params
    from space.spec import ArchSpec
    from trainers.data import load_poses
    from trainers.proxy import train_proxy

    threads = int(cfg.resources.cpus_per_trial)
    torch.set_num_threads(threads)
    lat = cfg.latency
    start = time.perf_counter()
    size, d = cfg.proxy.input_size, cfg.data
    train = load_poses(data, d["train_split"], size, subset=d["train"], seed=d["seed"])
    val = load_poses(data, d["val_split"], size, subset=d["val"], seed=d["seed"])
    meter = LatencyMeter(
        device=lat["device"],
        threads=lat["threads"],
        warmup=lat["warmup"],
        runs=lat["runs"],
        min_seconds=lat["min_seconds"],
        cache=lat["cache"],
    )
    pcks = []
    for arch in archs:
        spec = ArchSpec.from_dict(arch)
        model = build_model(spec)
        count_params(model)
        count_flops(model, spec.input_size)
        del model
        meter.measure(spec.to_dict())
        pcks.append(float(train_proxy(spec, train, val, cfg.proxy, threads=threads).pck))
    return time.perf_counter() - start, pcks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import optuna

    from search.config import StudyConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="softgate-overhead-") as tmp:
        root = Path(args.keep).resolve() if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        file = root / "study.yaml"
        study_file(args.study, file, args.trials)
        cfg = StudyConfig.load(str(file)).with_overrides(data=args.data, out=root / "run")
        print(
            f"study {cfg.name}: {args.trials} trials, concurrency 1, {cfg.resources.cpus_per_trial} CPU(s) "
            f"per trial, data {cfg.data.source}",
            flush=True,
        )
        warm_data_cache(cfg)
        study_s = run_study(file, root / "run", args.data)

        study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
        done = sorted(
            study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number
        )
        if len(done) < args.trials:
            print(
                f"note: {args.trials - len(done)} trial(s) did not complete; the bare loop trains the "
                f"{len(done)} that did, so the ratio overstates the overhead"
            )
        archs = [t.user_attrs["arch"] for t in done]
        bare_s, pcks = bare_loop(cfg, archs, cfg.data.source)

    diff = max((abs(a - t.user_attrs["pck"]) for a, t in zip(pcks, done)), default=0.0)
    ratio = study_s / bare_s
    print(f"\nstudy via launch.py  {study_s:8.1f} s   ({len(done)} COMPLETE trials)")
    print(f"bare loop            {bare_s:8.1f} s")
    print(
        f"ratio                {ratio:8.3f}   (target <= 1.10 for studies of a few minutes: "
        f"{'met' if ratio <= 1.10 else 'NOT met'})"
    )
    print(f"max |PCK study - PCK bare loop| = {diff:.4f}")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "study": cfg.name,
                    "trials": len(done),
                    "study_s": study_s,
                    "bare_s": bare_s,
                    "ratio": ratio,
                    "max_pck_diff": diff,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
