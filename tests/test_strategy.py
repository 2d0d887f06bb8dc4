"""The costaware sampler (search/strategy/): warm start, no repeats, limits, its EHVI, a real study."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import yaml
from helpers import REPO, study_file

import launch
from search.config import StudyConfig, build_sampler
from search.strategy import (
    CostAwareSampler,
    History,
    Scored,
    Surrogate,
    Timed,
    arch_params,
    expected_hvi,
    model_costs,
    params_arch,
    predict_seconds,
)
from space.errors import ConfigError
from space.references import references_in_space
from space.search_space import SearchSpace
from space.spec import ArchSpec

SOFTGATE = yaml.safe_load((REPO / "studies/softgate.yaml").read_text())["space"]
# the softgate axes at small sizes: models build in milliseconds, so a study of the sampler runs in seconds
SMALL = {**SOFTGATE, "stacks": [1], "width": [16, 32], "depth": [2], "input_size": 64}
OBJECTIVES = [("pck", "maximize"), ("latency_ms", "minimize")]


GATE_BONUS = {
    "channel": 0.05,
    "scalar": 0.03,
    "identity": 0.0,
    "none": -0.05,
    "se": -0.02,
    "eca": -0.02,
}


def toy_value(spec: ArchSpec) -> float:
    """A deterministic stand-in for a proxy's accuracy: grows with log FLOPs, depends on gate and down."""
    flops = model_costs(spec.to_dict())["flops"]
    return (
        0.05 * math.log(flops / 1e7)
        + GATE_BONUS[spec.gate]
        + (0.03 if spec.down == "maxpool" else 0.0)
    )


def toy_objective(space: SearchSpace):
    """(toy accuracy, latency proportional to FLOPs) of the sampled arch."""

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.sample(trial)
        trial.set_user_attr("arch_id", spec.arch_id)
        return toy_value(spec), model_costs(spec.to_dict())["flops"] / 1e7

    return objective


