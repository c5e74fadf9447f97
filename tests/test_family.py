"""Holm and Benjamini–Hochberg across one family against hand values, duplicate claims, p-values as text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hils_kit.stats.family import adjust_family, dedupe_claims, format_p, format_p_column


def textbook_holm(p) -> np.ndarray:
    """The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p, dtype=float)
    m, order = len(p), np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    for i in range(m):
        adjusted[order[i]] = max(min(1.0, (m - j) * p[order[j]]) for j in range(i + 1))
    return adjusted


def test_holm_matches_the_hand_computed_step_down():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, 1·0.04 = 0.02, 0.03, 0.06, 0.04 -> running max
    out = adjust_family(pd.DataFrame({"p_value": [0.01, 0.04, 0.03, 0.005]}))
    assert out["p_holm"].tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert out["significant_holm"].tolist() == [True, False, False, True]


@pytest.mark.parametrize("seed", range(5))
def test_statsmodels_holm_matches_the_textbook_formula(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=12)
    p[3] = p[7]  # a tie
    assert adjust_family(pd.DataFrame({"p_value": p}))["p_holm"].to_numpy() == pytest.approx(textbook_holm(p))


def test_bh_matches_the_hand_computation():
    # sorted 0.005, 0.01, 0.03, 0.04 -> p·4/i = 0.02, 0.02, 0.04, 0.04 -> running min from the largest
    out = adjust_family(pd.DataFrame({"p_value": [0.01, 0.04, 0.03, 0.005]}), alpha=0.03)
    assert out["p_bh"].tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert out["significant_bh"].tolist() == [True, False, False, True]


def test_an_adjusted_p_exactly_at_alpha_is_significant():
    out = adjust_family(pd.DataFrame({"p_value": [0.0125, 0.5, 0.3, 0.9]}))  # 4 · 0.0125 = 0.05 exactly
    assert out["p_holm"].iloc[0] == 0.05 and out["p_bh"].iloc[0] == 0.05
    assert out["significant_holm"].tolist() == [True, False, False, False]
    assert out["significant_bh"].tolist() == [True, False, False, False]


def test_the_family_columns_and_the_table_left_alone():
    table = pd.DataFrame({"claim": ["a", "b"], "p": [0.01, 0.2]}, index=["x", "y"])
    out = adjust_family(table, p_column="p", alpha=0.1, methods=("fdr_bh",))
    assert list(out.columns) == ["claim", "p", "p_bh", "significant_bh", "family_size", "family_alpha"]
    assert out.index.tolist() == ["x", "y"] and list(table.columns) == ["claim", "p"]
    assert out["family_size"].tolist() == [2, 2] and out["family_alpha"].tolist() == [0.1, 0.1]


def test_nan_p_values_stay_nan_and_are_not_counted():
    with_nan = adjust_family(pd.DataFrame({"p_value": [0.01, np.nan, 0.04, 0.03]}))
    without = adjust_family(pd.DataFrame({"p_value": [0.01, 0.04, 0.03]}))
    assert np.isnan(with_nan["p_holm"].iloc[1]) and np.isnan(with_nan["p_bh"].iloc[1])
    assert not with_nan["significant_holm"].iloc[1] and not with_nan["significant_bh"].iloc[1]
    assert with_nan["family_size"].tolist() == [3] * 4
    assert with_nan["p_holm"].drop(1).tolist() == pytest.approx(without["p_holm"].tolist())
    assert with_nan["p_bh"].drop(1).tolist() == pytest.approx(without["p_bh"].tolist())


def test_a_family_of_nan_only_is_empty():
    out = adjust_family(pd.DataFrame({"p_value": [np.nan, np.nan]}))
    assert out["family_size"].tolist() == [0, 0] and out["p_holm"].isna().all()
    assert not out["significant_holm"].any() and not out["significant_bh"].any()


@pytest.mark.parametrize("bad", [1.2, -0.01])
def test_p_values_outside_0_1_are_refused_with_their_row(bad):
    table = pd.DataFrame({"p_value": [0.01, bad]}, index=["fine", "broken"])
    with pytest.raises(ValueError, match=r"row 'broken'.*outside \[0, 1\]"):
        adjust_family(table)


def test_other_bad_input_is_refused():
    table = pd.DataFrame({"p_value": [0.01, 0.2]})
    with pytest.raises(KeyError, match="no column 'p'.*columns: p_value"):
        adjust_family(table, p_column="p")
    with pytest.raises(ValueError, match="methods must be some of"):
        adjust_family(table, methods=("bonferroni",))
    with pytest.raises(ValueError, match="alpha"):
        adjust_family(table, alpha=5)
    with pytest.raises(ValueError, match="must hold numbers"):
        adjust_family(pd.DataFrame({"p_value": ["small"]}))


def test_dedupe_keeps_the_first_row_and_records_the_other_scenario():
    table = pd.DataFrame(
        {
            "scenario": ["in-domain", "shifted", "shifted", "low-data"],
            "cells_a": [["m1/d1", "m2/d1"], ["m1/d1", "m2/d1"], ["m3/d2"], ["m1/d1", "m2/d1"]],
            "cells_b": ["random", "random", "random", "random"],
            "p_value": [0.01, 0.01, 0.2, 0.01],
        }
    )
    out = dedupe_claims(table, ["cells_a", "cells_b"])
    assert out.index.tolist() == [0, 2]
    assert out["also_in"].tolist() == ["shifted, low-data", ""]
    assert adjust_family(out)["family_size"].iloc[0] == 2


def test_dedupe_without_a_scenario_column_counts_the_duplicates():
    table = pd.DataFrame({"a": [{"x", "y"}, {"y", "x"}, {"x", "y"}, {"z"}], "b": [1, 1, 1, 1]})
    assert dedupe_claims(table, ["a", "b"])["also_in"].tolist() == ["2 duplicate rows", ""]
    assert dedupe_claims(table.iloc[:2], "a")["also_in"].tolist() == ["1 duplicate row"]


def test_dedupe_refuses_missing_key_columns():
    with pytest.raises(KeyError, match=r"\['cells'\].*columns: a"):
        dedupe_claims(pd.DataFrame({"a": [1]}), ["cells"])
    with pytest.raises(ValueError, match="at least one key column"):
        dedupe_claims(pd.DataFrame({"a": [1]}), [])


@pytest.mark.parametrize(
    "p, digits, text",
    [
        (0.03812, 4, "0.0381"),
        (1.0, 4, "1"),
        (0.05, 4, "0.05"),
        (0.0001, 4, "0.0001"),
        (0.0000999, 4, "< 1e-4"),
        (0.0, 4, "< 1e-4"),
        (0.0004, 3, "< 1e-3"),
        (0.123456, 2, "0.12"),
        (np.nan, 4, "—"),
        (None, 4, "—"),
    ],
)
def test_format_p(p, digits, text):
    assert format_p(p, digits) == text


@pytest.mark.parametrize("digits", [1, 2, 4, 6])
def test_format_p_never_prints_zero(digits):
    for p in [0.0, *np.logspace(-12, 0, 400)]:
        text = format_p(p, digits)
        assert text.startswith("< 1e-") or float(text) > 0, (p, text)


def test_format_p_refuses_bad_input_and_formats_a_column():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        format_p(1.5)
    with pytest.raises(ValueError, match="digits"):
        format_p(0.5, digits=0)
    column = format_p_column(pd.Series([0.5, 1e-9, np.nan], index=["a", "b", "c"]), digits=3)
    assert column.to_dict() == {"a": "0.5", "b": "< 1e-3", "c": "—"}
