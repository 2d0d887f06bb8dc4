"""Ablation studies: the shipped study files, the `seeds:` key end to end through the searcher, the
per-value table and the paper-claim rule on hand-made studies in real SQLite storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from helpers import REPO

from search.ablation import FAILS, HOLDS, INCONCLUSIVE, check_claims, judge, per_value_table
from search.config import StudyConfig
from space.errors import ConfigError
from space.registry import DOWNSAMPLE, FUSIONS, GATES, SKIPS, UPSAMPLE
from space.spec import load_arch

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


# -- the claim rule on hand-made numbers ------------------------------------------------------------
def test_judge_holds_fails_and_inconclusive() -> None:
    assert judge([0.50, 0.52, 0.51], [0.40, 0.41, 0.39]).verdict == HOLDS
    assert judge([0.40, 0.41, 0.39], [0.50, 0.52, 0.51]).verdict == FAILS
    # a 0.01 difference inside a 0.05 seed spread: not significant
    noisy = judge([0.50, 0.45, 0.56], [0.49, 0.55, 0.44])
    assert noisy.verdict == INCONCLUSIVE and noisy.p_value > 0.5
    assert judge([0.9], [0.1, 0.2]).verdict == INCONCLUSIVE  # one seed: no spread to test against


def test_judge_p_value_is_welchs() -> None:
    # Welch by hand: means 0.5 / 0.4, variances 0.0001 / 0.0004 over n=3 -> t = 0.1 / sqrt(0.0005/3) = 7.746,
    # df = (0.0005/3)^2 / ((0.0001/3)^2/2 + (0.0004/3)^2/2) = 2.941; two-sided p = 0.0048
    v = judge([0.49, 0.50, 0.51], [0.38, 0.40, 0.42])
    assert v.diff == pytest.approx(0.1)
    assert v.p_value == pytest.approx(0.0048, abs=3e-4)


def test_judge_at_equal_params() -> None:
    better, worse = [0.50, 0.52, 0.51], [0.40, 0.41, 0.39]
    assert (
        judge(better, worse, params_better=105, params_worse=100, equal_params=True).verdict
        == HOLDS
    )
    # better but 50 % bigger: the size could explain it
    assert (
        judge(better, worse, params_better=150, params_worse=100, equal_params=True).verdict
        == INCONCLUSIVE
    )
    # better and smaller: dominates
    assert (
        judge(better, worse, params_better=60, params_worse=100, equal_params=True).verdict == HOLDS
    )
    # worse and bigger: dominated; worse and smaller: not comparable
    assert (
        judge(worse, better, params_better=150, params_worse=100, equal_params=True).verdict
        == FAILS
    )
    assert (
        judge(worse, better, params_better=60, params_worse=100, equal_params=True).verdict
        == INCONCLUSIVE
    )


# -- claims and per-value tables from a real SQLite study ---------------------------------------------
REF = load_arch("bulat-sgsc-proxy").to_dict()


def fake_ablation(
    tmp_path: Path,
    points: dict[tuple, list[float]],
    keys: tuple[str, ...],
    params: dict[tuple, int] | None = None,
) -> optuna.Study:
    """A stored study as the runner leaves it: one COMPLETE trial per grid point and seed."""
    study = optuna.create_study(
        study_name="abl",
        storage=f"sqlite:///{tmp_path / 's.db'}",
        directions=["maximize", "minimize"],
    )
    study.set_metric_names(["pck", "latency_ms"])
    for index, (values, pcks) in enumerate(points.items()):
        arch = {**REF, **dict(zip(keys, values))}
        for seed, pck in enumerate(pcks):
            trial = study.ask()
            trial.suggest_categorical("grid_index", list(range(len(points))))
            trial.suggest_categorical("proxy_seed", [0, 1, 2])
            trial.set_user_attr("arch", arch)
            trial.set_user_attr("arch_id", f"a{index}")
            trial.set_user_attr("params", (params or {}).get(values, 1000 * (index + 1)))
            trial.set_user_attr("flops", 10_000 * (index + 1))
            trial.set_user_attr("latency_ms", 2.0 + index)
            trial.set_user_attr("budget", {"seed": seed})
            study.tell(trial, [pck, 2.0 + index])
    return study


def test_gate_claim_and_table(tmp_path: Path) -> None:
    study = fake_ablation(
        tmp_path,
        {
            ("channel", 1.0): [0.50, 0.52, 0.51],
            ("identity", None): [0.40, 0.41, 0.39],
            ("se", None): [0.45, 0.47, 0.46],
        },
        ("gate", "gate_init"),
    )
    table = per_value_table(study).reset_index()
    assert table["gate"].tolist() == ["channel", "identity", "se"]
    assert table["gate_init"].tolist() == ["1.0", "-", "-"]
    assert table["seeds"].tolist() == [3, 3, 3]
    assert table["pck_mean"].tolist() == pytest.approx([0.51, 0.40, 0.46])
    assert table["pck_std"].tolist() == pytest.approx([0.01, 0.01, 0.01])
    assert table["params_mean"].tolist() == [1000, 2000, 3000]
    claims = check_claims(study)
    assert claims["claim"].tolist() == [
        "per-channel gate vs identity skip"
    ]  # no fusion/skip axis here
    assert claims["verdict"].tolist() == [HOLDS]


def test_search_studies_get_no_ablation_tables(tmp_path: Path) -> None:
    from search.ablation import write_ablation

    study = fake_ablation(
        tmp_path,
        {("channel", 1.0): [0.50, 0.52], ("identity", None): [0.40, 0.41]},
        ("gate", "gate_init"),
    )
    assert set(write_ablation(study, tmp_path)) == {"ablation_values", "claims"}
    study.set_user_attr("config", {"sampler": {"name": "nsga2"}})  # as the runner stores a search
    assert write_ablation(study, tmp_path / "search") == {}


def test_fusion_study_tests_both_fusion_claims(tmp_path: Path) -> None:
    points = {
        ("concat_conv3x3", "identity"): [0.50, 0.52, 0.51],
        ("add", "identity"): [0.50, 0.53, 0.49],
        ("concat_conv3x3", "block"): [0.55, 0.56, 0.54],
        ("add", "block"): [0.30, 0.31, 0.29],
    }
    sizes = {
        ("concat_conv3x3", "identity"): 1000,
        ("add", "identity"): 900,
        ("concat_conv3x3", "block"): 1500,
        ("add", "block"): 2000,
    }
    claims = check_claims(fake_ablation(tmp_path, points, ("fusion", "skip"), sizes)).set_index(
        "claim"
    )
    assert claims.loc["concat-then-conv fusion vs add", "verdict"] == INCONCLUSIVE
    hybrid = claims.loc[[c for c in claims.index if c.startswith("hybrid")][0]]
    assert hybrid["verdict"] == HOLDS and hybrid["params_A/B"] == pytest.approx(
        0.5
    )  # better and smaller


def test_claims_compare_like_with_like_when_other_fields_vary(tmp_path: Path) -> None:
    # gate and width both vary: the gate claim is tested on the one pair that differs only in the gate
    # (width 32); channel at width 64 has no identity partner and is not pooled into it
    points = {
        ("channel", 32): [0.5, 0.52],
        ("channel", 64): [0.9, 0.92],
        ("identity", 32): [0.4, 0.42],
    }
    study = fake_ablation(tmp_path, points, ("gate", "width"))
    claims = check_claims(study)
    assert claims["claim"].tolist() == ["per-channel gate vs identity skip"]
    assert claims["pck_A"].tolist() == pytest.approx([0.51]) and claims["arch_A"].tolist() == ["a0"]
    assert list(per_value_table(study).index.names) == ["width", "gate"]  # in ArchSpec field order


def test_each_like_for_like_pair_is_a_test_named_by_its_context(tmp_path: Path) -> None:
    points = {
        ("channel", 32): [0.5, 0.52],
        ("identity", 32): [0.4, 0.42],
        ("channel", 64): [0.6, 0.61],
        ("identity", 64): [0.6, 0.62],
    }
    claims = check_claims(fake_ablation(tmp_path, points, ("gate", "width"))).set_index("claim")
    assert claims.loc["per-channel gate vs identity skip [width=32]", "verdict"] == HOLDS
    assert claims.loc["per-channel gate vs identity skip [width=64]", "verdict"] == INCONCLUSIVE


def test_equal_params_claim_pairs_the_closest_sizes(tmp_path: Path) -> None:
    # studies/ablation-hybrid.yaml: the plain hourglass is widened until it matches the hybrid's size
    points = {
        ("concat_conv3x3", "identity", 64): [0.50, 0.51, 0.52],
        ("add", "block", 64): [0.30, 0.31, 0.32],
        ("add", "block", 80): [0.40, 0.41, 0.42],
        ("concat_conv3x3", "identity", 80): [0.6, 0.6, 0.6],
    }
    sizes = {
        ("concat_conv3x3", "identity", 64): 900,
        ("add", "block", 64): 610,
        ("add", "block", 80): 950,
        ("concat_conv3x3", "identity", 80): 1400,
    }
    claims = check_claims(fake_ablation(tmp_path, points, ("fusion", "skip", "width"), sizes))
    hybrid = claims[claims["claim"].str.startswith("hybrid")]
    assert hybrid["claim"].tolist() == [
        "hybrid (skip identity, concat fusion) vs plain hourglass (skip block, add) at equal params [width 64 vs 80]"
    ]
    assert hybrid["verdict"].tolist() == [HOLDS] and hybrid["params_A/B"].tolist() == pytest.approx(
        [900 / 950]
    )


def test_report_prints_table_and_verdicts(tmp_path: Path) -> None:
    study = fake_ablation(
        tmp_path,
        {("channel", 1.0): [0.50, 0.52, 0.51], ("identity", None): [0.40, 0.41, 0.39]},
        ("gate", "gate_init"),
    )
    del study
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch.py"),
            "report",
            "--study",
            "abl",
            "--storage",
            f"sqlite:///{tmp_path / 's.db'}",
            "--out",
            str(tmp_path / "run"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ablation over gate, gate_init" in done.stdout
    assert [
        line.split()[:3]
        for line in done.stdout.splitlines()
        if line.split()[:1] in (["channel"], ["identity"])
    ] == [["channel", "1.0", "3"], ["identity", "-", "3"]]
    assert "HOLDS          per-channel gate vs identity skip" in done.stdout
    claims = pd.read_csv(tmp_path / "run" / "report" / "claims.csv")
    assert claims["verdict"].tolist() == [HOLDS]


# -- the shipped study files ----------------------------------------------------------------------------
def grid_points(name: str) -> tuple[StudyConfig, list[dict]]:
    cfg = StudyConfig.load(name)
    return cfg, cfg.space.grid()


@pytest.mark.parametrize(
    "name, axes, points",
    [
        ("ablation-gate", {"gate": set(GATES.names())}, len(GATES.names())),
        (
            "ablation-fusion",
            {"fusion": set(FUSIONS.names()), "skip": set(SKIPS.names())},
            len(FUSIONS.names()) * len(SKIPS.names()),
        ),
        (
            "ablation-sampling",
            {"down": set(DOWNSAMPLE.names()), "up": set(UPSAMPLE.names())},
            len(DOWNSAMPLE.names()) * len(UPSAMPLE.names()),
        ),
        ("ablation-branch", {"block": {"bottleneck", "multibranch"}}, 6),
        (
            "ablation-hybrid",
            {"skip": set(SKIPS.names()), "fusion": {"add", "concat_conv3x3"}, "width": {64, 80}},
            8,
        ),
    ],
)
def test_ablation_study_files(name: str, axes: dict, points: int) -> None:
    cfg, grid = grid_points(name)
    assert cfg.sampler.name == "grid" and len(cfg.seeds) >= 3
    assert cfg.data.source.endswith("datasets/lspet")
    assert len(grid) == points and cfg.trials == points * len(cfg.seeds)
    for axis, values in axes.items():
        assert {g[axis] for g in grid} == values
    # everything not ablated stays at the reference
    fixed = set(REF) - set(axes) - {"gate_init", "branch_split", "version"}
    for g in grid:
        assert {k: g[k] for k in fixed} == {k: REF[k] for k in fixed}


def test_hybrid_study_has_a_plain_hourglass_the_size_of_the_hybrid() -> None:
    from space.model import build_model
    from space.profile import count_params
    from space.spec import ArchSpec

    _, grid = grid_points("ablation-hybrid")
    size = {
        (g["skip"], g["fusion"], g["width"]): count_params(build_model(ArchSpec.from_dict(g)))
        for g in grid
    }
    assert abs(size[("identity", "concat_conv3x3", 64)] / size[("block", "add", 80)] - 1) < 0.10


def test_branch_study_covers_branch_depths() -> None:
    _, grid = grid_points("ablation-branch")
    depths = sorted(len(g["branch_split"]) for g in grid if g["block"] == "multibranch")
    assert set(depths) == {2, 3, 4}


# -- the `seeds:` key: validation, and the runner's searcher repeats every grid point per seed -------------
def smoke_with(tmp_path: Path, **changes) -> Path:
    d = yaml.safe_load((REPO / "studies/smoke.yaml").read_text())
    d.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"seeds": [0, 1], "sampler": {"name": "nsga2"}}, "seeds", "sampler: {name: grid}"),
        ({"seeds": [], "sampler": {"name": "grid"}}, "seeds", "list of proxy seeds"),
        ({"seeds": [0, 0], "sampler": {"name": "grid"}}, "seeds", "repeat"),
        ({"seeds": [0, -1], "sampler": {"name": "grid"}}, "seeds[1]", "at least 0"),
        (
            {"seeds": [0, 1], "sampler": {"name": "grid"}, "proxy": {"input_size": 32, "seed": 3}},
            "seeds",
            "not both",
        ),
    ],
)
def test_bad_seeds_are_config_errors(tmp_path: Path, changes: dict, field: str, words: str) -> None:
    path = smoke_with(tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        StudyConfig.load(str(path))
    assert err.value.field == field and words in err.value.message and err.value.source == str(path)


def test_searcher_runs_every_grid_point_once_per_seed(tmp_path: Path) -> None:
    from search.study import make_searcher, prepare_study

    path = smoke_with(tmp_path, seeds=[0, 1, 2], sampler={"name": "grid", "seed": 0}, trials=12)
    cfg = StudyConfig.load(str(path)).with_overrides(out=str(tmp_path / "run"))
    space = cfg.space
    assert len(space.grid()) == 4  # width 16 / 32 x gate channel / identity
    searcher = make_searcher(prepare_study(cfg, resume=False), cfg, space, printer=lambda s: None)
    try:
        configs = [searcher.suggest(f"t{i}") for i in range(cfg.trials)]
        # telling the grid's last trial must not raise (optuna's GridSampler calls study.stop() there)
        for i in range(cfg.trials):
            searcher.on_trial_complete(
                f"t{i}", {"final": True, "attrs_json": '{"pck": 0.5, "latency_ms": 2.0}'}
            )
        assert searcher.suggest("extra") == "FINISHED"
    finally:
        searcher.close()
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * cfg.trials
    assert (
        sorted(
            t.user_attrs["budget"]["seed"] if "budget" in t.user_attrs else t.params["proxy_seed"]
            for t in study.get_trials()
        )
        == [0] * 4 + [1] * 4 + [2] * 4
    )
    seen = sorted((c["arch"]["width"], c["arch"]["gate"], c["seed"]) for c in configs)
    assert len(set(seen)) == len(seen) == cfg.trials
    assert {s for _, _, s in seen} == {0, 1, 2}
