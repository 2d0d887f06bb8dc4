"""The costaware sampler (search/strategy.py): warm start, no repeats, limits, its EHVI, and a real study."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import yaml

import launch
from helpers import REPO, study_file
from search.config import StudyConfig
from search.samplers import build_sampler
from search.strategy import CostAwareSampler, arch_params, expected_hvi, model_costs, params_arch
from space.references import references_in_space
from space.search_space import SearchSpace
from space.spec import ArchSpec

SOFTGATE = yaml.safe_load((REPO / "studies/softgate.yaml").read_text())["space"]
OBJECTIVES = [("pck", "maximize"), ("latency_ms", "minimize")]


def toy_objective(space: SearchSpace):
    """A deterministic stand-in for a proxy: accuracy grows with log FLOPs and depends on the gate;
    latency is proportional to FLOPs. Cheap enough to run a 30-trial study in seconds."""
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.sample(trial)
        flops = model_costs(spec.to_dict())["flops"]
        bonus = {"channel": 0.05, "scalar": 0.03, "identity": 0.0, "none": -0.05, "se": -0.02, "eca": -0.02}
        trial.set_user_attr("arch_id", spec.arch_id)
        return 0.05 * math.log(flops / 1e8) + bonus[spec.gate] + (0.03 if spec.down == "maxpool" else 0.0), flops / 1e8
    return objective


def run_study(sampler, space: SearchSpace, trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(toy_objective(space), n_trials=trials)
    return study


def test_params_round_trip_through_the_space() -> None:
    space = SearchSpace.from_dict(SOFTGATE)
    for arch in space.grid()[::997]:
        assert params_arch(space, arch_params(space, arch)).to_dict() == ArchSpec.from_dict(arch).to_dict()


def test_warm_start_trains_the_reference_designs_first_and_no_arch_twice() -> None:
    space = SearchSpace.from_dict(SOFTGATE)
    refs = references_in_space(space, depths="deepest")
    assert len(refs) == 8  # paper + newell at 2 stacks x 2 widths, depth 4
    study = run_study(CostAwareSampler(space, OBJECTIVES, seed=0, candidates=32), space, 14)
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert ids[:8] == [ArchSpec.from_dict(a).arch_id for a in refs]
    assert len(set(ids)) == len(ids)


def test_warm_start_alone_draws_at_random_after_the_references() -> None:
    space = SearchSpace.from_dict(SOFTGATE)
    study = run_study(CostAwareSampler(space, OBJECTIVES, seed=0, cost_aware=False, reference_depths="all"), space, 18)
    ids = [t.user_attrs["arch_id"] for t in study.trials]
    assert set(ids[:16]) == {ArchSpec.from_dict(a).arch_id for a in references_in_space(space)}
    assert ids[16] not in ids[:16]


def test_cost_aware_selection_beats_random_on_a_predictable_function() -> None:
    # deterministic (fixed seeds), so not a flaky statistical test: the GP must learn that gates
    # and maxpool matter and that accuracy follows FLOPs, and pick along the front
    space = SearchSpace.from_dict(SOFTGATE)
    ref = [0.0, 30.0]

    def hv(study):
        pts = np.array([[-t.values[0], t.values[1]] for t in study.best_trials])
        pts = pts[(pts < [0.0, 30.0]).all(axis=1)]
        from optuna._hypervolume import compute_hypervolume
        return compute_hypervolume(pts, np.array([-ref[0], ref[1]])) if len(pts) else 0.0

    cost = hv(run_study(CostAwareSampler(space, OBJECTIVES, seed=1, warm_start=False, candidates=48), space, 16))
    rnd = hv(run_study(optuna.samplers.RandomSampler(seed=1), space, 16))
    assert cost > rnd


def test_a_params_limit_is_never_proposed() -> None:
    space = SearchSpace.from_dict(SOFTGATE)
    limit = 150_000
    sampler = CostAwareSampler(space, [("pck", "maximize"), ("params", "minimize")], {"params": limit},
                               seed=0, candidates=32)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial):
        spec = space.sample(trial)
        p = model_costs(spec.to_dict())["params"]
        return 0.1 + 0.01 * math.log(p), p
    study.optimize(objective, n_trials=10)
    assert all(t.values[1] <= limit for t in study.trials[:4])  # the warm start keeps to the limit
    assert sum(t.values[1] <= limit for t in study.trials) >= 9   # the search too (a random fallback may not)


def test_expected_hvi_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    front = np.array([[-0.30, 10.0], [-0.20, 5.0], [-0.10, 2.0]])
    ref = (0.0, 20.0)
    mu, sigma, cost = np.array([-0.25, -0.05, -0.4]), np.array([0.05, 0.02, 0.1]), np.array([4.0, 1.0, 25.0])
    exact = expected_hvi(mu, sigma, cost, front, ref)
    from optuna._hypervolume import compute_hypervolume

    base = compute_hypervolume(front, np.array(ref))
    for i in range(2):
        draws = rng.normal(mu[i], sigma[i], 4000)
        mc = np.mean([max(0.0, compute_hypervolume(np.vstack([front, [min(d, 0.0), cost[i]]]), np.array(ref)) - base)
                      for d in draws])
        assert exact[i] == pytest.approx(mc, rel=0.05, abs=1e-4)
    assert exact[2] == 0.0  # slower than the reference point: adds nothing


def test_the_sampler_needs_one_trained_and_one_cost_objective(tmp_path) -> None:
    path = study_file(tmp_path, "bad", sampler={"name": "costaware"},
                      objectives=[{"name": "pck", "direction": "maximize"}])
    with pytest.raises(Exception) as err:
        StudyConfig.load(str(path))
    assert "costaware" in str(err.value) and "two objectives" in str(err.value)


def test_cli_bad_costaware_option_exits_2(tmp_path, capsys) -> None:
    path = study_file(tmp_path, "bad", sampler={"name": "costaware", "options": {"warm": True}})
    assert launch.main(["--study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sampler.options" in err[0]
    assert not (tmp_path / "out").exists()


def test_smoke_study_with_the_costaware_sampler(tmp_path) -> None:
    # the smoke space (multibranch only) can express the paper's design, not Newell's bottleneck
    path = study_file(tmp_path, "cost", sampler={"name": "costaware", "seed": 0, "options": {"startup": 1}},
                      trials=4)
    assert launch.main(["--study", str(path), "--out", str(tmp_path / "run")]) == 0
    cfg = StudyConfig.load(str(path))
    study = optuna.load_study(study_name="cost", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    ids = [t.user_attrs["arch_id"] for t in trials]
    refs = {ArchSpec.from_dict(a).arch_id for a in references_in_space(SearchSpace.from_dict(cfg.space))}
    assert len(refs) == 2 and set(ids[:2]) == refs  # concurrency 2: both asked before either finished
    assert len(set(ids)) == 4  # the 4 archs of the smoke space, none twice
    assert isinstance(build_sampler(cfg), CostAwareSampler)
