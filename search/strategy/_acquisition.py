"""Which candidate to train: the largest expected hypervolume improvement per predicted second."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search.strategy._history import History
from search.strategy._surrogate import Surrogate


def expected_hvi(
    mu: np.ndarray, sigma: np.ndarray, cost: np.ndarray, front: np.ndarray, ref: tuple[float, float]
) -> np.ndarray:
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
            # the staircase over this step: the best loss at cost <= lo
            g = min([ref[0]] + [lv for lv, cv in zip(fl, fc) if cv <= lo])
            z = (g - m) / max(s, 1e-9)
            out[i] += (hi - lo) * ((g - m) * norm.cdf(z) + s * norm.pdf(z))
    return out


def believed_front(history: History, model: Surrogate) -> np.ndarray:
    """(loss, cost) of the scored trials, and of the running ones at their predicted values
    (kriging believer): a candidate close to a running trial promises little, so concurrent
    trials are not the same pick."""
    front = [model.roles.point(s.value, s.cost) for s in history.done]
    if history.running:
        xr = model.encoder.encode(history.running)
        front += list(zip(model.gp.predict(xr), model.costs(history.running, xr)))
    return np.array(front, float)


def best_candidate(pool: Sequence[dict], history: History, model: Surrogate) -> dict:
    """The candidate of largest expected hypervolume improvement, per predicted second of its
    training once the seconds are modelled ("EI per second", Snoek et al. 2012): the trials'
    compute is the budget, and a proxy's training time varies 2x over the space."""
    xp = model.encoder.encode(pool)
    mu, sigma = model.gp.predict(xp, return_std=True)
    cost = model.costs(pool, xp)
    front = believed_front(history, model)
    ref = (float(front[:, 0].max()), 1.1 * float(max(front[:, 1].max(), cost.max())))
    gain = expected_hvi(mu, sigma, cost, front, ref)
    seconds = model.seconds(xp)
    if seconds is not None:
        gain = gain / seconds
    return pool[int(np.argmax(gain))]
