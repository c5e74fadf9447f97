"""The report's first section in sentences, from the strategy comparisons (:mod:`hils_kit.analyse.comparisons`):
what each test set could have detected, and which claims survive the family's correction, each labelled as a
claim about strategies or about these trained models.

>>> from hils_kit.analyse.comparisons import compare_strategies
>>> from hils_kit.stats.simulate import simulate_predictions
>>> table = compare_strategies(simulate_predictions(["random", "curriculum"], runs=1, questions=100)).table
>>> detectable(table)[0].split(":")[0]
'synthetic (1 run per strategy)'
"""

from __future__ import annotations

import math

import pandas as pd

from hils_kit.analyse.comparisons import MODEL_CLAIM, STRATEGY_CLAIM
from hils_kit.order.registry import strategy_name
from hils_kit.stats.family import format_p

POWER_COLUMNS = [
    "scenario",
    "model",
    "dataset",
    "strategy",
    "metric",
    "claim",
    "runs",
    "baseline_runs",
    "n_questions",
    "family_size",
    "mde",
    "mde_models",
    "target",
    "runs_needed",
    "questions_needed",
    "power_from",
]


COMPARISON_COLUMNS = [
    "claim",
    "estimate",
    "ci_low",
    "ci_high",
    "se",
    "df",
    "p_value",
    "p_holm",
    "p_bh",
    "p_models",
    "runs",
    "baseline_runs",
    "n_questions",
    "family_size",
    "unit",
    "also_in",
]


def comparisons_view(table: pd.DataFrame) -> pd.DataFrame:
    """The comparisons as the report shows them (``comparisons.csv``): the claim, estimate, interval and p-values;
    the variance components and the power have their own tables."""
    keys = ["scenario", "model", "dataset", "strategy", "metric"]
    return table.set_index(keys)[[c for c in COMPARISON_COLUMNS if c in table]]


def power_view(table: pd.DataFrame) -> pd.DataFrame:
    """The power columns of the comparisons (accuracy rows), one row per comparison: ``power.csv``."""
    rows = table[table["metric"] == "accuracy"]
    return rows[[c for c in POWER_COLUMNS if c in rows]].set_index(["scenario", "model", "dataset", "strategy"])


def _where(row) -> str:
    model = f", {row.model}" if row.model else ""
    return f"{row.dataset}{model}"


def detectable(table: pd.DataFrame) -> list[str]:
    """One sentence per model × test set: the smallest accuracy difference the test run could detect, and what
    a target difference needs."""
    lines = []
    rows = table[table["metric"] == "accuracy"]
    for _, group in rows.groupby(["model", "dataset"], sort=False):
        row = group.iloc[0]
        runs = int(min(group["runs"].min(), group["baseline_runs"].min()))
        head = f"{_where(row)} ({runs} run{'s' if runs > 1 else ''} per strategy"
        head += f", {row.n_questions} questions)" if runs > 1 else ")"
        if row.claim == MODEL_CLAIM:
            text = (
                f"{head}: strategy and training run are confounded, so nothing about strategies can be concluded; "
                f"{_model_mde(group['mde_models'])} (exact McNemar, 80 % power, α {row.alpha:g} over "
                f"{int(row.family_size)} model comparisons)"
            )
        else:
            text = (
                f"{head}: the run-unit test detects strategy differences of {_points(group['mde'].max())} "
                f"accuracy points or more (80 % power, α {row.alpha:g} over a family of {int(row.family_size)})"
            )
        need = group["runs_needed"].dropna()
        if len(need):
            low, high = need.min(), need.max()
            runs_text = _count(low) if low == high else f"{_count(low)} to {_count(high)}"
            text += (
                f"; {row.target:g} points need {runs_text} runs per strategy on these questions "
                f"(run variance: {row.power_from})"
            )
        lines.append(text + ".")
    return lines


def _points(value: float) -> str:
    return "no difference" if not math.isfinite(value) else f"{value:.1f}"


def _model_mde(mdes: pd.Series) -> str:
    """What the model comparisons of a test set could detect: a range of MDEs, or too few disagreements."""
    finite = mdes[mdes.map(math.isfinite)]
    if finite.empty:
        return "the trained models disagree on too few questions for any accuracy difference to be detectable"
    text = f"the trained models could be told apart only by differences of {finite.min():.1f}"
    text += f" to {finite.max():.1f}" if finite.max() > finite.min() else ""
    text += " accuracy points or more"
    lacking = len(mdes) - len(finite)
    return text + (f" ({lacking} pair(s) disagree on too few questions for any)" if lacking else "")


def _count(value: float) -> str:
    return "more than any affordable number of" if not math.isfinite(value) else f"{value:,.0f}"


def claims(table: pd.DataFrame) -> list[str]:
    """The claims that survive the family's Holm correction, each labelled; or one sentence saying none does."""
    out = []
    strategies = table[table["claim"] == STRATEGY_CLAIM]
    if len(strategies):
        held = strategies[strategies["significant_holm"]]
        if held.empty:
            out.append(
                f"No strategy claim survives Holm's correction over the family of {len(strategies)} "
                f"(smallest raw p {format_p(strategies['p_value'].min())})."
            )
        for row in held.itertuples(index=False):
            out.append(
                f"Strategies: {strategy_name(row.strategy)} − {strategy_name(row.baseline)} on {_where(row)}, "
                f"{row.metric}: {row.estimate:+.3g} {row.unit} [{row.ci_low:.3g}, {row.ci_high:.3g}], "
                f"p {format_p(row.p_value)}, Holm {format_p(row.p_holm)} ({row.runs} vs {row.baseline_runs} runs)."
            )
    models = table[table["claim"] == MODEL_CLAIM]
    if len(models):
        differ = int(models["significant_holm"].sum())
        out.append(
            f"These trained models (one run per strategy): {differ} of {len(models)} model comparisons differ on "
            "these questions after Holm's correction; this says nothing about the strategies that made them."
        )
    return out
