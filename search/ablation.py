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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from scipy import stats

from search.export import objective_names
from search.measures import measure_names

ALPHA = 0.05
PARAMS_TOLERANCE = 0.10
# sampler bookkeeping, not design axes: the grid sampler's index and the proxy seed
GRID_PARAMS = ("grid_index", "proxy_seed")
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# what an equal-params comparison may change to match sizes
SIZE_FIELDS = ("stacks", "width", "depth")


@dataclass(frozen=True)
class Claim:
    """The paper's choice `better` (arch field values) should reach a higher PCK than `worse`."""

    name: str
    better: Mapping[str, object]
    worse: Mapping[str, object]
    equal_params: bool = False


CLAIMS: tuple[Claim, ...] = (
    Claim("per-channel gate vs identity skip", {"gate": "channel"}, {"gate": "identity"}),
    Claim(
        "concat-then-conv fusion vs add",
        {"fusion": "concat_conv3x3", "skip": "identity"},
        {"fusion": "add", "skip": "identity"},
    ),
    Claim(
        "hybrid (skip identity, concat fusion) vs plain hourglass (skip block, add) at equal params",
        {"skip": "identity", "fusion": "concat_conv3x3"},
        {"skip": "block", "fusion": "add"},
        equal_params=True,
    ),
)


@dataclass
class Verdict:
    verdict: str
    reason: str
    diff: float = math.nan  # mean PCK of A minus B
    p_value: float = math.nan
    params_ratio: float = math.nan  # mean params of A / B


def judge(
    better: Sequence[float],
    worse: Sequence[float],
    *,
    params_better: float | None = None,
    params_worse: float | None = None,
    equal_params: bool = False,
    alpha: float = ALPHA,
    tolerance: float = PARAMS_TOLERANCE,
) -> Verdict:
    """Apply the module's rule to the PCKs of A's seeds (`better`) and B's (`worse`)."""
    a, b = np.asarray(better, float), np.asarray(worse, float)
    ratio = (params_better / params_worse) if params_better and params_worse else math.nan
    if len(a) < 2 or len(b) < 2:
        return Verdict(
            INCONCLUSIVE,
            f"needs >= 2 seeds per side (have {len(a)} and {len(b)})",
            params_ratio=ratio,
        )
    diff = float(a.mean() - b.mean())
    if (
        a.std() == 0 and b.std() == 0
    ):  # no spread: the t statistic is undefined, the sign is certain
        p = 0.0 if diff != 0 else 1.0
    else:
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    significant = p < alpha
    plain = (
        HOLDS if significant and diff > 0 else FAILS if significant and diff < 0 else INCONCLUSIVE
    )
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
    """COMPLETE trials that were trained (not skipped by a size limit, not a reuse of an earlier
    trial's result: `reused_from`) and carry an arch; each training counted once."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "arch" in t.user_attrs
        and "skipped" not in t.user_attrs
        and "reused_from" not in t.user_attrs
    ]


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trained trial: arch fields, arch_id, proxy seed and the metrics."""
    names = objective_names(study)
    rows = []
    for t in trained_trials(study):
        arch = {k: _cell(v) for k, v in t.user_attrs["arch"].items()}
        seed = t.params.get("proxy_seed", (t.user_attrs.get("budget") or {}).get("seed"))
        rows.append(
            {
                **arch,
                "arch_id": t.user_attrs.get("arch_id"),
                "seed": seed,
                "trial": t.number,
                **{m: _value(t, m, names) for m in measure_names()},
            }
        )
    return pd.DataFrame(rows)


def varying_fields(df: pd.DataFrame) -> list[str]:
    """The arch fields that take more than one value (None counts as a value) among the trials."""
    return [c for c in _arch_fields(df) if df[c].map(_label).nunique() > 1]


def per_value_table(study: optuna.Study) -> pd.DataFrame:
    """Trained trials grouped by the varied arch fields: seeds, then mean and std of each metric."""
    df = trials_table(study)
    keys = varying_fields(df) if len(df) else []
    if not keys:
        return pd.DataFrame()
    df[keys] = df[keys].map(_label)  # None, lists and numbers group (and print) alike
    grouped = df.groupby(keys, sort=True)
    metrics = [
        m for m in measure_names() if df[m].notna().any()
    ]  # a measure this study did not record: no column
    table = grouped[metrics].agg(["mean", "std"])
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


