"""Does the search's front beat the hand-designed family after full training?

Steps (each resumable; every finished training is one line of the JSON-lines log, which is kept in
the repository so that a later session resumes where this one stopped):

  train    the families (the paper's design and Newell's hourglass at a ladder of widths, see
           search/family.py) and, once a study has been exported, its found archs: each with the
           finalize recipe (search.finalize.train_run: the full trainer, checkpoint selected on a
           validation split carved from train, scored on the test split with the flip test)

    python benchmarks/front_vs_family.py train --family paper,newell --seeds 2 --jobs 2

The trainings' scores do not depend on the machine's load (epochs, not seconds, bound them), so this
step may share the machine; latency is measured in a separate quiet step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import append_jsonl, digest, read_jsonl, worker_pool  # noqa: E402

DEFAULT_LOG = Path(__file__).resolve().parent / "logs" / "front_vs_family.jsonl"
DEFAULT_WORK = Path("runs/front_vs_family")
DEFAULT_DATA = "../shared/datasets/lspet"
FAMILY_BASE = {"stacks": 1, "depth": 3, "joints": 14, "input_size": 256,
               "intermediate_supervision": True, "version": 1}


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two trainings of one arch and seed the same training (the data by name, so the
    log's keys hold in any checkout)."""
    from trainers.data import selection_splits

    return {"data": Path(args.data).name, "epochs": args.epochs, "input_size": args.input_size,
            "splits": list(selection_splits(data_arg(args.data)))}


def data_arg(data: str) -> str:
    """A dataset path made absolute (the workers may run elsewhere); `synthetic` as it is."""
    return data if data == "synthetic" or ":" in data else str(Path(data).resolve())


def job_key(arch_id: str, seed: int, rec: dict[str, Any]) -> str:
    return digest({"arch_id": arch_id, "seed": seed, **rec})


def family_jobs(families: list[str], seeds: int) -> list[dict[str, Any]]:
    """Every family member with every seed, seed by seed (a session that stops part-way leaves
    whole families at the first seeds), smallest first within a family."""
    from search.family import family_ladder
    from space.spec import ArchSpec

    jobs = []
    for seed in range(seeds):
        for name in families:
            for arch in family_ladder(name, FAMILY_BASE):
                jobs.append({"role": f"family:{name}", "arch": arch, "seed": seed,
                             "arch_id": ArchSpec.from_dict(arch).arch_id})
    return jobs


def _train(job: dict[str, Any]) -> dict[str, Any]:
    """In a worker: one finalize run (search.finalize.train_run), its final.json as the result."""
    from search.finalize import RECORD, RunJob, train_run

    folder = Path(job["folder"])
    started = time.time()
    run_job = RunJob(data=job["data"], epochs=job["epochs"], input_size=job["input_size"],
                     splits=tuple(job["splits"]), cpus=1, device="cpu")
    train_run({"run": {"folder": str(folder), "arch": job["arch"], "seed": job["seed"]}},
              job=run_job)
    record = json.loads((folder / RECORD).read_text())
    return record | {"train_wall_s": round(time.time() - started, 1)}


def train(args: argparse.Namespace) -> None:
    rec = recipe(args)
    done = {r["key"] for r in read_jsonl(args.log) if r.get("kind") == "training"}
    jobs = [j for j in family_jobs(args.family.split(","), args.seeds)
            if job_key(j["arch_id"], j["seed"], rec) not in done]
    print(f"{len(done)} trainings logged, {len(jobs)} to run ({args.jobs} at a time)", flush=True)
    if not jobs:
        return
    final = args.work / "final"
    data = data_arg(args.data)
    with worker_pool(args.jobs) as pool:
        futures = {pool.submit(_train, j | rec | {"data": data, "folder": str(
            (final / f"{j['arch_id']}-s{j['seed']}").resolve())}): j for j in jobs}
        for n, fut in enumerate(_as_completed(futures), 1):
            job, result = futures[fut], fut.result()
            append_jsonl(args.log, {"kind": "training", "key": job_key(job["arch_id"], job["seed"], rec),
                                    "role": job["role"], "arch": job["arch"], **rec, **result})
            print(f"[{n}/{len(jobs)}] {job['role']} {job['arch_id']} s{job['seed']} "
                  f"{job['arch']['stacks']}x{job['arch']['width']}d{job['arch']['depth']}: "
                  f"val {result['val']:.4f} test {result['test']:.4f} "
                  f"({result['train_wall_s']:.0f} s)", flush=True)


def _as_completed(futures: dict) -> Any:
    from concurrent.futures import as_completed

    return as_completed(futures)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["train"])
    p.add_argument("--family", default="paper,newell")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--log", type=Path, default=DEFAULT_LOG)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
