"""How far can the proxy be trusted? Rank agreement of cheap scores with a >= 5x longer training.

    python benchmarks/proxy_fidelity.py --quick             # 4 archs, tiny budgets: ~2 min on 1 core
    python benchmarks/proxy_fidelity.py --jobs 2            # 12 archs, the softgate proxy vs ~10x (rerun to resume)
    python benchmarks/proxy_fidelity.py --jobs 2 --variant ep4:epochs=4 --variant sub1000:subset=1000 \\
        --variant res32:input_size=32                       # cheap knobs, each scored against the long budget

Architectures are drawn at random (Optuna RandomSampler, `--arch-seed`) from the study's design
space (studies/softgate.yaml) and trained from scratch on LSPET (the study's data subset) under:

- short: the study's proxy budget (`proxy:`), changed by `--short k=v,...`;
- long: four times the epochs at twice the resolution, and 10x the short budget's time cap if it
  has one (`--long k=v,...` changes it). The measured cost ratio (long / short training wall
  time, ~10x on CPU) is printed and must be >= 5 for the comparison to count;
- each `--variant NAME:k=v,...`: the short budget with some knobs changed (resolution, epochs,
  subset size: EcoNAS found more samples with fewer epochs beats the reverse).

All are scored on the LSPET val split (PCK@0.2). Zero-cost baselines: parameter count, synflow
and NASWOT (trainers/zero_cost.py) on one batch of real training images. Reported: Kendall tau
and Spearman rho (scipy.stats) of every score against the long budget's PCK, as a table and JSON.

`--jobs N` trains N archs at a time in separate processes (torch threads `--threads` each);
`--device cuda` trains on a GPU (AMP), where the long budget can be made much longer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from benchmarks.common import append_jsonl, digest, read_jsonl, worker_pool  # noqa: E402

QUICK = {
    "archs": 4,
    "train": 128,
    "val": 64,
    "batch": 16,
    "short": {"epochs": 1, "max_seconds": None, "max_steps": None, "input_size": 64},
    "long": {"epochs": 4, "max_seconds": None, "max_steps": None, "input_size": 128},
    "variants": ["sub64-ep2:subset=64,epochs=2"],
}


# -- statistics ------------------------------------------------------------------------------------
def rank_agreement(
    scores: Sequence[float | None], reference: Sequence[float | None]
) -> dict[str, float]:
    """Kendall tau-b and Spearman rho (with p-values) of `scores` against `reference`, over the
    archs where both are known (None/NaN/inf dropped pairwise)."""
    pairs = [
        (float(a), float(b))
        for a, b in zip(scores, reference)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    out = {
        "n": len(pairs),
        "kendall_tau": math.nan,
        "kendall_p": math.nan,
        "spearman_rho": math.nan,
        "spearman_p": math.nan,
    }
    if len(pairs) >= 3:
        x, y = np.array(pairs).T
        tau = stats.kendalltau(x, y)
        rho = stats.spearmanr(x, y)
        out.update(
            kendall_tau=float(tau.statistic),
            kendall_p=float(tau.pvalue),
            spearman_rho=float(rho.statistic),
            spearman_p=float(rho.pvalue),
        )
    return out


def parse_knobs(text: str, where: str) -> dict[str, Any]:
    """ "epochs=4,input_size=32,max_seconds=none" -> ProxyBudget fields (checked by ProxyBudget later)."""
    from space.errors import ConfigError

    knobs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"expected key=value, got {item!r}", source="<arg>", field=where)
        if value.lower() in ("none", "null"):
            knobs[key] = None
        else:
            try:
                knobs[key] = int(value)
            except ValueError:
                try:
                    knobs[key] = float(value)
                except ValueError:
                    raise ConfigError(
                        f"{key}: not a number: {value!r}", source="<arg>", field=where
                    ) from None
    return knobs


# -- the runs ------------------------------------------------------------------------------------------
def sample_archs(space: Any, n: int, seed: int, sizes: Sequence[int]) -> list[Any]:
    """`n` distinct valid archs drawn at random from the space, trainable at every size in `sizes`."""
    import optuna

    from space.errors import ConfigError
    from space.spec import size_multiple

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    archs: dict[str, Any] = {}
    for _ in range(100 * n):
        trial = study.ask()
        try:
            spec = space.sample(trial)
        except ConfigError:
            continue
        if all(s % size_multiple(spec.depth) == 0 for s in sizes):
            archs.setdefault(spec.arch_id, spec)
        if len(archs) == n:
            break
    return list(archs.values())


def _train_one(job: dict) -> dict:
    """One arch under one budget (in a worker process, or in this one)."""
    import torch

    from space.spec import ArchSpec
    from trainers.data import load_poses
    from trainers.proxy import ProxyBudget, train_proxy

    torch.set_num_threads(job["threads"])
    d = job["data"]
    budget = ProxyBudget(**job["budget"])
    size = budget.input_size
    out = {"arch": job["index"], "budget": job["name"]}
    try:
        train = load_poses(d["source"], d["train_split"], size, subset=d["train"], seed=d["seed"])
        val = load_poses(d["source"], d["val_split"], size, subset=d["val"], seed=d["seed"])
        res = train_proxy(
            ArchSpec.from_dict(job["arch"]),
            train,
            val,
            budget,
            device=job["device"],
            threads=job["threads"],
        )
        out.update(
            pck=float(res.pck),
            wall_s=float(res.wall_s),
            epochs=res.epochs,
            steps=res.steps,
            images_per_s=float(res.images_per_s),
        )
    except (
        Exception
    ) as err:  # an arch this budget cannot train (size, NaN loss): no score, the rest goes on
        out.update(pck=None, error=f"{type(err).__name__}: {' '.join(str(err).split())}"[:200])
    return out


def job_key(job: dict) -> str:
    """What makes two training jobs the same: arch, budget, data and device (not the arch's index)."""
    return digest({k: job[k] for k in ("arch", "budget", "data", "threads", "device")})


def load_job_log(path: Path) -> dict[str, dict]:
    """Finished jobs of earlier runs: key -> result."""
    return {rec.pop("key"): rec for rec in read_jsonl(path)}


def run(args: argparse.Namespace) -> dict:
    import torch

    from search.config import StudyConfig
    from trainers.data import load_poses
    from trainers.proxy import ProxyBudget
    from trainers.zero_cost import image_batch, zero_cost_scores

    cfg = StudyConfig.load(args.study)
    data = cfg.data.to_dict()
    if args.data:
        data["source"] = args.data
    if args.train:
        data["train"] = args.train
    if args.val:
        data["val"] = args.val

    short = {
        **cfg.proxy.to_dict(),
        **(QUICK["short"] if args.quick else {}),
        **parse_knobs(args.short, "--short"),
    }
    short = ProxyBudget(**short).to_dict()
    if args.quick:
        short["batch_size"] = QUICK["batch"]
    # 4x the epochs at 2x the resolution: ~10x the training time measured on CPU (2x the resolution
    # alone costs only ~2.5x at 64 px, where per-image overheads weigh), capped at 10x the short cap
    long = {
        **short,
        "input_size": 2 * short["input_size"],
        "epochs": 4 * short["epochs"],
        "max_seconds": 10 * short["max_seconds"] if short["max_seconds"] else None,
        **(QUICK["long"] if args.quick else {}),
        **parse_knobs(args.long, "--long"),
    }
    budgets = {"short": short, "long": ProxyBudget(**long).to_dict()}
    for text in args.variant or (QUICK["variants"] if args.quick else []):
        name, _, knobs = text.partition(":")
        budgets[name] = ProxyBudget(
            **{**short, **parse_knobs(knobs, f"--variant {name}")}
        ).to_dict()

    space = cfg.space
    archs = sample_archs(
        space,
        args.archs,
        args.arch_seed,
        [budgets["short"]["input_size"], budgets["long"]["input_size"]],
    )
    print(
        f"{len(archs)} archs from {cfg.source} (random, seed {args.arch_seed}); data {data['source']} "
        f"train {data['train']} / val {data['val']} ({data['val_split']} split)"
    )
    for name, b in budgets.items():
        print(
            f"  {name:10s} input {b['input_size']} px, epochs {b['epochs']}, max_seconds {b['max_seconds']}, "
            f"subset {b['subset']}, batch {b['batch_size']}"
        )

    # prepare every resolution once here, so that workers only read the disk cache
    for size in sorted({b["input_size"] for b in budgets.values()}):
        for split, n in ((data["train_split"], data["train"]), (data["val_split"], data["val"])):
            load_poses(data["source"], split, size, subset=n, seed=data["seed"])

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    batch = image_batch(
        load_poses(
            data["source"],
            data["train_split"],
            short["input_size"],
            subset=data["train"],
            seed=data["seed"],
        ),
        args.zero_cost_batch,
        seed=0,
    )
    zero_cost = [zero_cost_scores(spec, batch, seed=short["seed"]) for spec in archs]
    zero_cost_s = time.perf_counter() - t0

    jobs = [
        {
            "index": i,
            "name": name,
            "arch": spec.to_dict(),
            "budget": b,
            "data": data,
            "threads": args.threads,
            "device": args.device,
        }
        for name, b in budgets.items()
        for i, spec in enumerate(archs)
    ]
    # Every finished job is appended to a log beside --out, so an interrupted run picks up where it
    # stopped: a job is reused only if its arch, budget, data and device are exactly the same.
    log_path = Path(args.out).with_suffix(".jobs.jsonl")
    done = load_job_log(log_path)
    results = [
        {
            **done[job_key(job)],
            "arch": job["index"],
            "budget": job["name"],
        }  # names may change between runs
        for job in jobs
        if job_key(job) in done
    ]
    todo = [job for job in jobs if job_key(job) not in done]
    # the long budget first: the biggest jobs started early keep both workers busy to the end
    todo.sort(key=lambda job: job["name"] != "long")
    if results:
        print(f"reusing {len(results)} finished jobs from {log_path}")
    t0 = time.perf_counter()

    def finished(job: dict, res: dict) -> None:
        results.append(res)
        append_jsonl(log_path, {"key": job_key(job), **res})
        _progress(res, len(results), len(jobs), t0)

    if args.jobs > 1:
        with worker_pool(args.jobs) as pool:
            futures = {pool.submit(_train_one, job): job for job in todo}
            for fut in as_completed(futures):
                finished(futures[fut], fut.result())
    else:
        for job in todo:
            finished(job, _train_one(job))

    pck = {name: [None] * len(archs) for name in budgets}
    wall = {name: [None] * len(archs) for name in budgets}
    for res in results:
        pck[res["budget"]][res["arch"]] = res["pck"]
        wall[res["budget"]][res["arch"]] = res.get("wall_s")
    scorers = {name: pck[name] for name in budgets if name != "long"}
    scorers.update({k: [z[k] for z in zero_cost] for k in ("params", "synflow", "naswot")})
    agreement = {name: rank_agreement(scores, pck["long"]) for name, scores in scorers.items()}
    cost = {name: float(np.nansum([w for w in wall[name] if w is not None])) for name in budgets}
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "device": args.device,
            "jobs": args.jobs,
            "threads_per_job": args.threads,
            "cuda": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        },
        "study": cfg.source,
        "data": data,
        "budgets": budgets,
        "arch_seed": args.arch_seed,
        "archs": [
            {
                "arch_id": s.arch_id,
                "arch": s.to_dict(),
                **zero_cost[i],
                **{f"pck_{name}": pck[name][i] for name in budgets},
            }
            for i, s in enumerate(archs)
        ],
        "errors": [r for r in results if r.get("error")],
        "train_wall_s": cost,
        "cost_ratio_long_short": cost["long"] / cost["short"] if cost["short"] else None,
        "zero_cost_s": zero_cost_s,
        "agreement_with_long": agreement,
    }


