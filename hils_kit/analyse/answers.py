"""What the study index shows first: the answers of ``04_analysis``.

:func:`answers` reads ``comparisons.csv`` and ``power.csv`` and answers, per test set, whether any strategy beat
Random Shuffle on accuracy: one sentence each, and one table of every strategy's gain (points) with its 95 %
interval and Holm-adjusted p, under it the smallest difference the study could detect. Where a strategy has one run,
its p is the exact McNemar test of the two trained models, labelled as such: a claim about those models only.

>>> answers(Path("runs/smoke/analysis"), ["curriculum"]).verdicts                          # doctest: +SKIP
['One strategy ran (Curriculum): there is nothing to compare with Random Shuffle.']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hils_kit.analyse.comparisons import MODEL_CLAIM, STRATEGY_CLAIM
from hils_kit.analyse.table_views import (
    EMPTY,
    KEYS,
    View,
    difference_text,
    interval_text,
    number,
    read_table,
    split,
)
from hils_kit.core.layout import artefact_path
from hils_kit.order.registry import BASELINE, BASELINE_NAME, strategy_name
from hils_kit.stats.family import format_p

ANSWER_COLUMNS = 6  # the answers table's cells are wider: the strategy and five test sets fit 1280 px


@dataclass
class Answers:
    """The answers section: one verdict sentence per test set and the table behind them, split to fit (none when
    there is no comparison: then ``verdicts`` holds one line saying why)."""

    verdicts: list[str]
    views: list[View] = field(default_factory=list)


def answers(analysis_dir: Path, strategies: list[str], alpha: float = 0.05) -> Answers:
    """The answers of the analysis in ``analysis_dir``, one verdict per test set; ``strategies`` (the keys the study
    ran) explain their absence, ``alpha`` is the family-wise error rate of ``04_analysis``."""
    path = artefact_path(analysis_dir, "comparisons")
    if not path.is_file():
        names = ", ".join(strategy_name(s) for s in strategies)
        if len(strategies) == 1:
            return Answers([f"One strategy ran ({names}): there is nothing to compare with {BASELINE_NAME}."])
        if BASELINE not in strategies:
            return Answers([f"No {BASELINE_NAME} cells ({names}): no strategy could be compared with it."])
        return Answers([f"No comparison with {BASELINE_NAME} was written (see the details below)."])
    rows = read_table(path)
    rows = rows[rows["metric"] == "accuracy"]
    if rows.empty:
        return Answers([f"No accuracy comparison with {BASELINE_NAME} was written (see the details below)."])
    keys = ["scenario", "model", "dataset", "strategy"]
    power = artefact_path(analysis_dir, "power")
    powered = power.is_file()  # without it, what was detectable is unknown
    power = read_table(power) if powered else pd.DataFrame(columns=keys)
    rows = rows.merge(power.reindex(columns=[*keys, "mde", "mde_models"]), on=keys, how="left")
    rows = rows.assign(
        name=rows["strategy"].map(strategy_name),
        held=rows["p_holm"] <= alpha,
        detectable=rows["mde"].where(rows["claim"] == STRATEGY_CLAIM, rows["mde_models"]),
    )
    several = [column for column, _ in KEYS[:2] if rows[column].nunique() > 1]
    if several:  # the strategy of another model or label source is another row
        rows["name"] += " (" + rows[several].astype(str).agg(", ".join, axis=1) + ")"
    verdicts = [_verdict(dataset, group, powered) for dataset, group in rows.groupby("dataset", sort=False)]
    return Answers(verdicts, split(_answers_view(rows, alpha, powered), ANSWER_COLUMNS))


def _verdict(dataset: str, rows: pd.DataFrame, powered: bool = True) -> str:
    """One sentence: which strategies differ from Random Shuffle after Holm's correction, and (``powered``: from
    power.csv) what was detectable."""
    runs = sorted({int(r) for r in rows["runs"]} | {int(r) for r in rows["baseline_runs"]})
    per = f"{runs[0]}" if len(runs) == 1 else f"{runs[0]}–{runs[-1]}"
    head = (
        f"{dataset} ({int(rows['n_questions'].max())} questions, {per} run{'s' if runs[-1] > 1 else ''} per strategy)"
    )
    strategies, models = rows[rows["claim"] == STRATEGY_CLAIM], rows[rows["claim"] == MODEL_CLAIM]
    parts = _strategy_claims(strategies) if len(strategies) else []
    if len(models):
        parts.append(_model_claims(models, alone=strategies.empty))
    if powered:
        parts.append(_detectable(rows["detectable"]))
    return f"{head}: {'; '.join(parts)}."


def _strategy_claims(rows: pd.DataFrame) -> list[str]:
    """The strategies that beat or fall behind Random Shuffle after Holm's correction, or that none does."""
    held = rows[rows["held"]]
    if held.empty:
        return [f"no strategy differs from {BASELINE_NAME} after Holm's correction"]
    out = [
        f"{row.name} {'beats' if row.estimate > 0 else 'falls behind'} {BASELINE_NAME} by {abs(row.estimate):.1f} "
        f"points (Holm p {format_p(row.p_holm)})"
        for row in held.itertuples()
    ]
    return out + (["the others do not differ from it"] if len(held) < len(rows) else [])


