"""The models an ask predicts from: a GP of the loss, and ridge fits of the cost and the seconds."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from search.strategy._costs import EXACT_COSTS, model_costs
from search.strategy._encoder import Encoder
from search.strategy._history import History, Timed
from search.strategy._objectives import Roles

MIN_TIMED = 3  # trained trials before their seconds are predicted


def fit_gp(x: np.ndarray, y: np.ndarray, seed: int | None) -> Any:
    """A GP regression of `y` on `x` (a scikit-learn pipeline with `predict(x, return_std=)`)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # one length scale for all inputs: with 10-40 points, one per input (ARD) overfits
    # (docs/search.md)
    matern = Matern(length_scale=3.0, nu=2.5, length_scale_bounds=(0.1, 100.0))
    kernel = ConstantKernel(1.0) * matern + WhiteKernel(0.05, (1e-4, 1.0))
    # inputs standardised; one constant over the points so far keeps scale 1: dividing by its ~0
    # spread put every candidate that differs there infinitely far, at the GP's prior
    gp = make_pipeline(
        StandardScaler(),
        GaussianProcessRegressor(
            kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on a handful of points
        gp.fit(x, y)
    return gp


def fit_log_ridge(
    x: np.ndarray, y: np.ndarray, alpha: float = 1.0
) -> Callable[[np.ndarray], np.ndarray]:
    """log(cost) ~ features, closed-form ridge; returns a predictor of cost."""
    xa = np.hstack([np.ones((len(x), 1)), x])
    penalty = alpha * np.eye(xa.shape[1])
    penalty[0, 0] = 0.0
    w = np.linalg.solve(xa.T @ xa + penalty, xa.T @ np.log(y))
    return lambda z: np.exp(np.hstack([np.ones((len(z), 1)), z]) @ w)


def predict_seconds(encoder: Encoder, timed: Sequence[Timed], x: np.ndarray) -> np.ndarray:
    """Training seconds of the archs `x`: a ridge fit of log seconds on the trained archs, clipped
    to the seconds seen (a proxy's time cap bounds it above)."""
    y = np.array([t.seconds for t in timed])
    predict = fit_log_ridge(encoder.encode([t.arch for t in timed]), y)
    return np.clip(predict(x), y.min(), y.max())


class Surrogate:
    """The scored trials' models: `gp` predicts the loss, `costs` the cost objective (minimised),
    `seconds` the training seconds (None while fewer than MIN_TIMED trials are timed, or when
    the acquisition is not per second)."""

    def __init__(
        self,
        encoder: Encoder,
        roles: Roles,
        history: History,
        seed: int | None,
        per_second: bool = True,
    ):
        self.encoder, self.roles = encoder, roles
        self.x = encoder.encode([s.arch for s in history.done])
        self.gp = fit_gp(self.x, np.array([roles.loss(s.value) for s in history.done]), seed)
        self._timed = history.timed if per_second and len(history.timed) >= MIN_TIMED else []
        self._cost = None  # a measured cost's ridge fit; exact costs (params, FLOPs) never need it
        self._costs_seen = np.array([s.cost for s in history.done])

    def costs(self, archs: Sequence[dict], x: np.ndarray) -> np.ndarray:
        """The cost objective of `archs` (rows `x`), minimised: exact for params/FLOPs, else a
        ridge fit on the measured values."""
        if self.roles.cost in EXACT_COSTS:
            return self.roles.signs[1] * np.array([model_costs(a)[self.roles.cost] for a in archs])
        if self._cost is None:
            self._cost = fit_log_ridge(self.x, self._costs_seen)
        return self.roles.signs[1] * self._cost(x)

    def seconds(self, x: np.ndarray) -> np.ndarray | None:
        return predict_seconds(self.encoder, self._timed, x) if self._timed else None
