"""Every strategy against the baseline, with the training run as the unit: one row per scenario × model ×
test set × strategy × metric, one family of claims corrected together, and what the design could detect; and
every strategy against its placebo twin (:func:`placebo_comparisons`).

Per row (:func:`hils_kit.stats.runs.compare_runs`): the estimate (accuracy in points, gold log-prob in nats,
Brier), its interval and raw ``p_value`` from a t-test on run means with the questions paired, and the variance
components. A row whose strategy and baseline have one run each is ``claim = "these trained models"``: strategy
and run are confounded, so it has no strategy p-value; ``p_models`` (exact McNemar, or a sign-flip test for the
continuous scores) says only whether these two trained models differ on these questions. The strategy claims form
one family, corrected by Holm and by Benjamini–Hochberg (``p_holm``, ``p_bh``); the model claims form another. A
comparison shared by two scenarios (the same runs) is tested once (``also_in``).

Power (``mde``, ``runs_needed``, ``questions_needed``) is that of the test actually run, at α divided by its
family size (Holm's first step): the run variance measured, or ``run_sd`` (accuracy points) where each strategy
has one run. For these-trained-models rows ``mde_models`` is the exact McNemar power.

>>> from hils_kit.stats.simulate import simulate_predictions
>>> frame = simulate_predictions(["random", "curriculum"], runs=3, questions=150, seed=0)
>>> table = compare_strategies(frame).table
>>> row = table.iloc[0]
>>> row.strategy, row.metric, row.claim, int(row.runs), int(row.baseline_runs)
('curriculum', 'accuracy', 'strategies', 3, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hils_kit.analyse.predictions import KEYS, check_predictions
from hils_kit.order.registry import placebo_twin
from hils_kit.stats.family import adjust_family, dedupe_claims
from hils_kit.stats.meta import meta_table
from hils_kit.stats.power import mde_mcnemar_exact
from hils_kit.stats.runs import Components, compare_runs, questions_needed, run_mde, runs_needed, seed_components
from hils_kit.stats.significance import mcnemar_exact, sign_flip_test

METRICS = {
    "correct": ("accuracy", "accuracy points", 100.0),
    "gold_logprob": ("gold log-prob", "nats", 1.0),
    "brier": ("Brier", "Brier score", 1.0),
}
RUN_SD_POINTS = 3.0  # assumed run-to-run sd of accuracy (points) where a study has one run per strategy
STRATEGY_CLAIM, MODEL_CLAIM = "strategies", "these trained models"


@dataclass
class Comparisons:
    """What :func:`compare_strategies` found: the comparison rows, the variance components beside them, the
    meta-analysis of each strategy over cells, the order / training-seed split of the run spread (crossed seeds
    only; else empty), and sentences on what the design can and cannot say."""

    table: pd.DataFrame
    components: pd.DataFrame
    meta: pd.DataFrame
    seeds: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _matrices(group: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """strategy -> questions × runs matrix of ``metric``."""
    return {
        strategy: rows.pivot(index="question", columns="run", values=metric).sort_index()
        for strategy, rows in group.groupby("strategy", sort=False)
    }


def _model_test(a: np.ndarray, b: np.ndarray, metric: str) -> dict:
    if metric == "correct":
        return mcnemar_exact(a[:, 0], b[:, 0])
    return sign_flip_test(a.mean(axis=1), b.mean(axis=1), n_resamples=4000)


def _rows(group: pd.DataFrame, key: tuple, baseline: str, metrics: list[str]) -> list[dict]:
    where = dict(zip(KEYS, key))
    out = []
    for metric in metrics:
        matrices = _matrices(group, metric)
        if baseline not in matrices:
            continue
        base = matrices[baseline]
        for strategy, mine in matrices.items():
            if strategy == baseline:
                continue
            if not mine.index.equals(base.index) or mine.isna().any().any() or base.isna().any().any():
                raise ValueError(
                    f"{where['dataset']} ({', '.join(f'{k} {v}' for k, v in where.items() if v and k != 'dataset')}): "
                    f"every run of {strategy} and {baseline} must answer the same questions"
                )
            a, b = mine.to_numpy(), base.to_numpy()
            name, unit, scale = METRICS[metric]
            result = compare_runs(a * scale, b * scale)
            row = {**where, "strategy": strategy, "baseline": baseline, "metric": name, "unit": unit}
            row |= {k: result[k] for k in ("estimate", "se", "df", "ci_low", "ci_high", "p_value")}
            row |= {"runs": result["runs_a"], "baseline_runs": result["runs_b"], "n_questions": result["n_questions"]}
            row |= {k: v for k, v in result.items() if k.startswith(("var_", "run_sd_"))}
            row["claim"] = MODEL_CLAIM if result["confounded"] else STRATEGY_CLAIM
            row["test"] = "none: one run per strategy" if result["confounded"] else result["method"]
            models = _model_test(a, b, metric) if result["confounded"] else {}
            row["p_models"] = models.get("p_value", math.nan)
            row["test_models"] = models.get("test", "")
            row["discordance"] = float((a[:, 0] != b[:, 0]).mean()) if metric == "correct" else math.nan
            row["runs_of"] = ";".join(mine.columns) + " | " + ";".join(base.columns)
            out.append(row)
    return out


def _power(table: pd.DataFrame, alpha: float, power: float, target_points: float, run_sd: float) -> pd.DataFrame:
    """The power columns of each row, at α over the size of the row's family."""
    strategy_family = max(1, int((table["claim"] == STRATEGY_CLAIM).sum()))
    model_family = max(1, int((table["claim"] == MODEL_CLAIM).sum()))
    columns = {k: [] for k in ("mde", "mde_models", "power_from", "target", "runs_needed", "questions_needed")}
    for row in table.itertuples(index=False):
        confounded = row.claim == MODEL_CLAIM
        level = alpha / (model_family if confounded else strategy_family)
        accuracy = row.metric == "accuracy"
        if confounded:
            known_run = run_sd**2 if accuracy else math.nan
            # one run each: the per-question disagreement is taken as run-level noise (no question × strategy term)
            components = Components(math.nan, known_run, 0.0, _disagreement(row) / 2, 0)
            source = f"assumed run sd {run_sd:g} points (one run per strategy)" if accuracy else "no run variance"
        else:
            components = Components(row.var_question, row.var_run, row.var_question_by_strategy, row.var_residual, 1)
            source = "measured (runs of this comparison)"
        runs = min(row.runs, row.baseline_runs)
        columns["mde"].append(run_mde(components, runs, row.n_questions, level, power) if runs > 1 else math.nan)
        columns["mde_models"].append(
            mde_mcnemar_exact(row.discordance, row.n_questions, level, power) * 100
            if confounded and accuracy
            else math.nan
        )
        columns["power_from"].append(source)
        target = target_points if accuracy else math.nan
        columns["target"].append(target)
        usable = accuracy and not math.isnan(components.run)
        columns["runs_needed"].append(
            runs_needed(target, components, row.n_questions, level, power) if usable else math.nan
        )
        columns["questions_needed"].append(
            questions_needed(target, components, max(runs, 2), level, power) if usable else math.nan
        )
    return table.assign(**columns, power=power, alpha=alpha)


