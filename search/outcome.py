"""`OutcomeTeller`: how a Ray Tune trial ended, told to its Optuna trial.

The worker's last result carries the trial's user attrs (`attrs_json`, the storage contract in
docs/design.md) and ends it one of three ways: a `fail_reason` (or a worker that died) is FAIL, a
result that is not `final` was stopped early by ASHA (PRUNED, with its per-epoch PCK curve), a
final one is COMPLETE with the objectives' values. The attrs are stored before the state, so that
a process killed in between leaves a RUNNING trial that has them (and is handed back).
"""

from __future__ import annotations

import json

import optuna
from optuna.trial import TrialState

from search.artifacts import PREVIEW_KEY, TrialExtras, decode_preview
from search.faults import fault_point
from search.progress import ProgressReporter

WORKER_DIED = "the trial's worker died (out of memory or killed); see the Ray logs"


class OutcomeTeller:
    """Tells the study each trial's outcome, records it for optuna-dashboard, prints its line."""

    def __init__(
        self,
        study: optuna.Study,
        objective_names: list[str],
        extras: TrialExtras,
        progress: ProgressReporter,
    ) -> None:
        self.study, self.objective_names = study, list(objective_names)
        self.extras, self.progress = extras, progress

    def tell(self, trial: optuna.Trial, result: dict, curve: list[float], error: bool) -> None:
        """`result`: the trial's last; `curve`: its per-epoch PCK as reported; `error`: Tune's."""
        attrs = json.loads(result.get("attrs_json") or "{}")
        reason = result.get("fail_reason") or (WORKER_DIED if error else None)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for key, value in (attrs.get("constraints") or {}).items():
            trial.set_constraint(key, value)
        fault_point("tell")  # the result's attrs stored, the trial still RUNNING
        if reason:
            self._failed(trial, reason)
        elif not result.get("final"):  # stopped early by ASHA
            self._pruned(trial, result, curve)
        else:
            self._complete(trial, result, attrs)

    def _failed(self, trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr("fail_reason", reason)
        self.extras.record(trial, f"FAIL ({reason})")
        self.study.tell(trial, state=TrialState.FAIL)
        self.progress.trial_done(trial.number, None, reason)

    def _pruned(self, trial: optuna.Trial, result: dict, curve: list[float]) -> None:
        # Tune skips on_trial_result for the result that stops a trial
        if "epoch" in result and int(result["epoch"]) > len(curve):
            curve.append(float(result["pck"]))
        trial.set_user_attr("pruned_at_epoch", int(result.get("epoch", 0)))
        trial.set_user_attr("pck_curve", curve)
        if "pck" in result:
            trial.set_user_attr("pck", float(result["pck"]))
        self.extras.record(trial, f"PRUNED (ASHA) at epoch {int(result.get('epoch', 0))}")
        self.study.tell(trial, state=TrialState.PRUNED)
        self.progress.trial_done(trial.number, None, None, pruned=True)

    def _complete(self, trial: optuna.Trial, result: dict, attrs: dict) -> None:
        values = [float(attrs[name]) for name in self.objective_names]
        self.extras.record(
            trial,
            "COMPLETE",
            dict(zip(self.objective_names, values)),
            decode_preview(result.get(PREVIEW_KEY)),
        )
        self.study.tell(trial, values)
        fault_point("told")
        self.progress.trial_done(trial.number, values, None)
