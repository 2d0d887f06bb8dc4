"""Torch eager vs ONNX Runtime batch-1 latency over a sample of a study's space, and whether the two
rank the architectures alike.

    python benchmarks/latency_backends.py                         # softgate, 24 archs, proxy size
    python benchmarks/latency_backends.py --n 40 --input-size 256 --seed 1

Draws `--n` distinct architectures from the study's space (Optuna's RandomSampler, `--seed`),
measures each with both latency backends through the study's LatencyMeter (1 thread, the study's
warm-up / runs / min_seconds, the thread clock for both: each runs every kernel on the calling
thread), the two backends one after the other per arch so drifting load hits both alike. Prints a
table (ms, ratio), the median ratio torch / onnxruntime, and last
`kendall tau (torch vs onnxruntime) X.XX over N archs` (scipy.stats.kendalltau): near 1, a Pareto
front found with one backend holds for the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from search.config import StudyConfig  # noqa: E402
from search.latency import LatencyMeter  # noqa: E402
from space.errors import ConfigError  # noqa: E402
from space.search_space import SearchSpace  # noqa: E402
from space.spec import ArchSpec  # noqa: E402

BACKENDS = ("torch", "onnxruntime")


def sample_archs(space: SearchSpace, n: int, seed: int) -> list[ArchSpec]:
    """`n` distinct valid architectures from `space`, drawn by a seeded RandomSampler."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    archs: dict[str, ArchSpec] = {}
    for _ in range(50 * n):
        if len(archs) == n:
            break
        try:
            spec = space.sample(study.ask())
        except ConfigError:  # a combination the space forbids
            continue
        archs.setdefault(spec.arch_id, spec)
    return list(archs.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--study", default="softgate", help="study whose space and latency settings are used"
    )
    p.add_argument(
        "--n", type=int, default=24, help="architectures (at least 20 for a meaningful tau)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--input-size", type=int, help="input resolution (default: the study's proxy input size)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = StudyConfig.load(args.study)
    size = args.input_size or cfg.proxy.input_size
    lat = cfg.latency
    meters = {
        b: LatencyMeter(
            device="cpu",
            threads=1,
            warmup=lat.warmup,
            runs=lat.runs,
            min_seconds=lat.min_seconds,
            cache=False,
            backend=b,
        )
        for b in BACKENDS
    }
    archs = sample_archs(cfg.space, args.n, args.seed)
    print(
        f"{len(archs)} archs of {cfg.name}'s space (seed {args.seed}) at {size} px, batch 1, 1 thread, "
        f"warm-up {lat.warmup}, >= {lat.runs} runs and {lat.min_seconds} s, thread clock: "
        f"{', '.join(f'{b} {m.thread_clock}' for b, m in meters.items())}"
    )
    print(
        f"{'arch':<14}{'stacks':>7}{'width':>6}{'depth':>6}  {'block':<12}{'up':<14}{'fusion':<15}"
        f"{'torch ms':>9}{'ort ms':>9}{'ratio':>7}"
    )
    ms: dict[str, list[float]] = {b: [] for b in BACKENDS}
    t0 = time.time()
    for spec in archs:
        for b in BACKENDS:
            ms[b].append(meters[b].measure(spec.to_dict(), size)["latency_ms"])
        print(
            f"{spec.arch_id:<14}{spec.stacks:>7}{spec.width:>6}{spec.depth:>6}  {spec.block:<12}{spec.up:<14}"
            f"{spec.fusion:<15}{ms['torch'][-1]:>9.2f}{ms['onnxruntime'][-1]:>9.2f}"
            f"{ms['torch'][-1] / ms['onnxruntime'][-1]:>7.2f}",
            flush=True,
        )
    tau = kendalltau(ms["torch"], ms["onnxruntime"]).statistic
    ratio = statistics.median(t / o for t, o in zip(ms["torch"], ms["onnxruntime"]))
    print(
        f"median ratio torch / onnxruntime {ratio:.2f} ({time.time() - t0:.0f} s; torch {torch.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__})"
    )
    print(f"kendall tau (torch vs onnxruntime) {tau:.2f} over {len(archs)} archs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
