"""benchmarks/proxy_fidelity.py: the rank statistics on hand-made rankings, and the budget arguments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import load_benchmark

from space.errors import ConfigError
from space.search_space import SearchSpace

pf = load_benchmark("proxy_fidelity")


def test_identical_and_reversed_rankings() -> None:
    long = [0.1, 0.3, 0.2, 0.5]
    same = pf.rank_agreement([1, 3, 2, 5], long)  # other values, same order
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman_rho"] == pytest.approx(1.0)
    rev = pf.rank_agreement([-x for x in long], long)
    assert rev["kendall_tau"] == pytest.approx(-1.0) and rev["spearman_rho"] == pytest.approx(-1.0)


def test_one_swap_by_hand() -> None:
    # ranks 1 2 3 4 vs 1 2 4 3: 5 concordant, 1 discordant pair of 6 -> tau = 4/6;
    # sum d^2 = 2 -> rho = 1 - 6*2 / (4*15) = 0.8
    ag = pf.rank_agreement([1, 2, 4, 3], [1, 2, 3, 4])
    assert ag["n"] == 4
    assert ag["kendall_tau"] == pytest.approx(4 / 6)
    assert ag["spearman_rho"] == pytest.approx(0.8)


def test_missing_scores_are_dropped_pairwise() -> None:
    ag = pf.rank_agreement([1, None, 3, float("nan"), 5, -math.inf], [1, 2, 3, 4, 5, 6])
    assert ag["n"] == 3 and ag["kendall_tau"] == pytest.approx(1.0)
    assert math.isnan(pf.rank_agreement([1, 2], [1, 2])["kendall_tau"])  # too few to rank


def test_knobs() -> None:
    assert pf.parse_knobs("epochs=4, input_size=32,max_seconds=none,lr=0.001", "--short") == {
        "epochs": 4,
        "input_size": 32,
        "max_seconds": None,
        "lr": 0.001,
    }
    with pytest.raises(ConfigError, match="--variant x"):
        pf.parse_knobs("epochs", "--variant x")


def test_sampled_archs_are_distinct_and_fit_every_size() -> None:
    space = SearchSpace.from_dict(
        {
            "width": [16, 32],
            "depth": [2, 3, 4],
            "gate": ["channel", "identity", "se"],
            "input_size": 64,
        }
    )
    archs = pf.sample_archs(space, 6, seed=0, sizes=[32, 64])
    assert len(archs) == 6 and len({a.arch_id for a in archs}) == 6
    assert all(a.depth <= 3 for a in archs)  # depth 4 needs inputs divisible by 64: not 32


def test_an_interrupted_run_reuses_its_finished_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[tuple[int, str]] = []

    def fake_train(job: dict) -> dict:  # the training itself is tested in test_proxy.py
        trained.append((job["index"], job["name"]))
        return {
            "arch": job["index"],
            "budget": job["name"],
            "pck": 0.1 + 0.01 * job["index"],
            "wall_s": 1.0,
        }

    monkeypatch.setattr(pf, "_train_one", fake_train)
    out = tmp_path / "fid.json"
    argv = ["--quick", "--data", "synthetic:32", "--train", "16", "--val", "8", "--out", str(out)]
    assert pf.main(argv) == 0
    first = len(trained)
    assert first == 4 * 3  # 4 archs x (short, long, one variant)
    assert trained[0][1] == "long"  # the biggest jobs go first

    log = out.with_suffix(".jobs.jsonl")
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:5]) + '\n{"key": "torn')  # killed while writing the 6th
    assert pf.main(argv) == 0
    assert len(trained) == first + len(lines) - 5  # only the lost jobs ran again
    second = len(trained)
    assert pf.main(argv + ["--variant", "ep2:epochs=2"]) == 0
    assert trained[second:] == [
        (i, "ep2") for i in range(4)
    ]  # a new budget trains; the rest is reused
    third = len(trained)
    # the same budgets under other names (the variant made the short budget): all reused, by their new names
    assert (
        pf.main(
            argv[:-2]
            + [
                "--short",
                "epochs=2",
                "--long",
                "epochs=4",
                "--variant",
                "ep1:epochs=1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(trained) == third
    report = json.loads(out.read_text())
    assert [a["pck_ep1"] for a in report["archs"]] == [0.1 + 0.01 * i for i in range(4)]


def test_job_key_ignores_the_arch_index() -> None:
    job = {
        "index": 0,
        "name": "short",
        "arch": {"width": 16},
        "budget": {"epochs": 1},
        "data": {"train": 8},
        "threads": 1,
        "device": "cpu",
    }
    assert pf.job_key(job) == pf.job_key({**job, "index": 3, "name": "renamed"})
    assert pf.job_key(job) != pf.job_key({**job, "budget": {"epochs": 2}})
