"""Does the search's front beat the hand-designed family after full training?

Steps (each resumable; the JSON-lines log is kept in the repository, so a later session, with none
of this one's run folders, resumes where this one stopped):

  study    a fresh default study (`launch.py --study softgate`, as a user runs it; its own machine
           alone: its proxies are capped in seconds); its exported front is logged. `--run DIR`
           logs the export of such a study already run instead (e.g. the README's main job)
  train    the found archs (up to `--top`, spread over latency) and the families (the paper's design
           and Newell's hourglass at a ladder of widths, search/family.py), `--seeds` each, with the
           finalize recipe (search.finalize.train_run: the full trainer, checkpoint selected on a
           validation split carved from train, scored on the test split with the flip test); one
           log line per finished training
  report   every trained arch timed in one quiet interleaved pass (search/remeasure.py), each found
           arch's margin over each family's curve, the plot, and per family the line
           `margin over the paper family: median X.XX, best Y.YY PCK over N found archs, S seeds`

    python benchmarks/front_vs_family.py all --jobs 2        # study, train, report
    python benchmarks/front_vs_family.py study --study softgate-capped   # another study file
    python benchmarks/front_vs_family.py report --front 0,-1 # the first and newest study's fronts

Each `study` step logs one more front; `--front` picks which of them train and report treat as
found (default: the newest), so two study files can be compared on the same family curves.

Training scores do not depend on the machine's load (epochs bound them, not seconds); the study's
proxies and the latency pass do: run those with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from benchmarks.common import append_jsonl, digest, read_jsonl, worker_pool  # noqa: E402

DEFAULT_LOG = Path(__file__).resolve().parent / "logs" / "front_vs_family.jsonl"
DEFAULT_WORK = Path("runs/front_vs_family")
DEFAULT_DATA = "../shared/datasets/lspet"
LATENCY_SETTINGS = {"device": "cpu", "threads": 1, "backend": "torch", "clock": "auto"}
FAMILY_BASE = {
    "stacks": 1,
    "depth": 3,
    "joints": 14,
    "input_size": 256,
    "intermediate_supervision": True,
    "version": 1,
}


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two trainings of one arch and seed the same training (the data by name, so the
    log's keys hold in any checkout)."""
    from trainers.data import selection_splits

    return {
        "data": Path(args.data).name,
        "epochs": args.epochs,
        "input_size": args.input_size,
        "splits": list(selection_splits(data_arg(args.data))),
    }


def data_arg(data: str) -> str:
    """A dataset path made absolute (the workers may run elsewhere); `synthetic` as it is."""
    return data if data == "synthetic" or ":" in data else str(Path(data).resolve())


def job_key(arch_id: str, seed: int, rec: dict[str, Any]) -> str:
    return digest({"arch_id": arch_id, "seed": seed, **rec})


