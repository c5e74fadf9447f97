"""Random-effects meta-analysis of one strategy's effect over cells (model × test set × label source).

Each cell gives an estimate of the effect (the strategy minus the baseline) and its standard error; the
cells' true effects are allowed to differ with variance ``tau2``. :func:`random_effects` pools them with
``statsmodels.stats.meta_analysis.combine_effects``:

* ``tau2`` by Paule–Mandel (``method="pm"``, default) or DerSimonian–Laird (``"dl"``, truncated at 0);
* the interval for the pooled effect: with 10 or more cells the normal (Wald) interval; with fewer the
  Hartung–Knapp–Sidik–Jonkman t interval (k - 1 degrees of freedom), or the normal one where that is wider,
  so that it cannot collapse when the cells agree more closely than their standard errors imply (Wiksten
  et al. 2016, Jackson et al. 2017; R meta's ``adhoc.hakn.ci = "ci"``);
* Cochran's Q test of heterogeneity and I² = max(0, (Q - (k - 1)) / Q);
* the prediction interval for the effect in a new cell (Higgins, Thompson & Spiegelhalter 2009):
  pooled ± t(k - 2) · sqrt(tau2 + se_pooled²), for 3 or more cells.

:func:`meta_table` does it for every (strategy, metric) group of a table of comparisons. A cell shared by
two scenarios should appear once (see :func:`hils_kit.stats.family.dedupe_claims`), or it counts twice.

>>> out = random_effects([0.10, 0.30, -0.05, 0.40, 0.20], [0.10, 0.14, 0.12, 0.17, 0.10], method="dl")
>>> out["k"], round(out["pooled"], 3), round(out["tau2"], 4), round(out["i2"], 2), out["share_positive"]
(5, 0.166, 0.0094, 0.39, 0.8)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

TAU2_ESTIMATORS = {"pm": "Paule–Mandel", "dl": "DerSimonian–Laird"}
HARTUNG_KNAPP_BELOW = 10  # fewer cells than this: the t-based Hartung–Knapp interval, else the normal one

RESULT_COLUMNS = (
    "k",
    "pooled",
    "se_pooled",
    "ci_low",
    "ci_high",
    "p_value",
    "tau2",
    "i2",
    "q",
    "q_p",
    "pi_low",
    "pi_high",
    "share_positive",
    "method",
)


def random_effects(estimates, standard_errors, labels=None, level: float = 0.95, method: str = "pm") -> dict:
    """Pool one effect over ``k`` cells with a random-effects model (see the module docstring).

    Returns ``k``, ``pooled``, ``se_pooled`` (its standard error, scale 1), ``ci_low`` / ``ci_high``
    (``level`` interval), ``p_value`` (pooled effect = 0, same distribution as the interval), ``tau2``,
    ``i2`` (share 0..1), ``q`` / ``q_p`` (Cochran's Q and its chi-square p-value), ``pi_low`` / ``pi_high``
    (``level`` prediction interval for a new cell; NaN below 3 cells), ``share_positive`` (share of cells
    whose estimate is > 0) and ``method`` (the estimator and intervals, in words). ``labels`` name the cells
    in error messages (positions by default).

    >>> out = random_effects([0.12, 0.10, 0.08], [0.05, 0.05, 0.05])
    >>> round(out["pooled"], 2), out["tau2"], [round(out["ci_low"], 3), round(out["ci_high"], 3)]
    (0.1, 0.0, [0.043, 0.157])
    >>> out["method"].split("; ")[1]
    "normal (Wald) interval, wider than Hartung–Knapp's here"
    """
    y, se, labels = _cells(estimates, standard_errors, labels)
    if method not in TAU2_ESTIMATORS:
        raise ValueError(f"random_effects: method must be one of {list(TAU2_ESTIMATORS)}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"random_effects: level must lie in (0, 1), got {level}")
    k = len(y)
    result = combine_effects(y, se**2, method_re=method, row_names=labels)
    if result.tau2 < 0:
        # statsmodels leaves DerSimonian–Laird's tau2 = (Q - (k - 1)) / c negative when Q < k - 1; the
        # truncated estimate is 0, where Paule–Mandel stops in that case too
        result = combine_effects(y, se**2, method_re="pm", row_names=labels)
    pooled, se_pooled, tau2 = float(result.mean_effect_re), float(result.sd_eff_w_re), float(result.tau2)
    se_ci, reference, interval = _interval(result, level)
    half_width = float(reference.ppf((1 + level) / 2) * se_ci)
    if k >= 3:
        half_pi = float(stats.t.ppf((1 + level) / 2, k - 2) * np.sqrt(tau2 + se_pooled**2))
        prediction = f"prediction interval t({k - 2})"
    else:
        half_pi, prediction = np.nan, "no prediction interval below 3 cells"
    q = float(result.q)
    return {
        "k": k,
        "pooled": pooled,
        "se_pooled": se_pooled,
        "ci_low": pooled - half_width,
        "ci_high": pooled + half_width,
        "p_value": float(2 * reference.sf(abs(pooled) / se_ci)),
        "tau2": tau2,
        "i2": max(0.0, 1 - (k - 1) / q) if q > 0 else 0.0,
        "q": q,
        "q_p": float(result.test_homogeneity().pvalue),
        "pi_low": pooled - half_pi,
        "pi_high": pooled + half_pi,
        "share_positive": float((y > 0).mean()),
        "method": f"random effects, tau2 {TAU2_ESTIMATORS[method]}; {interval}; {prediction}",
    }


def _interval(result, level: float) -> tuple:
    """The standard error, reference distribution (frozen scipy) and name of the interval for the pooled
    effect: below ``HARTUNG_KNAPP_BELOW`` cells Hartung–Knapp's unless the normal (Wald) interval is wider."""
    k, se_pooled = result.k, float(result.sd_eff_w_re)
    normal = (se_pooled, stats.norm(), "normal (Wald) interval")
    if k >= HARTUNG_KNAPP_BELOW:
        return normal
    se_hartung_knapp = float(np.sqrt(result.var_hksj_re))
    quantile = (1 + level) / 2
    if stats.t.ppf(quantile, k - 1) * se_hartung_knapp < stats.norm.ppf(quantile) * se_pooled:
        return normal[:2] + ("normal (Wald) interval, wider than Hartung–Knapp's here",)
    return se_hartung_knapp, stats.t(k - 1), f"Hartung–Knapp t interval ({k - 1} df)"


def _cells(estimates, standard_errors, labels) -> tuple[np.ndarray, np.ndarray, list]:
    """Estimates and standard errors as float arrays with a label per cell; refuses bad cells by label."""
    y = np.asarray(estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    if y.ndim != 1 or se.shape != y.shape:
        raise ValueError(
            f"random_effects: need as many standard errors as estimates, one per cell (got shapes {y.shape} "
            f"and {se.shape})"
        )
    labels = list(range(len(y))) if labels is None else list(labels)
    if len(labels) != len(y):
        raise ValueError(f"random_effects: {len(labels)} labels for {len(y)} cells")
    if len(y) < 2:
        raise ValueError(f"random_effects: need at least 2 cells to pool, got {len(y)}")
    if not np.isfinite(y).all():
        first = int(np.flatnonzero(~np.isfinite(y))[0])
        raise ValueError(f"random_effects: cell {labels[first]!r} has estimate {y[first]}; need a number")
    bad_se = ~(np.isfinite(se) & (se > 0))
    if bad_se.any():
        first = int(np.flatnonzero(bad_se)[0])
        raise ValueError(
            f"random_effects: cell {labels[first]!r} has standard error {se[first]}; it must be finite and > 0"
        )
    return y, se, labels


def meta_table(
    comparisons: pd.DataFrame,
    by=("strategy", "metric"),
    estimate: str = "estimate",
    se: str = "se",
    cell=("model", "dataset", "scenario"),
) -> pd.DataFrame:
    """One row per ``by`` group of ``comparisons`` (one row per cell): the group keys, ``cells_without_se``
    and the columns of :func:`random_effects` over the group's cells. A row whose ``se`` is NaN (one run
    per strategy: no standard error) or 0 (every run of both strategies scored the same: inverse-variance weights
    are undefined) is left out of the pooling and counted in ``cells_without_se``. A
    group left with one cell gets ``k`` = 1, ``pooled`` = its estimate and NaN elsewhere (none: ``k`` = 0).
    Cells are labelled by their ``cell`` columns; a cell twice in one group is refused.

    >>> rows = pd.DataFrame({"strategy": ["curriculum"] * 3 + ["spaced"] * 2, "metric": "accuracy",
    ...     "model": ["m1", "m2", "m3", "m1", "m2"], "dataset": "d", "scenario": "s",
    ...     "estimate": [0.02, 0.04, 0.01, 0.03, 0.05], "se": [0.01, 0.02, 0.01, 0.02, np.nan]})
    >>> table = meta_table(rows)
    >>> table[["strategy", "k", "cells_without_se"]].values.tolist(), table["pooled"].round(3).tolist()
    ([['curriculum', 3, 0], ['spaced', 1, 1]], [0.018, 0.03])
    >>> table["method"].iloc[1]
    'one cell: no meta-analysis'
    """
    by, cell = _names(by), _names(cell)
    missing = [c for c in (*by, estimate, se, *cell) if c not in comparisons]
    if missing:
        raise KeyError(f"meta_table: no column(s) {missing} (columns: {', '.join(map(str, comparisons.columns))})")
    rows = []
    for keys, group in comparisons.groupby(by, sort=False, dropna=False):
        where = dict(zip(by, keys))
        labels = ["/".join(map(str, values)) for values in group[cell].itertuples(index=False)]
        _refuse_bad_rows(group, estimate, se, labels, where)
        with_se = (group[se] > 0).to_numpy()  # NaN or 0: no usable standard error
        y = group[estimate].to_numpy(dtype=float)[with_se]
        k = len(y)
        if k >= 2:
            cells = [label for label, kept in zip(labels, with_se) if kept]
            pooled = random_effects(y, group[se].to_numpy(dtype=float)[with_se], cells)
        else:
            pooled = dict.fromkeys(RESULT_COLUMNS, np.nan) | {
                "k": k,
                "pooled": float(y[0]) if k else np.nan,
                "method": "one cell: no meta-analysis" if k else "no cell with a standard error: no meta-analysis",
            }
        rows.append(where | {"cells_without_se": int((~with_se).sum())} | pooled)
    columns = [*by, "k", "cells_without_se", *RESULT_COLUMNS[1:]]
    return pd.DataFrame(rows, columns=columns)


def _names(columns) -> list:
    return [columns] if isinstance(columns, str) else list(columns)


def _refuse_bad_rows(group: pd.DataFrame, estimate: str, se: str, labels: list, where: dict) -> None:
    """Refuses a cell twice in one group, a missing estimate and a negative standard error, naming the group and
    the cell."""
    seen = pd.Series(labels).duplicated().to_numpy()
    if seen.any():
        raise ValueError(f"meta_table: cell {labels[int(seen.argmax())]!r} appears twice in group {where}")
    missing = group[estimate].isna().to_numpy()
    if missing.any():
        row = group.index[int(missing.argmax())]
        raise ValueError(f"meta_table: no {estimate} at row {row!r} (cell {labels[int(missing.argmax())]!r}, {where})")
    negative = (group[se] < 0).to_numpy()
    if negative.any():
        at = int(negative.argmax())
        raise ValueError(
            f"meta_table: standard error {group[se].iloc[at]} at row {group.index[at]!r} (cell {labels[at]!r}, {where})"
        )