def _disagreement(row) -> float:
    """The per-question variance of a one-run-each difference (score units²): discordance for accuracy."""
    return row.discordance * 100**2 if row.metric == "accuracy" else math.nan


def compare_strategies(
    predictions: pd.DataFrame,
    baseline: str = "random",
    alpha: float = 0.05,
    power: float = 0.8,
    target_points: float = 2.0,
    run_sd: float = RUN_SD_POINTS,
) -> Comparisons:
    """Compare every strategy with ``baseline`` in each scenario × model × test set of ``predictions`` (a long
    frame: :mod:`hils_kit.analyse.predictions`); see the module docstring."""
    frame = check_predictions(predictions)
    if baseline not in set(frame["strategy"]):
        raise ValueError(
            f"no runs of the baseline strategy {baseline!r} (strategies: {', '.join(sorted(set(frame['strategy'])))})"
        )
    metrics = [m for m in METRICS if m in frame]
    rows = []
    for key, group in frame.groupby(list(KEYS), sort=False):
        rows += _rows(group, key, baseline, metrics)
    if not rows:
        raise ValueError(f"no test set has runs of both {baseline!r} and another strategy")
    table = dedupe_claims(pd.DataFrame(rows), ["model", "dataset", "metric", "runs_of"])
    strategies = adjust_family(table[table["claim"] == STRATEGY_CLAIM], alpha=alpha)
    models = adjust_family(table[table["claim"] == MODEL_CLAIM], p_column="p_models", alpha=alpha)
    table = pd.concat([strategies, models]).sort_index()
    table = _power(table, alpha, power, target_points, run_sd)
    component_columns = [c for c in table if c.startswith(("var_", "run_sd_"))]
    components = table[[*KEYS, "strategy", "baseline", "metric", "runs", "baseline_runs", *component_columns]]
    meta = meta_table(table[table["claim"] == STRATEGY_CLAIM], by=("strategy", "metric"))
    seeds = seed_spread(frame)
    return Comparisons(table.reset_index(drop=True), components.reset_index(drop=True), meta, seeds, _notes(table))