def _arch_fields(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in {"arch_id", "seed", "trial", *measure_names()}]


def _comparable(a: pd.Series, b: pd.Series, fields: Sequence[str]) -> bool:
    # a field one side switches off (gate_init of an identity gate: "-") does not tell the archs apart
    return all(_label(a[f]) == _label(b[f]) or "-" in (_label(a[f]), _label(b[f])) for f in fields)


def claim_pairs(df: pd.DataFrame, claim: Claim) -> list[tuple[pd.DataFrame, pd.DataFrame, str]]:
    """The (A seeds, B seeds, context) pairs of archs on which `claim` is tested.

    A and B must agree on every field the claim does not name, so that only the claim's choice
    differs (the study may vary other fields too: then each like-for-like pair is a test, its context
    naming the other fields). An equal-params claim may also differ in size (stacks, width, depth):
    of its like-for-like pairs, the one closest in parameter count is tested.
    """
    a, b = _matching(df, claim.better), _matching(df, claim.worse)
    if not len(a) or not len(b):
        return []
    free = {*claim.better, *claim.worse, *(SIZE_FIELDS if claim.equal_params else ())}
    fields = [f for f in _arch_fields(df) if f not in free]
    pairs = [
        (ga, gb)
        for _, ga in a.groupby("arch_id", sort=False)
        for _, gb in b.groupby("arch_id", sort=False)
        if _comparable(ga.iloc[0], gb.iloc[0], fields)
    ]
    if claim.equal_params and pairs:
        pairs = [
            min(pairs, key=lambda p: abs(math.log(p[0]["params"].mean() / p[1]["params"].mean())))
        ]
    context = [f for f in fields if len({_label(ga.iloc[0][f]) for ga, _ in pairs}) > 1]
    out = []
    for ga, gb in pairs:
        where = [f"{f}={_label(ga.iloc[0][f])}" for f in context]
        where += [
            f"{f} {_label(ga.iloc[0][f])} vs {_label(gb.iloc[0][f])}"
            for f in SIZE_FIELDS
            if f in ga.columns and _label(ga.iloc[0][f]) != _label(gb.iloc[0][f])
        ]
        out.append((ga, gb, ", ".join(where)))
    return out


def check_claims(study: optuna.Study, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """One row per test of a claim this study can make (`claim_pairs`): A's seeds against B's."""
    df = trials_table(study)
    rows = []
    for claim in claims:
        if not len(df):
            break
        for a, b, context in claim_pairs(df, claim):
            v = judge(
                a["pck"].tolist(),
                b["pck"].tolist(),
                params_better=a["params"].mean(),
                params_worse=b["params"].mean(),
                equal_params=claim.equal_params,
            )
            rows.append(
                {
                    "claim": claim.name + (f" [{context}]" if context else ""),
                    "verdict": v.verdict,
                    "pck_A": a["pck"].mean(),
                    "std_A": a["pck"].std(),
                    "seeds_A": len(a),
                    "pck_B": b["pck"].mean(),
                    "std_B": b["pck"].std(),
                    "seeds_B": len(b),
                    "diff": v.diff,
                    "p_value": v.p_value,
                    "params_A/B": v.params_ratio,
                    "arch_A": a["arch_id"].iloc[0],
                    "arch_B": b["arch_id"].iloc[0],
                    "rule": v.reason,
                }
            )
    return pd.DataFrame(rows)


def write_ablation(study: optuna.Study, out_dir: str | Path) -> dict[str, Path]:
    """ablation_values.csv (per-value table) and claims.csv (claims this study tests) of a grid study."""
    out = Path(out_dir)
    written: dict[str, Path] = {}
    sampler = (study.user_attrs.get("config") or {}).get("sampler", {}).get("name", "grid")
    if (
        sampler != "grid"
    ):  # a search, not an ablation: one row per sampled arch says no more than trials.csv
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