def spread_pick(front: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """At most `top` of the front, spread evenly over its latency order (ends included)."""
    ordered = sorted(front, key=lambda r: r["latency_ms"])
    if len(ordered) <= top:
        return ordered
    picks = sorted({round(i * (len(ordered) - 1) / (top - 1)) for i in range(top)})
    return [ordered[i] for i in picks]


def logged_study(log: list[dict[str, Any]], which: int = -1) -> dict[str, Any]:
    """One logged study's record ({} when none is logged): `which` is its index among the logged
    studies (-1, the newest; 0, the first), so an earlier default's front can be reported after a
    new one."""
    studies = [r for r in log if r.get("kind") == "study"]
    if not studies:
        return {}
    try:
        return studies[which]
    except IndexError:
        raise SystemExit(f"--front {which}: the log holds {len(studies)} studies") from None


def logged_front(log: list[dict[str, Any]], which: int = -1) -> list[dict[str, Any]]:
    """The exported front of one logged study (`logged_study`); [] when none is logged."""
    return logged_study(log, which).get("front", [])


def found_jobs(
    log: list[dict[str, Any]], top: int, seeds: int, which: int = -1
) -> list[dict[str, Any]]:
    """The chosen logged study's exported archs (`logged_front`), `top` of them, every seed."""
    picked = spread_pick(logged_front(log, which), top)
    return [
        {"role": "found", "arch": r["arch"], "seed": seed, "arch_id": r["arch_id"]}
        for seed in range(seeds)
        for r in picked
    ]


def family_jobs(families: list[str], seeds: int) -> list[dict[str, Any]]:
    """Every family member with every seed, seed by seed (a session that stops part-way leaves
    whole families at the first seeds), smallest first within a family."""
    from search.family import family_ladder
    from space.spec import ArchSpec

    jobs = []
    for seed in range(seeds):
        for name in families:
            for arch in family_ladder(name, FAMILY_BASE):
                jobs.append(
                    {
                        "role": f"family:{name}",
                        "arch": arch,
                        "seed": seed,
                        "arch_id": ArchSpec.from_dict(arch).arch_id,
                    }
                )
    return jobs


def _train(job: dict[str, Any]) -> dict[str, Any]:
    """In a worker: one finalize run (search.finalize.train_run), its final.json as the result."""
    from search.finalize import RECORD, RunJob, train_run

    folder = Path(job["folder"])
    started = time.time()
    run_job = RunJob(
        data=job["data"],
        epochs=job["epochs"],
        input_size=job["input_size"],
        splits=tuple(job["splits"]),
        cpus=1,
        device="cpu",
    )
    train_run(
        {"run": {"folder": str(folder), "arch": job["arch"], "seed": job["seed"]}}, job=run_job
    )
    record = json.loads((folder / RECORD).read_text())
    return record | {"train_wall_s": round(time.time() - started, 1)}


def train(args: argparse.Namespace) -> None:
    """The chosen fronts' found archs and the families, every seed, not yet logged."""
    log = read_jsonl(args.log)
    wanted = [j for k in args.front for j in found_jobs(log, args.top, args.seeds, k)]
    wanted += family_jobs(args.family.split(","), args.seeds)
    if args.only:
        wanted = [j for j in wanted if j["arch_id"] in args.only]
    run_trainings(args, wanted)


def run_trainings(args: argparse.Namespace, wanted: list[dict[str, Any]]) -> None:
    """Train the `wanted` jobs ({role, arch, seed, arch_id}) that the log lacks with this recipe,
    `args.jobs` at a time, one log line per finished training."""
    rec = recipe(args)
    done = {r["key"] for r in read_jsonl(args.log) if r.get("kind") == "training"}
    jobs = list(
        {
            job_key(j["arch_id"], j["seed"], rec): j
            for j in wanted
            if job_key(j["arch_id"], j["seed"], rec) not in done
        }.values()
    )
    print(f"{len(done)} trainings logged, {len(jobs)} to run ({args.jobs} at a time)", flush=True)
    if not jobs:
        return
    final = args.work / "final"
    data = data_arg(args.data)
    with worker_pool(args.jobs) as pool:
        futures = {
            pool.submit(
                _train,
                j
                | rec
                | {"data": data, "folder": str((final / f"{j['arch_id']}-s{j['seed']}").resolve())},
            ): j
            for j in jobs
        }
        for n, fut in enumerate(_as_completed(futures), 1):
            job, result = futures[fut], fut.result()
            append_jsonl(
                args.log,
                {
                    "kind": "training",
                    "key": job_key(job["arch_id"], job["seed"], rec),
                    "role": job["role"],
                    "arch": job["arch"],
                    **rec,
                    **result,
                },
            )
            print(
                f"[{n}/{len(jobs)}] {job['role']} {job['arch_id']} s{job['seed']} "
                f"{job['arch']['stacks']}x{job['arch']['width']}d{job['arch']['depth']}: "
                f"val {result['val']:.4f} test {result['test']:.4f} "
                f"({result['train_wall_s']:.0f} s)",
                flush=True,
            )


def _as_completed(futures: dict) -> Any:
    from concurrent.futures import as_completed

    return as_completed(futures)


def study(args: argparse.Namespace) -> None:
    """A fresh default study as a user runs it; its export's archs and metrics go to the log."""
    import subprocess

    from space.spec import ArchSpec

    out = args.run or args.work / "study"
    started = time.time()
    if args.run is None:
        if out.exists():
            raise SystemExit(
                f"{out} exists: remove it for a fresh study (the log keeps earlier ones)"
            )
        cmd = [sys.executable, str(REPO / "launch.py"), "--study", args.study, "--out", str(out)]
        subprocess.run(cmd, check=True, cwd=REPO)
    elif not (out / "export" / "index.csv").is_file():
        raise SystemExit(f"--run {out}: no export/index.csv there (a finished study's run folder)")
    front = []
    for path in sorted((out / "export").glob("*.yaml")):
        rec = yaml.safe_load(path.read_text())
        front.append(
            {
                "arch": rec["arch"],
                "arch_id": ArchSpec.from_dict(rec["arch"]).arch_id,
                **{
                    k: rec["metrics"].get(k)
                    for k in ("pck", "latency_ms", "latency_quiet_ms", "params")
                },
            }
        )
    append_jsonl(
        args.log,
        {
            "kind": "study",
            "study": args.study,
            "wall_s": None if args.run else round(time.time() - started),
            "run": str(args.run) if args.run else None,
            "front": front,
            "when": time.strftime("%Y-%m-%d %H:%M"),
        },
    )
    print(f"study {args.study}: {len(front)} archs exported ({out})")


def fronts(text: str) -> list[int]:
    """`--front`'s value: logged-study indices, comma-separated."""
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected K[,K...], e.g. 0,-1") from None


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """The flags of the training recipe, the workers, the log and the work folder."""
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--log", type=Path, default=DEFAULT_LOG)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["study", "train", "report", "all"])
    p.add_argument("--study", default="softgate")
    p.add_argument("--top", type=int, default=8, help="found archs trained, spread over latency")
    p.add_argument(
        "--front",
        type=fronts,
        default=[-1],
        help="train/report: which logged studies' fronts are the found ones, K[,K...] (0 = the "
        "first logged, -1 = the newest); report times them all in one quiet pass",
    )
    p.add_argument("--family", default="paper,newell")
    p.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        help="train: only these arch ids (ID[,ID...]), e.g. the points a margin rests on first",
    )
    p.add_argument("--seeds", type=int, default=2)
    add_recipe_args(p)
    p.add_argument(
        "--run",
        type=Path,
        help="study step: log the export of a default study already run (its run folder, e.g. "
        "runs/softgate after `launch.py --study softgate` on an idle machine) instead of running one",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.step in ("study", "all"):
        study(args)
    if args.step in ("train", "all"):
        train(args)
    if args.step in ("report", "all"):
        from benchmarks.front_vs_family_report import report

        report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