def placebo_comparisons(predictions: pd.DataFrame, alpha: float = 0.05, twin=placebo_twin) -> pd.DataFrame:
    """Each strategy against its placebo twin (the same schedule on shuffled labels, :mod:`hils_kit.order.placebo`)
    in each scenario × model × test set: a gain is what the labels add beyond the schedule's shape. The rows are
    those of :func:`compare_strategies` with the twin as ``baseline``, a family of their own (Holm, BH); empty when
    no strategy ran beside its twin. ``twin`` names another pairing: :func:`hils_kit.order.registry.matched_twin`
    compares a strategy that feeds extra examples with the Random Shuffle fed as many (equal compute).

    >>> from hils_kit.stats.simulate import simulate_predictions
    >>> frame = simulate_predictions(["random", "curriculum", "curriculum_placebo"], runs=3, questions=150, seed=0)
    >>> placebo_comparisons(frame)[["strategy", "baseline"]].drop_duplicates().values.tolist()
    [['curriculum', 'curriculum_placebo']]
    """
    frame = check_predictions(predictions)
    present = list(dict.fromkeys(frame["strategy"]))
    pairs = [(real, twin(real)) for real in present if twin(real) in present]
    metrics = [m for m in METRICS if m in frame]
    rows = []
    for key, group in frame.groupby(list(KEYS), sort=False):
        for real, other in pairs:
            rows += _rows(group[group["strategy"].isin([real, other])], key, other, metrics)
    if not rows:
        return pd.DataFrame(rows)
    table = pd.DataFrame(rows)
    strategies = adjust_family(table[table["claim"] == STRATEGY_CLAIM], alpha=alpha)
    models = adjust_family(table[table["claim"] == MODEL_CLAIM], p_column="p_models", alpha=alpha)
    return pd.concat([strategies, models]).sort_index().reset_index(drop=True)


def seed_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario × model × test set × strategy run with crossed seeds (two or more order seeds × two or more
    training seeds, ``order_seed`` and ``train_seed`` columns): the run-to-run variance of accuracy (points²) from
    the order and from the training seed (initialisation, dropout, collation), by
    :func:`hils_kit.stats.runs.seed_components`. Empty when no strategy has such runs."""
    rows = []
    if not {"order_seed", "train_seed"} <= set(frame):
        return pd.DataFrame(rows)
    runs = frame.groupby([*KEYS, "strategy", "run", "order_seed", "train_seed"], sort=False)["correct"].mean() * 100
    for key, group in runs.groupby(level=[*KEYS, "strategy"], sort=False):
        table = group.droplevel([*KEYS, "strategy", "run"]).unstack("train_seed")
        if min(table.shape) < 2 or table.isna().any().any():
            continue
        rows.append({**dict(zip([*KEYS, "strategy"], key)), **seed_components(table.to_numpy())})
    return pd.DataFrame(rows)


def _notes(table: pd.DataFrame) -> list[str]:
    """What the design can and cannot say, in sentences."""
    notes = []
    confounded = table[table["claim"] == MODEL_CLAIM]
    if len(confounded):
        count = confounded["strategy"].nunique()
        notes.append(
            f"{count} {'strategies have' if count > 1 else 'strategy has'} one run each beside one run of the "
            "baseline: "
            "strategy and training run are confounded, so these rows compare the trained models only and give no "
            "p-value for a strategy."
        )
    claims = table[table["claim"] == STRATEGY_CLAIM]
    if len(claims):
        notes.append(
            f"The family: {len(claims)} strategy claims (strategies × test sets × metrics × scenarios, each shared "
            f"comparison once), Holm-corrected (family-wise error) with Benjamini–Hochberg beside it."
        )
    return notes
