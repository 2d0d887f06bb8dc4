"""Ablation studies (studies/ablation-*.yaml): a table per value of the varied arch fields, and
whether the paper's claims (Bulat et al., FG 2020) hold on this study.

An ablation study is a grid over a few arch fields, every point trained once per proxy seed
(`seeds:` in the study file). Each grid point is one arch id; its seeds are its samples.

The rule for a claim "A beats B" (`judge`): Welch's t-test (scipy.stats.ttest_ind, unequal
variances, two-sided) on the final proxy PCK of A's seeds against B's.
  holds          mean A > mean B and p < ALPHA
  does not hold  mean A < mean B and p < ALPHA
  inconclusive   otherwise, or fewer than 2 seeds on a side
With `equal_params` the comparison is only made at equal size: parameter counts within
PARAMS_TOLERANCE of each other. Outside it, A still "holds" if it is significantly better with
fewer parameters, and "does not hold" if it is significantly worse with more (Pareto dominance);
anything else is inconclusive, because the size difference could explain the PCK difference.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from scipy import stats

from search.export import objective_names

ALPHA = 0.05
PARAMS_TOLERANCE = 0.10
# sampler bookkeeping, not design axes: the grid sampler's index and the proxy seed
GRID_PARAMS = ("grid_index", "proxy_seed")
METRICS = ("pck", "params", "flops", "latency_ms")
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Claim:
    """The paper's choice `better` (arch field values) should reach a higher PCK than `worse`."""

    name: str
    better: Mapping[str, object]
    worse: Mapping[str, object]
    equal_params: bool = False


CLAIMS: tuple[Claim, ...] = (
    Claim("per-channel gate vs identity skip", {"gate": "channel"}, {"gate": "identity"}),
    Claim("concat-then-conv fusion vs add", {"fusion": "concat_conv3x3", "skip": "identity"},
          {"fusion": "add", "skip": "identity"}),
    Claim("hybrid (skip identity, concat fusion) vs plain hourglass (skip block, add) at equal params",
          {"skip": "identity", "fusion": "concat_conv3x3"}, {"skip": "block", "fusion": "add"}, equal_params=True),
)


@dataclass
class Verdict:
    verdict: str
    reason: str
    diff: float = math.nan         # mean PCK of A minus B
    p_value: float = math.nan
    params_ratio: float = math.nan  # mean params of A / B


def judge(better: Sequence[float], worse: Sequence[float], *, params_better: float | None = None,
          params_worse: float | None = None, equal_params: bool = False, alpha: float = ALPHA,
          tolerance: float = PARAMS_TOLERANCE) -> Verdict:
    """Apply the module's rule to the PCKs of A's seeds (`better`) and B's (`worse`)."""
    a, b = np.asarray(better, float), np.asarray(worse, float)
    ratio = (params_better / params_worse) if params_better and params_worse else math.nan
    if len(a) < 2 or len(b) < 2:
        return Verdict(INCONCLUSIVE, f"needs >= 2 seeds per side (have {len(a)} and {len(b)})",
                       params_ratio=ratio)
    diff = float(a.mean() - b.mean())
    if a.std() == 0 and b.std() == 0:  # no spread: the t statistic is undefined, the sign is certain
        p = 0.0 if diff != 0 else 1.0
    else:
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    significant = p < alpha
    plain = HOLDS if significant and diff > 0 else FAILS if significant and diff < 0 else INCONCLUSIVE
    why = f"Welch t-test p={p:.3g} {'<' if significant else '>='} {alpha}, difference {diff:+.4f}"
    if not equal_params or math.isnan(ratio) or abs(ratio - 1) <= tolerance:
        if equal_params and not math.isnan(ratio):
            why += f"; params within {tolerance:.0%} ({ratio:.2f}x)"
        return Verdict(plain, why, diff, p, ratio)
    size = f"params {ratio:.2f}x, outside {tolerance:.0%}"
    if plain == HOLDS and ratio < 1:
        return Verdict(HOLDS, f"{why}; {size}, but better with fewer params", diff, p, ratio)
    if plain == FAILS and ratio > 1:
        return Verdict(FAILS, f"{why}; {size}, and worse with more params", diff, p, ratio)
    return Verdict(INCONCLUSIVE, f"{why}; {size}: not comparable at equal params", diff, p, ratio)