def _progress(res: dict, done: int, total: int, t0: float) -> None:
    what = (
        f"pck {res['pck']:.4f} in {res['wall_s']:.0f}s" if res["pck"] is not None else res["error"]
    )
    print(
        f"[{done}/{total}] arch {res['arch']} {res['budget']}: {what} (elapsed {time.perf_counter() - t0:.0f}s)",
        flush=True,
    )


def _short_arch(a: dict) -> str:
    split = "" if a["branch_split"] is None else "/" + ",".join(a["branch_split"])
    return (
        f"{a['stacks']}x{a['width']} d{a['depth']} {a['block'][:5]}{split} {a['gate']} "
        f"{a['down']}/{a['up']} {a['fusion']} {a['skip']}"
    )


def print_report(report: dict) -> None:
    budgets = list(report["budgets"])
    print("\nper arch (PCK@0.2 on val; zero-cost scores of the untrained net):")
    head = f"{'arch_id':12s} {'params':>9s} {'synflow':>10s} {'naswot':>8s} " + " ".join(
        f"{b:>10s}" for b in budgets
    )
    print(head + "  arch")
    for a in report["archs"]:
        cells = " ".join(
            f"{a[f'pck_{b}']:10.4f}" if a[f"pck_{b}"] is not None else f"{'-':>10s}"
            for b in budgets
        )
        print(
            f"{a['arch_id']:12s} {a['params']:9.0f} {a['synflow']:10.3g} {a['naswot']:8.2f} {cells}  "
            f"{_short_arch(a['arch'])}"
        )
    print("\nrank agreement with the long budget's PCK:")
    print(
        f"{'score':12s} {'n':>3s} {'kendall_tau':>11s} {'p':>7s} {'spearman':>9s} {'p':>7s} {'train_s':>8s}"
    )
    for name, ag in report["agreement_with_long"].items():
        cost = report["train_wall_s"].get(name)
        cost_txt = f"{cost:8.0f}" if cost is not None else f"{'-':>8s}"
        print(
            f"{name:12s} {ag['n']:3d} {ag['kendall_tau']:11.3f} {ag['kendall_p']:7.3f} "
            f"{ag['spearman_rho']:9.3f} {ag['spearman_p']:7.3f} {cost_txt}"
        )
    ratio = report["cost_ratio_long_short"] or 0.0  # 0: no short run trained
    print(
        "\ntraining time: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in report["train_wall_s"].items())
        + f"; long/short = {ratio:.1f}x"
        + ("" if ratio and ratio >= 5 else "  (below 5x: not a fair long budget)")
        + f"; zero-cost scores of all archs {report['zero_cost_s']:.1f}s"
    )
    for err in report["errors"]:
        print(f"  no score: arch {err['arch']} {err['budget']}: {err['error']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--study",
        default="softgate",
        help="study file: design space, data and the short proxy budget",
    )
    p.add_argument("--data", help="override the study's data source")
    p.add_argument("--train", type=int, help="training images (default: the study's data.train)")
    p.add_argument("--val", type=int, help="validation images (default: the study's data.val)")
    p.add_argument("--archs", type=int, default=12, help="architectures to draw (default 12)")
    p.add_argument("--arch-seed", type=int, default=0)
    p.add_argument("--short", default="", help="k=v,... changes to the study's proxy budget")
    p.add_argument("--long", default="", help="k=v,... changes to the long budget")
    p.add_argument(
        "--variant", action="append", help="NAME:k=v,... a cheap-knob budget (repeatable)"
    )
    p.add_argument("--zero-cost-batch", type=int, default=32, help="images in the zero-cost batch")
    p.add_argument("--jobs", type=int, default=1, help="archs trained at a time (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--quick",
        action="store_true",
        help="4 archs, 128 train / 64 val images; short 1 epoch at 64 px, long 4 epochs at 128 px",
    )
    p.add_argument("--out", default="runs/proxy_fidelity/fidelity.json", help="JSON results")
    args = p.parse_args(argv)
    if args.quick:
        args.archs = min(args.archs, QUICK["archs"]) if args.archs != 12 else QUICK["archs"]
        args.train = args.train or QUICK["train"]
        args.val = args.val or QUICK["val"]
        args.zero_cost_batch = min(args.zero_cost_batch, 16)
    return args


def main(argv: list[str] | None = None) -> int:
    from space.errors import ConfigError

    args = parse_args(argv)
    try:
        report = run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
