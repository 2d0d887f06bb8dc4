"""The cost-aware sampler: use what is known before training (`sampler: {name: costaware}`).

Two facts the plain samplers ignore (docs/search.md, "The cost-aware sampler"):
- An architecture's params and FLOPs are known before it is trained, in a fraction of a second
  (its model built on the CPU, FLOPs counted by torch.utils.flop_counter); its latency is
  predicted from them and its design choices by a ridge regression on the log latencies measured
  so far. Accuracy costs a whole proxy training.
- Good designs are known: the paper's and Newell's (space.references).

So each new trial is chosen as follows:
1. warm start (`warm_start`): the reference designs the space can express, at every width of the
   space's fewest stacks and smallest depth (`reference_sizes: smallest`; `deepest` or `all` for more
   sizes), go first, so the front can never end worse than them at those sizes;
2. cost-aware selection (`cost_aware`): after `startup` trials, take `candidates` random
   architectures of the space (a quarter of them new at each trial, the rest kept from the trial
   before, so that few new FLOPs need counting) plus every one-axis change of the current front, drop those already
   in the study (an arch is never trained twice) and those that break a cost limit, predict their
   accuracy with a Gaussian process (scikit-learn) fitted on the trials so far, and train the one
   with the largest expected hypervolume improvement of the (accuracy, cost) front per predicted
   second of its training (`per_second`; "EI per second", Snoek et al. 2012): the trials' compute is
   the budget, and a proxy's training time varies 2x over the space. Running trials count as their
   predicted accuracy (kriging believer), so concurrent trials are not the same pick.
Without either, or while the study is too young for the surrogate, trials are drawn at random
from the space. Each part is switchable, which the ablation in benchmarks/sampler_quality.py uses.

The strategy needs exactly two objectives: one trained measure (pck) and one cost measure
(latency_ms, flops or params). It picks whole architectures in `before_trial` and hands each
parameter out in `sample_independent`, so storage, resume, the dashboard and Ray are untouched.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from search.measures import MEASURES, TRAINED
from space.errors import ConfigError
from space.references import REFERENCES, references_in_space
from space.search_space import AXES, SearchSpace
from space.spec import ArchSpec, split_key

EXACT_COSTS = ("params", "flops")     # computed from the model itself; other cost measures are predicted
FLOPS_INPUT = 64                      # FLOPs are counted at this size and scaled to the arch's input
TRAIN_SECONDS = "train_s"             # the user attr with a trial's proxy training seconds
MIN_TIMED = 3                         # trained trials before their seconds are predicted


def arch_params(space: SearchSpace, arch: Mapping[str, Any]) -> dict[str, Any]:
    """An ArchSpec dict -> the Optuna params `space.sample` suggests for it (splits as "1/2,1/4,1/4")."""
    params = {}
    for key in AXES:
        choices = space.axes.get(key, ())
        if len(choices) > 1 and space.active(key, arch):
            params[key] = split_key(arch[key]) if key == "branch_split" else arch[key]
    return params


def params_arch(space: SearchSpace, params: Mapping[str, Any]) -> ArchSpec:
    return space.sample(optuna.trial.FixedTrial(dict(params)))


class Encoder:
    """Architectures as vectors: one-hot per choice of each searched axis, plus log params and FLOPs."""

    def __init__(self, space: SearchSpace):
        self.columns = [(k, v) for k in AXES for v in space.axes.get(k, ()) if len(space.axes[k]) > 1]

    def onehot(self, arch: Mapping[str, Any]) -> np.ndarray:
        return np.array([1.0 if _plain(k, arch.get(k)) == _plain(k, v) else 0.0 for k, v in self.columns])

    def matrix(self, archs: Sequence[Mapping], costs: Sequence[Mapping]) -> np.ndarray:
        logs = np.array([[math.log(c["params"]), math.log(c["flops"])] for c in costs]).reshape(-1, 2)
        return np.hstack([np.array([self.onehot(a) for a in archs]).reshape(len(archs), -1), logs])


def _plain(key: str, value: Any) -> Any:
    # splits come as ["1/2", "1/4", "1/4"] in arch dicts and as Fractions in the space: compare keys
    return split_key(value) if key == "branch_split" and value is not None else value


_COSTS: dict[str, dict[str, float]] = {}  # by arch id: a worker's later studies ask for the same archs


def model_costs(arch: Mapping[str, Any]) -> dict[str, float]:
    """Params and FLOPs (at the arch's input size) of an architecture, without training it."""
    arch_id = ArchSpec.from_dict(arch).arch_id
    if arch_id not in _COSTS:
        _COSTS[arch_id] = _count_costs(arch)
    return _COSTS[arch_id]


def _count_costs(arch: Mapping[str, Any]) -> dict[str, float]:
    import torch

    from space.model import build_model
    from space.profile import count_flops, count_params
    from space.spec import size_multiple

    spec = ArchSpec.from_dict(arch)
    size = max(FLOPS_INPUT, size_multiple(spec.depth))
    with torch.device("cpu"):
        model = build_model(spec, input_size=size)
    return {"params": count_params(model),
            "flops": count_flops(model, size) * (spec.input_size / size) ** 2}


def fit_gp(x: np.ndarray, y: np.ndarray, seed: int | None):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # one length scale for all inputs: with 10-40 points, one per input (ARD) overfits (docs/search.md)
    kernel = ConstantKernel(1.0) * Matern(length_scale=3.0, nu=2.5, length_scale_bounds=(0.1, 100.0)) \
        + WhiteKernel(0.05, (1e-4, 1.0))
    # inputs standardised; one constant over the points so far keeps scale 1: dividing by its ~0
    # spread put every candidate that differs there infinitely far, at the GP's prior
    gp = make_pipeline(StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                                                 random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on a handful of points
        gp.fit(x, y)
    return gp


def fit_log_ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1.0):
    """log(cost) ~ features, closed-form ridge; returns a predictor of cost."""
    xa = np.hstack([np.ones((len(x), 1)), x])
    penalty = alpha * np.eye(xa.shape[1])
    penalty[0, 0] = 0.0
    w = np.linalg.solve(xa.T @ xa + penalty, xa.T @ np.log(y))
    return lambda z: np.exp(np.hstack([np.ones((len(z), 1)), z]) @ w)


def expected_hvi(mu: np.ndarray, sigma: np.ndarray, cost: np.ndarray, front: np.ndarray,
                 ref: tuple[float, float]) -> np.ndarray:
    """Expected hypervolume improvement of candidates (both objectives minimised: loss = -accuracy).

    `front`: (loss, cost) points; a candidate's cost is known, its loss ~ N(mu, sigma). Above the
    candidate's cost the front is a staircase; each step of width w at level g adds
    w * E[max(0, g - loss)] = w * ((g - mu) Phi(z) + sigma phi(z)), z = (g - mu) / sigma."""
    from scipy.stats import norm

    order = np.argsort(front[:, 1]) if len(front) else np.array([], int)
    fl, fc = (front[order, 0], front[order, 1]) if len(front) else (np.array([]), np.array([]))
    out = np.zeros(len(mu))
    for i, (m, s, c) in enumerate(zip(mu, sigma, cost)):
        if c >= ref[1]:
            continue
        cuts = np.concatenate([[c], fc[(fc > c) & (fc < ref[1])], [ref[1]]])
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            g = min([ref[0]] + [lv for lv, cv in zip(fl, fc) if cv <= lo])  # best loss at cost <= lo
            z = (g - m) / max(s, 1e-9)
            out[i] += (hi - lo) * ((g - m) * norm.cdf(z) + s * norm.pdf(z))
    return out


class CostAwareSampler(optuna.samplers.BaseSampler):
    """Warm start with the reference designs, then the candidate of largest expected HV improvement."""

    def __init__(self, space: SearchSpace, objectives: Sequence[tuple[str, str]], limits: Mapping[str, float] | None = None,
                 *, warm_start: bool = True, cost_aware: bool = True, references: Sequence[str] = tuple(REFERENCES),
                 reference_sizes: str = "smallest", per_second: bool = True, candidates: int = 64, startup: int = 4,
                 seed: int | None = None):
        self.space, self.seed = space, seed
        self.trained_name, self.cost_name, self.signs = _roles(objectives, space.source)
        self.order = [name for name, _ in objectives]  # the study's objective order: trial.values
        self.limits = {k: v for k, v in (limits or {}).items() if k in EXACT_COSTS}
        self.warm = references_in_space(space, references, reference_sizes) if warm_start else []
        self.cost_aware, self.per_second = cost_aware, per_second
        self.n_candidates, self.startup = candidates, startup
        self.encoder = Encoder(space)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._rng = np.random.default_rng(seed)
        self._grid: list[dict] | None = None
        self._drawn: dict[str, dict] = {}  # the random candidates, kept from ask to ask (their costs are counted)
        self._chosen: dict[int, dict[str, Any]] = {}

    # -- optuna's sampler interface ---------------------------------------------------------------
    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        arch = self.choose(study)
        if arch is not None:
            self._chosen[trial.number] = arch_params(self.space, arch)

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        params = self._chosen.get(trial.number, {})
        choices = getattr(param_distribution, "choices", ())
        if param_name in params and params[param_name] in choices:
            return params[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._chosen.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._rng = np.random.default_rng()

    # -- the strategy -------------------------------------------------------------------------------
    def choose(self, study: optuna.Study) -> dict | None:
        """The architecture for the next trial (None: let the random sampler draw it)."""
        seen, done, running, seconds = self._history(study)
        for arch in self.warm:
            if ArchSpec.from_dict(arch).arch_id not in seen and self._within_limits(arch):
                return arch
        if not self.cost_aware:
            return None
        pool = self._pool(seen, done)
        if not pool:
            return None
        if len(done) < self.startup:
            return pool[int(self._rng.integers(len(pool)))]
        return self._best_candidate(pool, done, running, seconds if self.per_second else [])

    def _history(self, study: optuna.Study) -> tuple[set[str], list[tuple[dict, float, float]], list[dict],
                                                     list[tuple[dict, float]]]:
        """Arch ids of every trial; (arch, trained value, cost value) of the scored ones; running archs;
        (arch, training seconds) of the archs trained to the end."""
        seen, done, running, seconds = set(), [], [], {}
        for t in study.get_trials(deepcopy=False):
            if not t.params and t.state != TrialState.COMPLETE:
                continue
            try:
                arch = params_arch(self.space, t.params).to_dict()
            except (ConfigError, ValueError, KeyError):
                continue
            arch_id = ArchSpec.from_dict(arch).arch_id
            seen.add(arch_id)
            value = self._trained_value(study, t)
            if value is not None:
                done.append((arch, value, self._cost_value(study, t, arch)))
            elif t.state == TrialState.RUNNING:
                running.append(arch)
            timed = _train_seconds(t)
            if timed is not None:
                seconds.setdefault(arch_id, (arch, timed))
        return seen, [d for d in done if d[2] is not None], running, list(seconds.values())

    def _trained_value(self, study: optuna.Study, t: FrozenTrial) -> float | None:
        if t.state == TrialState.COMPLETE:
            return float(t.values[self.order.index(self.trained_name)])
        if t.state == TrialState.PRUNED and self.trained_name in t.user_attrs:  # ASHA: its last score
            return float(t.user_attrs[self.trained_name])
        return None

    def _cost_value(self, study: optuna.Study, t: FrozenTrial, arch: dict) -> float | None:
        if self.cost_name in EXACT_COSTS:
            return self._cost_of(arch)[self.cost_name]
        if t.state == TrialState.COMPLETE:
            return float(t.values[self.order.index(self.cost_name)])
        value = t.user_attrs.get(self.cost_name)
        return None if value is None else float(value)

    def _cost_of(self, arch: Mapping[str, Any]) -> dict[str, float]:
        return model_costs(arch)

    def _within_limits(self, arch: Mapping[str, Any]) -> bool:
        return not self.limits or all(self._cost_of(arch)[k] <= v for k, v in self.limits.items())

    def _pool(self, seen: set[str], done: list[tuple[dict, float, float]]) -> list[dict]:
        """Random architectures of the space plus one-axis changes of the front, none already seen."""
        pool = dict(self._draw(seen))
        for arch in self._front_archs(done):
            for n in self._neighbours(arch):
                pool.setdefault(ArchSpec.from_dict(n).arch_id, n)
        return [a for i, a in pool.items() if i not in seen and self._within_limits(a)]

    def _draw(self, seen: set[str]) -> dict[str, dict]:
        """`candidates` random archs not yet seen. Each ask replaces only a quarter of them, the oldest:
        counting a new arch's FLOPs costs 0.05-0.5 s, and 64 new ones per ask took 6-30 s."""
        if self._grid is None:
            self._grid = self.space.grid()
        unseen = [(i, a) for i, a in self._drawn.items() if i not in seen]
        keep = max(self.n_candidates - max(1, self.n_candidates // 4), 0)
        kept = dict(unseen[max(len(unseen) - keep, 0):])  # the newest `keep`
        size = min(self.n_candidates, len(self._grid))
        for i in self._rng.permutation(len(self._grid)):
            if len(kept) >= size:
                break
            arch_id = ArchSpec.from_dict(self._grid[i]).arch_id
            if arch_id not in seen:
                kept.setdefault(arch_id, self._grid[i])
        self._drawn = kept
        return kept

    def _front_archs(self, done: list[tuple[dict, float, float]]) -> list[dict]:
        pts = np.array([[-self.signs[0] * v, self.signs[1] * c] for _, v, c in done]).reshape(-1, 2)
        return [done[i][0] for i in range(len(done))
                if not ((pts <= pts[i]).all(axis=1) & (pts < pts[i]).any(axis=1)).any()]

    def _neighbours(self, arch: dict) -> list[dict]:
        out = []
        for key, choices in self.space.axes.items():
            for v in choices:
                if len(choices) > 1 and v != arch.get(key) and key not in ("branch_split", "gate_init"):
                    out.append(self._repair({**arch, key: v}))
                elif key in ("branch_split", "gate_init") and self.space.active(key, arch) and v != arch.get(key):
                    out.append({**arch, key: v})
        return [a for a in out if a is not None and self.space.is_valid(a)]

    def _repair(self, arch: dict) -> dict | None:
        # a changed block or gate turns a conditional axis on or off: give it the space's first value
        for key, attr in (("branch_split", "block"), ("gate_init", "gate")):
            active = self.space.active(key, arch)
            if active and arch.get(key) is None:
                arch[key] = self.space.axes.get(key, (None,))[0]
            elif not active:
                arch[key] = None
        return arch

    def _best_candidate(self, pool: list[dict], done: list[tuple[dict, float, float]], running: list[dict],
                        seconds: Sequence[tuple[dict, float]] = ()) -> dict:
        x, gp = self._fit_accuracy(done)
        xp = self.encoder.matrix(pool, [self._cost_of(a) for a in pool])
        mu, sigma = gp.predict(xp, return_std=True)
        cost = self._predict_costs(x, xp, pool, done)
        front = [[-self.signs[0] * v, self.signs[1] * c] for _, v, c in done]
        if running:  # kriging believer: a running trial counts as its predicted accuracy and cost
            xr = self.encoder.matrix(running, [self._cost_of(a) for a in running])
            front += list(zip(gp.predict(xr), self._predict_costs(x, xr, running, done)))
        front = np.array(front, float)
        ref = (float(front[:, 0].max()), 1.1 * float(max(front[:, 1].max(), cost.max())))
        gain = expected_hvi(mu, sigma, cost, front, ref)
        if len(seconds) >= MIN_TIMED:
            gain = gain / self._predict_seconds(seconds, xp)
        return pool[int(np.argmax(gain))]

    def _fit_accuracy(self, done: list[tuple[dict, float, float]]):
        """The encoded scored archs, and a GP of their loss (-accuracy) on those inputs."""
        archs = [a for a, _, _ in done]
        x = self.encoder.matrix(archs, [self._cost_of(a) for a in archs])
        return x, fit_gp(x, np.array([-self.signs[0] * v for _, v, _ in done]), self.seed)

    def _predict_seconds(self, seconds: Sequence[tuple[dict, float]], xp: np.ndarray) -> np.ndarray:
        """Training seconds of the candidates: a ridge fit of log seconds on the trained archs, clipped
        to the seconds seen (a proxy's time cap bounds it above)."""
        archs = [a for a, _ in seconds]
        y = np.array([s for _, s in seconds])
        predict = fit_log_ridge(self.encoder.matrix(archs, [self._cost_of(a) for a in archs]), y)
        return np.clip(predict(xp), y.min(), y.max())

    def _predict_costs(self, x: np.ndarray, xp: np.ndarray, archs: list[dict],
                       done: list[tuple[dict, float, float]]) -> np.ndarray:
        """The cost objective, minimised: exact for params/FLOPs, else a ridge fit on measured values."""
        if self.cost_name in EXACT_COSTS:
            return self.signs[1] * np.array([self._cost_of(a)[self.cost_name] for a in archs])
        predict = fit_log_ridge(x, np.array([c for _, _, c in done]))
        return self.signs[1] * predict(xp)


def _train_seconds(t: FrozenTrial) -> float | None:
    """A trial's training seconds, if it trained to the end: a reused or pruned trial's seconds say
    nothing of a full training."""
    seconds = t.user_attrs.get(TRAIN_SECONDS)
    if t.state != TrialState.COMPLETE or "reused_from" in t.user_attrs:
        return None
    return float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None


def _roles(objectives: Sequence[tuple[str, str]], source: str | None) -> tuple[str, str, tuple[float, float]]:
    """(trained name, cost name, signs that turn (trained, cost) into (maximised, minimised))."""
    trained = [(n, d) for n, d in objectives if n in MEASURES and MEASURES[n].stage == TRAINED]
    cost = [(n, d) for n, d in objectives if n in MEASURES and MEASURES[n].stage != TRAINED]
    if len(objectives) != 2 or len(trained) != 1 or len(cost) != 1:
        raise ConfigError("the costaware sampler needs two objectives: one trained measure (pck) and one cost "
                          "measure (latency_ms, flops or params)", source=source, field="objectives")
    sign = {"maximize": 1.0, "minimize": -1.0}
    return trained[0][0], cost[0][0], (sign[trained[0][1]], -sign[cost[0][1]])
