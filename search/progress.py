"""How the runner prints numbers and durations (progress lines and the summary), and the line it
prints as each trial ends (`ProgressReporter`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from search.config import StudyConfig
from search.storage import finished


def fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


def dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressReporter:
    """`[n/N] trial k <outcome> | pareto P | elapsed E eta T`, once per trial this launch ends.

    n counts the study's finished trials (every process's); the ETA extrapolates from this
    launch's own trials, and is capped by the study's timeout (no trial starts after it)."""

    def __init__(
        self, study: optuna.Study, cfg: StudyConfig, printer: Callable[[str], None]
    ) -> None:
        self.study, self.printer = study, printer
        self.trials, self.timeout, self.concurrency = cfg.trials, cfg.timeout, cfg.concurrency
        self.objective_names = list(cfg.objective_names)
        self.start = time.time()
        self.done_here = 0

    def trial_done(
        self,
        number: int,
        values: list[float] | None = None,
        reason: str | None = None,
        pruned: bool = False,
    ) -> None:
        """Print trial `number`'s line: its values, PRUNED, or FAIL `reason`."""
        self.done_here += 1
        trials = self.study.get_trials(deepcopy=False)
        n = sum(1 for t in trials if finished(t))
        complete = any(t.state == TrialState.COMPLETE for t in trials)
        pareto = len(self.study.best_trials) if complete else 0
        elapsed = time.time() - self.start
        if values is not None:
            what = " ".join(f"{k}={fmt(v)}" for k, v in zip(self.objective_names, values))
        elif pruned:
            what = "PRUNED (ASHA)"
        else:
            what = f"FAIL {reason}"
        self.printer(
            f"[{n}/{self.trials}] trial {number} {what} | pareto {pareto} | "
            f"elapsed {dur(elapsed)} eta {dur(self._eta(n, elapsed))}"
        )

    def _eta(self, n: int, elapsed: float) -> float:
        per_trial = elapsed / self.done_here
        eta = per_trial * max(self.trials - n, 0)
        # no trial starts after the timeout; the running ones take about a trial's time
        if self.timeout is not None:
            eta = min(eta, max(self.timeout - elapsed, 0) + per_trial * self.concurrency)
        return eta