def _model_claims(rows: pd.DataFrame, alone: bool) -> str:
    """What the one-run strategies' rows say: only whether their trained models differ from the Random Shuffle
    model; ``alone``: every strategy has one run."""
    n, differ = len(rows), int(rows["held"].sum())
    against = f"from the {BASELINE_NAME} model (McNemar, Holm)"
    does = "differs" if differ else "does not differ"
    some = "none differs" if differ == 0 else f"{differ} {'differs' if differ == 1 else 'differ'}"
    if alone:
        models = f"of the {n} trained models, {some}" if n > 1 else f"the trained model {does}"
        return f"strategy and training run are confounded, so nothing can be said about strategies; {models} {against}"
    if n == 1:
        return f"{rows['name'].iloc[0]} ran once, so only its trained model can be compared: it {does} {against}"
    names = ", ".join(rows["name"])
    return f"{names} ran once, so only their trained models can be compared: {some} {against}"


def _finite(values: pd.Series) -> pd.Series:
    return values[values.map(lambda v: not pd.isna(v) and math.isfinite(v))]


def _detectable(mdes: pd.Series) -> str:
    """What the study could not have seen: differences under the smallest detectable one."""
    finite = _finite(mdes)
    if finite.empty:
        return "no accuracy difference was detectable"
    low, high = finite.min(), finite.max()
    if number(low, 1) == number(high, 1):
        return f"differences under {number(low, 1)} points could not be detected"
    return f"differences under {number(low, 1)} to {number(high, 1)} points (by strategy) could not be detected"


def _answers_view(rows: pd.DataFrame, alpha: float, powered: bool = True) -> View:
    """Strategies down, test sets across: gain (interval), Holm p; the last row (``powered``) what each test set
    could detect."""
    cells = {}
    for row in rows.itertuples():
        gain, p = difference_text(row.estimate, "accuracy"), _keep(f"Holm p {format_p(row.p_holm)}")
        if row.claim == STRATEGY_CLAIM:
            text = f"{_keep(f'{gain} ({interval_text(row.ci_low, row.ci_high)})')}, {p}"
        else:
            text = f"{gain}, {_keep('trained models')} {p}"
        cells[(row.name, row.dataset)] = (text, "num best" if row.held else "num")
    strategies, datasets = list(dict.fromkeys(rows["name"])), list(dict.fromkeys(rows["dataset"]))
    table = pd.DataFrame(
        [[name, *(cells.get((name, d), (EMPTY, ""))[0] for d in datasets)] for name in strategies],
        columns=["strategy", *datasets],
    )
    classes = pd.DataFrame(
        [["", *(cells.get((name, d), (EMPTY, "num"))[1] for d in datasets)] for name in strategies],
        columns=table.columns,
    )
    if powered:
        floor = [_detectable_cell(rows.loc[rows["dataset"] == d, "detectable"]) for d in datasets]
        table.loc[len(table)] = ["smallest detectable (80 % power)", *floor]
        classes.loc[len(classes)] = ["", *["num"] * len(datasets)]
    return View(table, classes, _answers_notes(rows, alpha, powered))


def _keep(text: str) -> str:
    """``text`` with no-break spaces: a value and its interval, or a p and its label, stay on one line."""
    return text.replace(" ", "\u00a0")


def _detectable_cell(mdes: pd.Series) -> str:
    finite = _finite(mdes)
    if finite.empty:
        return "none"
    low, high = number(finite.min(), 1), number(finite.max(), 1)
    return _keep(f"{low} points" if low == high else f"{low}–{high} points")


def _answers_notes(rows: pd.DataFrame, alpha: float, powered: bool) -> list[str]:
    """What the answers table's cells mean, once, for its caption."""
    claims = rows[rows["claim"] == STRATEGY_CLAIM]
    family = f"{int(claims['family_size'].max())} strategy claims" if len(claims) else "the model comparisons"
    notes = [
        f"Accuracy gain over {BASELINE_NAME} in points (95 % interval), the training run as the unit, with its "
        f"Holm-adjusted p over the family of {family}; bold: Holm p ≤ {alpha:g}."
    ]
    if (rows["claim"] == MODEL_CLAIM).any():
        notes.append(
            "“trained models”: one run per strategy, so strategy and run are confounded; the p is the exact McNemar "
            "test of the two trained models, Holm-adjusted over the model comparisons: a claim about these trained "
            "models, not about the strategies."
        )
    if powered:
        notes.append("Last row: the smallest difference the test run could detect (minimal detectable difference).")
    return notes