def run_study(sampler, space: SearchSpace, trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(toy_objective(space), n_trials=trials)
    return study


def test_params_round_trip_through_the_space() -> None:
    space = SearchSpace.from_dict(SOFTGATE)
    for arch in space.grid()[::1997]:
        assert (
            params_arch(space, arch_params(space, arch)).to_dict()
            == ArchSpec.from_dict(arch).to_dict()
        )


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_warm_start_trains_the_reference_designs_first_and_no_arch_twice() -> None:
    space = SearchSpace.from_dict(SMALL)
    refs = references_in_space(space, sizes="deepest")
    assert len(refs) == 4  # paper + newell at 2 widths
    study = run_study(CostAwareSampler(space, OBJECTIVES, seed=0, candidates=16), space, 12)
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert ids[:4] == [ArchSpec.from_dict(a).arch_id for a in refs]
    assert len(set(ids)) == len(ids)


def test_the_softgate_warm_start_is_both_references_at_each_size_at_depth_4() -> None:
    refs = references_in_space(SearchSpace.from_dict(SOFTGATE), sizes="deepest")
    widths = SOFTGATE["width"]
    assert [(a["stacks"], a["width"], a["depth"], a["block"]) for a in refs] == [
        (s, w, 4, b) for s in (1, 2) for w in widths for b in ("multibranch", "bottleneck")
    ]


def test_the_default_softgate_warm_start_is_both_references_at_three_widths_of_the_smallest_size() -> (
    None
):
    # 1 stack, depth 3, a low, middle and high budget of the fine width axis: six of the space's
    # projections, so the warm start leaves most of a 12-minute budget to the search
    cfg = StudyConfig.load(str(REPO / "studies/softgate.yaml"))
    sampler = CostAwareSampler(cfg.space, OBJECTIVES, seed=0, **cfg.sampler.options)
    assert [(a["stacks"], a["width"], a["depth"], a["block"]) for a in sampler.warm] == [
        (1, w, 3, b) for w in (24, 48, 96) for b in ("multibranch", "bottleneck")
    ]


def test_reference_widths_keep_those_widths_and_refuse_one_the_space_lacks(tmp_path) -> None:
    space = SearchSpace.from_dict(SMALL)
    refs = references_in_space(space, sizes="smallest", widths=[32])
    assert {a["width"] for a in refs} == {32} and len(refs) == 2
    path = study_file(
        tmp_path, "bad", sampler={"name": "costaware", "options": {"reference_widths": [40]}}
    )
    with pytest.raises(ConfigError) as err:
        StudyConfig.load(str(path))
    assert err.value.field == "sampler.options" and "40" in str(err.value)


def test_unknown_reference_sizes_are_a_config_error(tmp_path) -> None:
    path = study_file(
        tmp_path, "bad", sampler={"name": "costaware", "options": {"reference_sizes": "largest"}}
    )
    with pytest.raises(ConfigError) as err:
        StudyConfig.load(str(path))
    assert err.value.field == "sampler.options" and "largest" in str(err.value)


def _timed_history(space: SearchSpace) -> tuple[list, list]:
    """Six scored archs whose training seconds grow tenfold with width."""
    archs = [a for a in space.grid() if a["gate"] == "channel"][:3] + [
        a for a in space.grid() if a["gate"] == "none"
    ][:3]
    archs = [{**a, "width": w} for a, w in zip(archs, (16, 32) * 3)]
    done = [
        Scored(a, toy_value(ArchSpec.from_dict(a)), model_costs(a)["flops"] / 1e7) for a in archs
    ]
    return done, [Timed(a, 10.0 if a["width"] == 16 else 100.0) for a in archs]


def test_training_seconds_are_predicted_within_the_seconds_seen() -> None:
    space = SearchSpace.from_dict(SMALL)
    sampler = CostAwareSampler(space, OBJECTIVES, seed=0)
    _, seconds = _timed_history(space)
    pool = [
        {**a, "width": w}
        for a, w in zip([a for a in space.grid() if a["gate"] == "scalar"][:8], (16, 32) * 4)
    ]
    x = sampler.encoder.matrix(pool, [model_costs(a) for a in pool])
    predicted = predict_seconds(sampler.encoder, seconds, x)
    assert ((10.0 <= predicted) & (predicted <= 100.0)).all()
    wide = np.array([a["width"] == 32 for a in pool])
    assert wide.any() and (~wide).any() and predicted[wide].min() > predicted[~wide].max()


def test_at_equal_expected_improvement_the_faster_training_wins(monkeypatch) -> None:
    # EHVI per predicted second: the study's compute is the budget, so of two candidates that promise
    # the same, the one that trains in a tenth of the time goes first
    import search.strategy._acquisition as acquisition

    space = SearchSpace.from_dict(SMALL)
    done, seconds = _timed_history(space)
    pool = [
        {**a, "width": w}
        for a, w in zip([a for a in space.grid() if a["gate"] == "scalar"][:4], (32, 32, 32, 16))
    ]
    monkeypatch.setattr(acquisition, "expected_hvi", lambda mu, *args: np.ones(len(mu)))
    sampler = CostAwareSampler(space, OBJECTIVES, seed=0)
    assert sampler.best_candidate(pool, History(done=done, timed=seconds)) == pool[3]
    untimed = History(done=done)
    assert sampler.best_candidate(pool, untimed) == pool[0]  # untimed: the first of equals


def test_warm_start_alone_draws_at_random_after_the_references() -> None:
    space = SearchSpace.from_dict({**SMALL, "depth": [2, 3]})
    study = run_study(
        CostAwareSampler(space, OBJECTIVES, seed=0, cost_aware=False, reference_sizes="all"),
        space,
        9,
    )
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert set(ids[:8]) == {ArchSpec.from_dict(a).arch_id for a in references_in_space(space)}
    assert ids[8] not in ids[:8]


def test_the_surrogate_ranks_unseen_archs_of_a_predictable_function() -> None:
    # the encoding (one-hot choices + log params/FLOPs) and the GP must carry the signal: fitted on
    # 20 random archs of the toy function, it ranks 40 others (Kendall tau well above chance)
    from scipy.stats import kendalltau

    from search.strategy import Encoder, fit_gp

    space = SearchSpace.from_dict(SMALL)
    grid = space.grid()
    archs = [grid[i] for i in np.random.default_rng(0).choice(len(grid), 60, replace=False)]
    enc = Encoder(space)
    x = enc.matrix(archs, [model_costs(a) for a in archs])
    y = np.array([toy_value(ArchSpec.from_dict(a)) for a in archs])
    tau = kendalltau(fit_gp(x[:20], y[:20], seed=0).predict(x[20:]), y[20:]).statistic
    assert tau > 0.5


def test_an_input_constant_over_the_trials_keeps_candidates_that_differ_there_in_reach() -> None:
    # after a warm start many choices are the same in every trial (all maxpool here); a candidate
    # that changes one of them must be predicted from its near twin, not sent to the GP's prior
    space = SearchSpace.from_dict(SMALL)
    grid = [a for a in space.grid() if a["down"] == "maxpool"]
    archs = [grid[i] for i in np.random.default_rng(0).choice(len(grid), 20, replace=False)]
    y = np.array([toy_value(ArchSpec.from_dict(a)) for a in archs])
    twin = {**archs[int(np.argmax(y))], "down": "avgpool"}
    sampler = CostAwareSampler(space, OBJECTIVES, seed=0)
    history = History(done=[Scored(a, v, 1.0) for a, v in zip(archs, y)])
    gp = Surrogate(sampler.encoder, sampler.roles, history, sampler.seed).gp
    accuracy = -gp.predict(sampler.encoder.matrix([twin], [model_costs(twin)]))[0]
    assert accuracy > y.mean() + 0.5 * (y.max() - y.mean())


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_a_params_limit_is_never_proposed() -> None:
    space = SearchSpace.from_dict(SMALL)
    limit = 20_000
    sampler = CostAwareSampler(
        space,
        [("pck", "maximize"), ("params", "minimize")],
        {"params": limit},
        seed=0,
        candidates=16,
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial):
        spec = space.sample(trial)
        p = model_costs(spec.to_dict())["params"]
        return 0.1 + 0.01 * math.log(p), p

    study.optimize(objective, n_trials=10)
    over = [
        a for a in references_in_space(space, sizes="deepest") if model_costs(a)["params"] > limit
    ]
    assert (
        over and len(over) < 4
    )  # some reference designs are over the limit: the warm start skips them
    assert all(t.values[1] <= limit for t in study.trials)


def test_expected_hvi_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    front = np.array([[-0.30, 10.0], [-0.20, 5.0], [-0.10, 2.0]])
    ref = (0.0, 20.0)
    mu, sigma, cost = (
        np.array([-0.25, -0.05, -0.4]),
        np.array([0.05, 0.02, 0.1]),
        np.array([4.0, 1.0, 25.0]),
    )
    exact = expected_hvi(mu, sigma, cost, front, ref)
    from optuna._hypervolume import compute_hypervolume

    base = compute_hypervolume(front, np.array(ref))
    for i in range(2):
        draws = rng.normal(mu[i], sigma[i], 4000)
        mc = np.mean(
            [
                max(
                    0.0,
                    compute_hypervolume(np.vstack([front, [min(d, 0.0), cost[i]]]), np.array(ref))
                    - base,
                )
                for d in draws
            ]
        )
        assert exact[i] == pytest.approx(mc, rel=0.05, abs=1e-4)
    assert exact[2] == 0.0  # slower than the reference point: adds nothing


def test_the_sampler_needs_one_trained_and_one_cost_objective(tmp_path) -> None:
    path = study_file(
        tmp_path,
        "bad",
        sampler={"name": "costaware", "options": {}},
        objectives=[{"name": "pck", "direction": "maximize"}],
    )
    with pytest.raises(ConfigError) as err:
        StudyConfig.load(str(path))
    assert err.value.field == "objectives" and "two objectives" in str(err.value)


def test_cli_bad_costaware_option_exits_2(tmp_path, capsys) -> None:
    path = study_file(tmp_path, "bad", sampler={"name": "costaware", "options": {"warm": True}})
    assert launch.main(["--study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sampler.options" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_smoke_study_with_the_costaware_sampler(tmp_path) -> None:
    # the smoke space (multibranch only) can express the paper's design, not Newell's bottleneck
    path = study_file(
        tmp_path,
        "cost",
        sampler={"name": "costaware", "seed": 0, "options": {"startup": 1}},
        trials=4,
    )
    assert launch.main(["--study", str(path), "--out", str(tmp_path / "run")]) == 0
    cfg = StudyConfig.load(str(path))
    study = optuna.load_study(
        study_name="cost", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    )
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    ids = [t.user_attrs["arch_id"] for t in trials]
    refs = {ArchSpec.from_dict(a).arch_id for a in references_in_space(cfg.space)}
    assert (
        len(refs) == 2 and set(ids[:2]) == refs
    )  # concurrency 2: both asked before either finished
    assert len(set(ids)) == 4  # the 4 archs of the smoke space, none twice
    assert all(t.user_attrs["train_s"] > 0 for t in trials)  # what the per-second acquisition fits
    assert isinstance(build_sampler(cfg), CostAwareSampler)


def test_each_ask_keeps_three_quarters_of_the_random_candidates() -> None:
    # counting a new candidate's FLOPs costs up to half a second: only a quarter are new per ask
    sampler = CostAwareSampler(SearchSpace.from_dict(SMALL), OBJECTIVES, seed=0, candidates=16)
    first = sampler.candidates.draw(set())
    seen = set(list(first)[:2])  # two of them trained meanwhile
    second = sampler.candidates.draw(seen)
    assert len(first) == len(second) == 16 and not seen & set(second)
    assert len(set(first) & set(second)) == 12  # the 12 newest unseen of the first draw, plus 4 new
