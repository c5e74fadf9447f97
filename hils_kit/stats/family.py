"""Multiple-comparison control across one family of claims, and p-values for display.

A *family* is every claim a report makes together (say each strategy against the baseline on every test
set); its p-values are corrected together:

* :func:`adjust_family`: Holm's step-down adjustment (family-wise error rate) and Benjamini–Hochberg's
  (false discovery rate), both from ``statsmodels.stats.multitest.multipletests``. A claim is significant
  when its adjusted p-value is at most ``alpha``.
* :func:`dedupe_claims`: one row per distinct claim before correcting. A test that appears twice (a cell
  shared by two scenarios, compared on the same cell ids) is one claim and must be tested once: counting it
  twice makes the family larger and the correction stricter for no reason.
* :func:`format_p` / :func:`format_p_column`: p-values as text that never reads "0".

>>> claims = pd.DataFrame({"claim": ["a", "b", "c"], "p_value": [0.01, 0.04, 0.03]})
>>> adjust_family(claims)[["p_holm", "significant_holm", "p_bh", "family_size"]].round(3).values.tolist()
[[0.03, True, 0.03, 3], [0.06, False, 0.04, 3], [0.06, False, 0.04, 3]]
>>> format_p(0.03812), format_p(0.00001)
('0.0381', '< 1e-4')
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

# method name for multipletests -> suffix of the added columns
METHOD_SUFFIXES = {"holm": "holm", "fdr_bh": "bh"}


def adjust_family(
    table: pd.DataFrame, p_column: str = "p_value", alpha: float = 0.05, methods=("holm", "fdr_bh")
) -> pd.DataFrame:
    """A copy of ``table`` with, per method, ``p_<suffix>`` and ``significant_<suffix>`` (adjusted p <=
    ``alpha``): ``p_holm`` / ``significant_holm`` for ``"holm"``, ``p_bh`` / ``significant_bh`` for
    ``"fdr_bh"``; plus ``family_size`` (how many non-NaN p-values were corrected together) and
    ``family_alpha``. A NaN p-value stays NaN, is not counted and is not significant.

    >>> rows = pd.DataFrame({"p_value": [0.02, np.nan, 0.01]})
    >>> out = adjust_family(rows, methods=("holm",))
    >>> out["p_holm"].tolist(), out["significant_holm"].tolist(), out["family_size"].tolist()
    ([0.02, nan, 0.02], [True, False, True], [2, 2, 2])
    """
    p = _p_values(table, p_column)
    if not 0 < alpha < 1:
        raise ValueError(f"adjust_family: alpha must lie in (0, 1), got {alpha}")
    unknown = [m for m in methods if m not in METHOD_SUFFIXES]
    if unknown or not methods:
        raise ValueError(f"adjust_family: methods must be some of {list(METHOD_SUFFIXES)}, got {list(methods)}")
    present = ~np.isnan(p)
    out = table.copy()
    for method in methods:
        adjusted = np.full(len(p), np.nan)
        if present.any():
            adjusted[present] = multipletests(p[present], method=method)[1]
        suffix = METHOD_SUFFIXES[method]
        out[f"p_{suffix}"] = adjusted
        out[f"significant_{suffix}"] = adjusted <= alpha  # NaN <= alpha is False
    out["family_size"] = int(present.sum())
    out["family_alpha"] = alpha
    return out


def _p_values(table: pd.DataFrame, p_column: str) -> np.ndarray:
    """The ``p_column`` of ``table`` as floats, refused unless every value is NaN or lies in [0, 1]."""
    if p_column not in table:
        raise KeyError(f"adjust_family: no column '{p_column}' (columns: {', '.join(map(str, table.columns))})")
    try:
        p = table[p_column].to_numpy(dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"adjust_family: column '{p_column}' must hold numbers ({error})") from None
    outside = np.flatnonzero((p < 0) | (p > 1))
    if len(outside):
        row = table.index[outside[0]]
        raise ValueError(f"adjust_family: p-value {p[outside[0]]} at row {row!r} is outside [0, 1]")
    return p


def dedupe_claims(table: pd.DataFrame, key_columns) -> pd.DataFrame:
    """One row per distinct claim: rows whose ``key_columns`` are all equal are the same test, so the first
    is kept (with its index) and the others dropped. ``also_in`` records the drops: the values of the
    dropped rows' ``scenario`` column, comma-joined ("" when none), or, without a ``scenario`` column, their
    count ("2 duplicate rows"). List or set values in a key column (cell ids) are compared as tuples / sets.

    >>> rows = pd.DataFrame({"scenario": ["s1", "s2", "s1"], "cells": [("a", "b"), ("a", "b"), ("c",)]})
    >>> dedupe_claims(rows, ["cells"])[["scenario", "also_in"]].values.tolist()
    [['s1', 's2'], ['s1', '']]
    """
    key_columns = [key_columns] if isinstance(key_columns, str) else list(key_columns)
    if not key_columns:
        raise ValueError("dedupe_claims: name at least one key column")
    missing = [c for c in key_columns if c not in table]
    if missing:
        raise KeyError(f"dedupe_claims: no column(s) {missing} (columns: {', '.join(map(str, table.columns))})")
    keys = table[key_columns].map(_hashable)
    claim = keys.groupby(key_columns, sort=False, dropna=False).ngroup().to_numpy()
    first = ~pd.Series(claim).duplicated().to_numpy()
    also_in = []
    for position in np.flatnonzero(first):
        dropped = np.flatnonzero((claim == claim[position]) & ~first)
        if "scenario" in table:
            scenarios = table["scenario"].iloc[dropped].astype(str)
            also_in.append(", ".join(dict.fromkeys(scenarios)))
        else:
            also_in.append(f"{len(dropped)} duplicate row{'s' if len(dropped) > 1 else ''}" if len(dropped) else "")
    return table[first].assign(also_in=also_in)


def _hashable(value):
    """A key value that can be compared and grouped: lists and arrays become tuples, sets frozensets."""
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(value)
    return value


def format_p(p: float, digits: int = 4) -> str:
    """A p-value as text: "—" for NaN, ``"< 1e-<digits>"`` below 10**-digits, else rounded to ``digits``
    decimals without trailing zeros, so it never reads "0".

    >>> [format_p(p) for p in (0.03812, 1.0, 0.5, 0.0001, 0.00009, float("nan"))]
    ['0.0381', '1', '0.5', '0.0001', '< 1e-4', '—']
    >>> format_p(0.0004, digits=3)
    '< 1e-3'
    """
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 1:
        raise ValueError(f"format_p: digits must be a positive integer, got {digits!r}")
    if pd.isna(p):
        return "—"
    if not 0 <= p <= 1:
        raise ValueError(f"format_p: a p-value must lie in [0, 1], got {p}")
    if p < 10.0**-digits:
        return f"< 1e-{digits}"
    return f"{p:.{digits}f}".rstrip("0").rstrip(".")


def format_p_column(series: pd.Series, digits: int = 4) -> pd.Series:
    """:func:`format_p` applied to each value of ``series`` (same index).

    >>> format_p_column(pd.Series([0.2, 1e-6, np.nan])).tolist()
    ['0.2', '< 1e-4', '—']
    """
    return series.map(lambda p: format_p(p, digits))


def is_p_column(name) -> bool:
    """Whether a table column holds p-values: ``p_value``, ``p_models``, ``p_holm``, ``p_bh`` and the like.

    >>> [is_p_column(c) for c in ("p_value", "p_holm", "p_gold", "power")]
    [True, True, False, False]
    """
    return str(name) == "p_value" or str(name).startswith("p_") and str(name) not in ("p_gold",)
