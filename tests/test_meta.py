"""Random-effects meta-analysis against the DerSimonian–Laird formulas by hand, the prediction interval
formula, interval coverage on a simulation, and the per-group table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hils_kit.stats.meta import meta_table, random_effects

ESTIMATES = np.array([0.10, 0.30, -0.05, 0.40, 0.20])
VARIANCES = np.array([0.01, 0.02, 0.015, 0.03, 0.01])


def dersimonian_laird(y, v) -> dict:
    """The textbook DerSimonian–Laird random-effects estimate."""
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    df = len(y) - 1
    tau2 = max(0.0, (q - df) / (w.sum() - (w**2).sum() / w.sum()))
    w_re = 1 / (v + tau2)
    return {
        "pooled": (w_re * y).sum() / w_re.sum(),
        "se_pooled": np.sqrt(1 / w_re.sum()),
        "tau2": tau2,
        "q": q,
        "i2": max(0.0, (q - df) / q),
    }


def test_dersimonian_laird_matches_the_hand_computation():
    out = random_effects(ESTIMATES, np.sqrt(VARIANCES), method="dl")
    hand = dersimonian_laird(ESTIMATES, VARIANCES)
    for key, value in hand.items():
        assert out[key] == pytest.approx(value, rel=1e-10), key
    # the same numbers worked on paper: fixed mean 55/350, Q = 6.3571, tau2 = 2.3571 / 269.84
    assert out["q"] == pytest.approx(6.357143, abs=1e-6) and out["tau2"] == pytest.approx(0.0087353, abs=1e-7)
    assert out["i2"] == pytest.approx(0.370787, abs=1e-6) and out["pooled"] == pytest.approx(0.165503, abs=1e-6)
    assert out["q_p"] == pytest.approx(stats.chi2.sf(hand["q"], 4))
    assert out["k"] == 5 and out["share_positive"] == 0.8 and "DerSimonian–Laird" in out["method"]


def test_dersimonian_laird_tau2_is_truncated_at_zero():
    # Q < k - 1: statsmodels 0.15 alone gives a negative tau2 here
    y, v = np.array([0.10, 0.11, 0.09]), np.full(3, 0.01)
    out = random_effects(y, np.sqrt(v), method="dl")
    assert out["tau2"] == 0 and out["i2"] == 0
    assert out["pooled"] == pytest.approx(dersimonian_laird(y, v)["pooled"])
    assert out["se_pooled"] == pytest.approx(np.sqrt(0.01 / 3))


def test_paule_mandel_solves_its_estimating_equation():
    out = random_effects(ESTIMATES, np.sqrt(VARIANCES))
    w = 1 / (VARIANCES + out["tau2"])
    generalised_q = (w * (ESTIMATES - out["pooled"]) ** 2).sum()
    assert out["tau2"] > 0 and generalised_q == pytest.approx(len(ESTIMATES) - 1, abs=1e-4)
    assert "Paule–Mandel" in out["method"]


def test_the_prediction_interval_follows_higgins_thompson_spiegelhalter():
    out = random_effects(ESTIMATES, np.sqrt(VARIANCES), method="dl")
    hand = dersimonian_laird(ESTIMATES, VARIANCES)
    half = stats.t.ppf(0.975, 3) * np.sqrt(hand["tau2"] + hand["se_pooled"] ** 2)
    assert [out["pi_low"], out["pi_high"]] == pytest.approx([hand["pooled"] - half, hand["pooled"] + half])
    assert out["pi_low"] < out["ci_low"] and out["pi_high"] > out["ci_high"]


def test_no_prediction_interval_with_two_cells():
    out = random_effects([0.1, 0.2], [0.05, 0.05])
    assert np.isnan(out["pi_low"]) and np.isnan(out["pi_high"]) and "below 3 cells" in out["method"]


def test_few_cells_get_the_hartung_knapp_interval():
    out = random_effects(ESTIMATES, np.sqrt(VARIANCES), method="dl")
    hand = dersimonian_laird(ESTIMATES, VARIANCES)
    w = 1 / (VARIANCES + hand["tau2"])
    se = np.sqrt((w * (ESTIMATES - hand["pooled"]) ** 2).sum() / w.sum() / 4)
    half = stats.t.ppf(0.975, 4) * se
    assert half > stats.norm.ppf(0.975) * hand["se_pooled"]  # wider than the normal interval
    assert [out["ci_low"], out["ci_high"]] == pytest.approx([hand["pooled"] - half, hand["pooled"] + half])
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(abs(hand["pooled"]) / se, 4))
    assert "Hartung–Knapp t interval (4 df)" in out["method"]


def test_cells_that_agree_closely_get_the_wider_normal_interval():
    # identical estimates: the Hartung–Knapp standard error is 0
    out = random_effects([0.1, 0.1, 0.1], [0.05, 0.05, 0.05])
    half = stats.norm.ppf(0.975) * 0.05 / np.sqrt(3)
    assert [out["ci_low"], out["ci_high"]] == pytest.approx([0.1 - half, 0.1 + half])
    assert out["p_value"] == pytest.approx(2 * stats.norm.sf(0.1 / (0.05 / np.sqrt(3))))
    assert "normal (Wald) interval, wider than Hartung–Knapp's" in out["method"]


def test_ten_or_more_cells_get_the_normal_interval():
    rng = np.random.default_rng(1)
    y, se = rng.normal(0.1, 0.1, 12), rng.uniform(0.05, 0.1, 12)
    out = random_effects(y, se, level=0.9)
    half = stats.norm.ppf(0.95) * out["se_pooled"]
    assert [out["ci_low"], out["ci_high"]] == pytest.approx([out["pooled"] - half, out["pooled"] + half])
    assert out["p_value"] == pytest.approx(2 * stats.norm.sf(abs(out["pooled"]) / out["se_pooled"]))
    assert "normal (Wald)" in out["method"]


@pytest.mark.parametrize("k", [5, 12])
def test_without_heterogeneity_the_interval_covers_the_true_effect_about_95_percent(k):
    rng = np.random.default_rng(k)
    true_effect, covered = 0.1, 0
    for _ in range(400):
        se = rng.uniform(0.05, 0.2, k)
        out = random_effects(rng.normal(true_effect, se), se)
        covered += out["ci_low"] <= true_effect <= out["ci_high"]
    assert 0.9 <= covered / 400 <= 0.99


@pytest.mark.parametrize(
    "estimates, standard_errors, message",
    [
        ([0.1, 0.2, 0.3], [0.1, 0.1], "as many standard errors as estimates"),
        ([0.1], [0.1], "at least 2 cells"),
        ([0.1, 0.2], [0.1, 0.0], r"cell 'm2' has standard error 0.0"),
        ([0.1, 0.2], [-0.1, 0.1], r"cell 'm1' has standard error -0.1"),
        ([0.1, 0.2], [0.1, np.nan], r"cell 'm2' has standard error nan"),
        ([np.nan, 0.2], [0.1, 0.1], r"cell 'm1' has estimate nan"),
    ],
)
def test_bad_cells_are_refused_by_label(estimates, standard_errors, message):
    with pytest.raises(ValueError, match=message):
        random_effects(estimates, standard_errors, labels=["m1", "m2", "m3"][: len(estimates)])


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        random_effects([0.1, 0.2], [0.1, 0.1], method="reml")
    with pytest.raises(ValueError, match="level"):
        random_effects([0.1, 0.2], [0.1, 0.1], level=95)
    with pytest.raises(ValueError, match="2 labels for 3 cells"):
        random_effects([0.1, 0.2, 0.3], [0.1, 0.1, 0.1], labels=["a", "b"])


def comparisons() -> pd.DataFrame:
    cells = [(model, dataset) for model in ("m1", "m2", "m3") for dataset in ("d1", "d2")]
    rows = [
        {"strategy": strategy, "metric": "accuracy", "model": model, "dataset": dataset, "scenario": "s"}
        for strategy in ("curriculum", "spaced")
        for model, dataset in cells
    ]
    table = pd.DataFrame(rows)
    table["estimate"] = np.linspace(-0.02, 0.05, len(table))
    table["se"] = 0.01 + 0.002 * np.arange(len(table))
    table.loc[table["strategy"] == "spaced", "se"] = [0.02, np.nan, np.nan, np.nan, np.nan, np.nan]
    return table


def test_meta_table_pools_each_group_and_counts_cells_without_se():
    table = comparisons()
    out = meta_table(table)
    assert list(out.columns[:4]) == ["strategy", "metric", "k", "cells_without_se"]
    assert {"pooled", "ci_low", "ci_high", "p_value", "tau2", "i2", "q", "q_p", "pi_low", "pi_high"} < set(out)
    curriculum, spaced = out.iloc[0], out.iloc[1]
    expected = random_effects(table["estimate"][:6], table["se"][:6])
    assert curriculum["k"] == 6 and curriculum["cells_without_se"] == 0
    for key, value in expected.items():
        assert curriculum[key] == (value if key == "method" else pytest.approx(value)), key
    assert spaced["k"] == 1 and spaced["cells_without_se"] == 5 and spaced["pooled"] == table["estimate"][6]
    assert spaced["method"] == "one cell: no meta-analysis" and spaced[["ci_low", "tau2", "i2"]].isna().all()


def test_meta_table_with_no_standard_error_at_all():
    table = comparisons().assign(se=np.nan)
    out = meta_table(table, by="strategy")
    assert out["k"].tolist() == [0, 0] and out["pooled"].isna().all()
    assert out["method"].iloc[0] == "no cell with a standard error: no meta-analysis"


def test_meta_table_leaves_out_cells_whose_runs_all_agree():
    """Every run of both strategies scored the same on a test set: the gain's standard error is 0, so the cell has
    no inverse-variance weight; it is counted with the cells without one and the others are pooled."""
    table = comparisons()
    table.loc[1, "se"] = 0.0
    curriculum = meta_table(table).iloc[0]
    kept = table.index[:6] != 1
    expected = random_effects(table["estimate"][:6][kept], table["se"][:6][kept])
    assert curriculum["k"] == 5 and curriculum["cells_without_se"] == 1
    assert curriculum["pooled"] == pytest.approx(expected["pooled"])


def test_meta_table_refuses_bad_tables():
    table = comparisons()
    with pytest.raises(KeyError, match=r"\['label_source'\]"):
        meta_table(table, cell=("model", "label_source"))
    with pytest.raises(ValueError, match="cell 'm1/s' appears twice in group"):
        meta_table(table, cell=("model", "scenario"))
    with pytest.raises(ValueError, match=r"no estimate at row 3 \(cell 'm2/d2/s'"):
        meta_table(table.assign(estimate=table["estimate"].where(table.index != 3)))
    with pytest.raises(ValueError, match=r"standard error -0.01 at row 1 \(cell 'm1/d2/s'"):
        meta_table(table.assign(se=table["se"].where(table.index != 1, -0.01)))