# -- reading a study --------------------------------------------------------------------------------
def _value(trial: optuna.trial.FrozenTrial, name: str, names: list[str]) -> float | None:
    v = trial.values[names.index(name)] if name in names else trial.user_attrs.get(name)
    return None if v is None else float(v)


def _cell(value: object) -> object:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _label(value: object) -> str:
    # one printable, groupable label per value: None/NaN (a field a choice switches off) -> "-"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def trained_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """COMPLETE trials that were trained (not skipped by a size limit) and carry an arch."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "arch" in t.user_attrs and "skipped" not in t.user_attrs]


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trained trial: arch fields, arch_id, proxy seed and the metrics."""
    names = objective_names(study)
    rows = []
    for t in trained_trials(study):
        arch = {k: _cell(v) for k, v in t.user_attrs["arch"].items()}
        seed = t.params.get("proxy_seed", (t.user_attrs.get("budget") or {}).get("seed"))
        rows.append({**arch, "arch_id": t.user_attrs.get("arch_id"), "seed": seed, "trial": t.number,
                     **{m: _value(t, m, names) for m in METRICS}})
    return pd.DataFrame(rows)


def varying_fields(df: pd.DataFrame) -> list[str]:
    """The arch fields that take more than one value (None counts as a value) among the trials."""
    skip = {"arch_id", "seed", "trial", *METRICS}
    return [c for c in df.columns if c not in skip and df[c].map(_label).nunique() > 1]


def per_value_table(study: optuna.Study) -> pd.DataFrame:
    """Trained trials grouped by the varied arch fields: seeds, then mean and std of each metric."""
    df = trials_table(study)
    keys = varying_fields(df) if len(df) else []
    if not keys:
        return pd.DataFrame()
    df[keys] = df[keys].map(_label)  # None, lists and numbers group (and print) alike
    grouped = df.groupby(keys, sort=True)
    table = grouped[list(METRICS)].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table


def _matching(df: pd.DataFrame, selector: Mapping[str, object]) -> pd.DataFrame:
    mask = np.ones(len(df), bool)
    for key, value in selector.items():
        if key not in df.columns:
            return df.iloc[0:0]
        mask &= (df[key] == value).to_numpy()
    return df[mask]


def check_claims(study: optuna.Study, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """One row per claim this study can test: both sides present, each side a single arch (its seeds).

    A claim whose side matches several archs (other fields vary too) is not tested here: pooling
    different archs would compare something else than the claim.
    """
    df = trials_table(study)
    rows = []
    for claim in claims:
        if not len(df):
            break
        a, b = _matching(df, claim.better), _matching(df, claim.worse)
        if not len(a) or not len(b) or a["arch_id"].nunique() > 1 or b["arch_id"].nunique() > 1:
            continue
        v = judge(a["pck"].tolist(), b["pck"].tolist(), params_better=a["params"].mean(),
                  params_worse=b["params"].mean(), equal_params=claim.equal_params)
        rows.append({"claim": claim.name, "verdict": v.verdict,
                     "pck_A": a["pck"].mean(), "std_A": a["pck"].std(), "seeds_A": len(a),
                     "pck_B": b["pck"].mean(), "std_B": b["pck"].std(), "seeds_B": len(b),
                     "diff": v.diff, "p_value": v.p_value, "params_A/B": v.params_ratio, "rule": v.reason})
    return pd.DataFrame(rows)


def write_ablation(study: optuna.Study, out_dir: str | Path) -> dict[str, Path]:
    """ablation_values.csv (per-value table) and claims.csv (claims this study tests) of a grid study."""
    out = Path(out_dir)
    written: dict[str, Path] = {}
    sampler = (study.user_attrs.get("config") or {}).get("sampler", {}).get("name", "grid")
    if sampler != "grid":  # a search, not an ablation: one row per sampled arch says no more than trials.csv
        return written
    table = per_value_table(study)
    if len(table):
        written["ablation_values"] = out / "ablation_values.csv"
        table.to_csv(written["ablation_values"])
    claims = check_claims(study)
    if len(claims):
        written["claims"] = out / "claims.csv"
        claims.to_csv(written["claims"], index=False)
    return written
