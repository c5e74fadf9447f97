"""Strategy comparisons from a long predictions frame: bad files refused with their line and column, the
run-unit estimate and p-value against scipy, the family's corrections against statsmodels, one run per
strategy labelled as a comparison of trained models, a comparison shared by two scenarios tested once, and the
power columns against the power functions they come from."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hils_kit.analyse.comparisons import MODEL_CLAIM, STRATEGY_CLAIM, compare_strategies
from hils_kit.analyse.findings import claims, detectable, power_view
from hils_kit.analyse.predictions import check_predictions, read_long_predictions
from hils_kit.stats.runs import Components, run_power
from hils_kit.stats.simulate import simulate_predictions

HEADER = "dataset,strategy,run,question,correct"


def _write(tmp_path, text: str, name: str = "long.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _refusal(path) -> str:
    with pytest.raises(ValueError) as caught:
        read_long_predictions(path)
    return str(caught.value)


def _run_accuracies(frame: pd.DataFrame, strategy: str, dataset: str | None = None) -> np.ndarray:
    rows = frame[(frame["strategy"] == strategy) & ((frame["dataset"] == dataset) if dataset else True)]
    return rows.groupby("run")["correct"].mean().to_numpy()


def _components(row) -> Components:
    return Components(row.var_question, row.var_run, row.var_question_by_strategy, row.var_residual, 1)


# -- bad files: one clear error naming the file, the line (header = 1) and the column -------------------------


def test_a_missing_column_is_named_on_the_header_line(tmp_path):
    path = _write(tmp_path, "dataset,strategy,run,question\nd,random,r1,q1\n")
    message = _refusal(path)
    assert message.startswith(f"{path}, line 1: missing column(s) correct")


def test_a_run_id_under_two_strategies_is_refused_at_its_second_strategy(tmp_path):
    text = f"{HEADER}\nd,random,r1,q1,1\nd,random,r1,q2,0\nd,blocked,r1,q3,1\n"
    message = _refusal(_write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'long.csv'}, line 4, column 'run': run 'r1'")
    assert "strategy 'random' (line 2) and strategy 'blocked'" in message


def test_a_question_answered_twice_by_one_run_on_one_test_set_is_refused(tmp_path):
    text = f"{HEADER}\nd,random,r1,q1,1\nd,random,r1,q2,0\nd,random,r1,q1,1\n"
    message = _refusal(_write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'long.csv'}, line 4, column 'question': question 'q1' of run 'r1'")
    assert "first at line 2" in message


def test_the_same_question_id_on_two_test_sets_is_not_a_duplicate(tmp_path):
    frame = read_long_predictions(_write(tmp_path, f"{HEADER}\nd,random,r1,q1,1\ne,random,r1,q1,0\n"))
    assert frame["correct"].tolist() == [1, 0]


@pytest.mark.parametrize(("value", "shown"), [("2", "2"), ("yes", "'yes'"), ("0.5", "0.5")])
def test_a_correct_that_is_not_0_or_1_is_refused_on_its_line(tmp_path, value, shown):
    text = f"{HEADER}\nd,random,r1,q1,1\nd,random,r1,q2,0\nd,random,r1,q3,{value}\n"
    message = _refusal(_write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'long.csv'}, line 4, column 'correct': ")
    assert shown in message and "is not 0/1" in message


def test_true_false_and_float_ones_are_read_as_correct():
    frame = pd.DataFrame({"dataset": "d", "strategy": "a", "run": "r", "question": [1, 2, 3, 4], "correct": 0})
    frame["correct"] = pd.Series(["True", "false", "1", "0"], dtype=object)
    assert check_predictions(frame)["correct"].tolist() == [1, 0, 1, 0]
    frame["correct"] = [1.0, 0.0, True, False]
    assert check_predictions(frame)["correct"].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("value", ["abc", "", "inf"])
def test_a_gold_logprob_that_is_not_a_finite_number_is_refused_on_its_line(tmp_path, value):
    text = f"{HEADER},gold_logprob\nd,random,r1,q1,1,-0.2\nd,random,r1,q2,0,{value}\nd,random,r1,q3,0,-1.5\n"
    message = _refusal(_write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'long.csv'}, line 3, column 'gold_logprob': ")
    assert "is not a finite number" in message


def test_each_bad_file_gives_exactly_one_error_with_the_first_bad_line(tmp_path):
    text = f"{HEADER}\nd,random,r1,q1,1\nd,random,r1,q2,7\nd,random,r1,q3,8\n"
    message = _refusal(_write(tmp_path, text))
    assert "line 3" in message and "line 4" not in message and message.count("\n") == 0


def test_a_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="no predictions file nowhere.csv"):
        read_long_predictions("nowhere.csv")


# -- the comparison table -------------------------------------------------------------------------------------


def test_three_runs_give_one_row_per_strategy_test_set_and_metric_against_the_baseline():
    frame = pd.concat(
        [
            simulate_predictions(["random", "curriculum", "blocked"], runs=3, questions=120, dataset=name, seed=i)
            for i, name in enumerate(["medqa", "lek"])
        ]
    )
    table = compare_strategies(frame).table
    keys = table[["dataset", "strategy", "metric"]].apply(tuple, axis=1)
    assert sorted(keys) == sorted(
        (d, s, m) for d in ("medqa", "lek") for s in ("curriculum", "blocked") for m in ("accuracy", "gold log-prob")
    )
    assert (table["baseline"] == "random").all() and (table["claim"] == STRATEGY_CLAIM).all()
    assert (table["runs"] == 3).all() and (table["baseline_runs"] == 3).all() and (table["n_questions"] == 120).all()
    for row in table[table["metric"] == "accuracy"].itertuples():
        mine = frame[(frame["dataset"] == row.dataset) & (frame["strategy"] == row.strategy)]["correct"].mean()
        base = frame[(frame["dataset"] == row.dataset) & (frame["strategy"] == "random")]["correct"].mean()
        assert row.estimate == pytest.approx(100 * (mine - base))
        assert row.ci_low < row.estimate < row.ci_high


def test_without_question_by_strategy_variance_the_p_value_is_scipys_t_test_on_run_accuracies():
    frame = simulate_predictions(["random", "curriculum", "blocked"], runs=3, questions=150, seed=0)
    table = compare_strategies(frame).table
    plain = table[(table["metric"] == "accuracy") & (table["var_question_by_strategy"] == 0)]
    assert len(plain) == 2  # the precondition of the relation holds on this seed
    for row in plain.itertuples():
        reference = stats.ttest_ind(_run_accuracies(frame, row.strategy), _run_accuracies(frame, "random"))
        assert row.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        assert row.df == pytest.approx(4)
        assert row.estimate / row.se == pytest.approx(reference.statistic, rel=1e-9)


def test_with_question_by_strategy_variance_the_p_value_is_larger_than_the_run_means_t_test():
    frame = simulate_predictions(["random", "curriculum", "blocked"], runs=3, questions=150, seed=0)
    table = compare_strategies(frame).table
    logprob = table[table["metric"] == "gold log-prob"]
    assert (logprob["var_question_by_strategy"] > 0).all()
    for row in logprob.itertuples():
        runs = frame.groupby(["strategy", "run"])["gold_logprob"].mean()
        reference = stats.ttest_ind(runs[row.strategy], runs["random"])
        assert row.estimate == pytest.approx(runs[row.strategy].mean() - runs["random"].mean())
        assert row.p_value > reference.pvalue  # the question term widens the interval


def test_holm_and_benjamini_hochberg_correct_all_strategy_rows_as_one_family():
    frame = pd.concat(
        [
            simulate_predictions(
                ["random", "curriculum", "blocked"],
                runs=3,
                questions=200,
                effects={"curriculum": 0.4},
                dataset=name,
                seed=i,
            )
            for i, name in enumerate(["medqa", "lek"])
        ]
    )
    table = compare_strategies(frame).table
    assert len(table) == 8 and (table["family_size"] == 8).all()
    assert table["p_holm"].to_numpy() == pytest.approx(multipletests(table["p_value"], method="holm")[1])
    assert table["p_bh"].to_numpy() == pytest.approx(multipletests(table["p_value"], method="fdr_bh")[1])
    assert (table["significant_holm"] == (table["p_holm"] <= 0.05)).all()
    assert (table["p_holm"] >= table["p_value"]).all()


# -- one run per strategy: a comparison of the trained models only --------------------------------------------


def test_one_run_per_strategy_compares_the_trained_models_with_an_exact_mcnemar_test():
    frame = simulate_predictions(["random", "curriculum"], runs=1, questions=150, seed=0)
    result = compare_strategies(frame)
    row = result.table[result.table["metric"] == "accuracy"].iloc[0]
    assert row.claim == MODEL_CLAIM == "these trained models"
    assert math.isnan(row.p_value) and math.isnan(row.se) and math.isnan(row.mde)
    mine = frame[frame["strategy"] == "curriculum"].sort_values("question")["correct"].to_numpy()
    base = frame[frame["strategy"] == "random"].sort_values("question")["correct"].to_numpy()
    only_mine, only_base = int(((mine == 1) & (base == 0)).sum()), int(((mine == 0) & (base == 1)).sum())
    assert only_mine + only_base > 0
    assert row.p_models == pytest.approx(stats.binomtest(only_mine, only_mine + only_base, 0.5).pvalue)
    assert row.discordance == pytest.approx((only_mine + only_base) / 150)
    assert row.test_models == "McNemar exact"
    assert math.isfinite(row.mde_models) and 0 < row.mde_models < 100
    assert any("confounded" in note for note in result.notes)
    sentences = detectable(result.table)
    assert len(sentences) == 1 and "confounded" in sentences[0]
    assert f"{row.mde_models:.1f} accuracy points" in sentences[0]


def test_one_run_beside_several_baseline_runs_is_a_strategy_claim_without_an_mde():
    frame = pd.concat(
        [
            simulate_predictions(["random"], runs=3, questions=100, seed=1),
            simulate_predictions(["curriculum"], runs=1, questions=100, seed=1).assign(run="curriculum-solo"),
        ]
    )
    row = compare_strategies(frame).table.query("metric == 'accuracy'").iloc[0]
    assert row.claim == STRATEGY_CLAIM and math.isfinite(row.p_value)
    assert row.runs == 1 and row.baseline_runs == 3 and math.isnan(row.mde)


# -- a comparison shared by two scenarios ----------------------------------------------------------------------


def test_a_comparison_shared_by_two_scenarios_is_tested_once():
    shared = simulate_predictions(["random", "blocked"], runs=3, questions=100, seed=2)
    human = simulate_predictions(["curriculum"], runs=3, questions=100, seed=3)
    llm = simulate_predictions(["curriculum"], runs=3, questions=100, seed=4)
    llm["run"] = "llm-" + llm["run"]
    frame = pd.concat(
        [
            shared.assign(scenario="human"),
            human.assign(scenario="human"),
            shared.assign(scenario="llm"),
            llm.assign(scenario="llm"),
        ]
    )
    table = compare_strategies(frame).table
    accuracy = table[table["metric"] == "accuracy"]
    blocked = accuracy[accuracy["strategy"] == "blocked"]
    assert len(blocked) == 1
    assert blocked.iloc[0]["scenario"] == "human" and blocked.iloc[0]["also_in"] == "llm"
    curriculum = accuracy[accuracy["strategy"] == "curriculum"]
    assert sorted(curriculum["scenario"]) == ["human", "llm"] and (curriculum["also_in"] == "").all()
    # 3 distinct comparisons × 2 metrics, not 4 × 2
    assert len(table) == 6 and (table["family_size"] == 6).all()
    assert table["p_holm"].to_numpy() == pytest.approx(multipletests(table["p_value"], method="holm")[1])


# -- refusals --------------------------------------------------------------------------------------------------


def test_a_missing_baseline_is_refused_naming_the_strategies_present():
    frame = simulate_predictions(["curriculum", "blocked"], runs=2, questions=40)
    with pytest.raises(ValueError, match=r"baseline strategy 'random' \(strategies: blocked, curriculum\)"):
        compare_strategies(frame)


def test_strategies_answering_different_questions_are_refused():
    frame = simulate_predictions(["random", "curriculum"], runs=2, questions=40)
    frame.loc[frame["strategy"] == "curriculum", "question"] += 1000
    with pytest.raises(ValueError, match="every run of curriculum and random must answer the same questions"):
        compare_strategies(frame)


def test_a_run_missing_a_question_is_refused():
    frame = simulate_predictions(["random", "curriculum"], runs=2, questions=40)
    frame = frame.drop(frame.index[(frame["run"] == "curriculum-1") & (frame["question"] == 7)])
    with pytest.raises(ValueError, match="same questions"):
        compare_strategies(frame)


# -- power -----------------------------------------------------------------------------------------------------


def test_the_mde_of_a_three_run_design_has_80_percent_power_at_alpha_over_the_family():
    frame = simulate_predictions(["random", "curriculum", "blocked"], runs=3, questions=150, seed=5)
    table = compare_strategies(frame).table
    accuracy = table[table["metric"] == "accuracy"]
    assert len(accuracy) == 2
    for row in accuracy.itertuples():
        assert math.isfinite(row.mde) and row.mde > 0
        level = 0.05 / row.family_size
        assert row.family_size == 4
        assert run_power(row.mde, _components(row), 3, row.n_questions, level) == pytest.approx(0.8, abs=1e-4)
        # at α not divided by the family the same design detects less
        assert run_power(row.mde, _components(row), 3, row.n_questions, 0.05) > 0.85


def test_runs_needed_is_the_smallest_number_of_runs_reaching_the_power():
    frame = simulate_predictions(["random", "curriculum"], runs=3, questions=150, seed=6)
    table = compare_strategies(frame, target_points=5.0).table
    row = table[table["metric"] == "accuracy"].iloc[0]
    need, level = row.runs_needed, 0.05 / row.family_size
    assert need == math.inf or (float(need).is_integer() and need >= 2)
    assert math.isfinite(need)  # 5 points on these components
    need = int(need)
    assert run_power(5.0, _components(row), need, 150, level) >= 0.8
    if need > 2:
        assert run_power(5.0, _components(row), need - 1, 150, level) < 0.8
    view = power_view(table)
    assert (view["runs_needed"] == need).all() and "gold log-prob" not in set(view["metric"])


def test_runs_needed_is_inf_when_the_question_term_alone_hides_the_target():
    frame = simulate_predictions(["random", "curriculum"], runs=3, questions=150, seed=2)
    table = compare_strategies(frame, target_points=1.0).table
    row = table[table["metric"] == "accuracy"].iloc[0]
    # the question × strategy term puts a floor of sqrt(var / n) under the standard error at any number of runs
    assert math.sqrt(row.var_question_by_strategy / 150) > 0.5
    assert row.runs_needed == math.inf
    assert run_power(1.0, _components(row), 10_000, 150, 0.05 / row.family_size) < 0.8


# -- claims in sentences ---------------------------------------------------------------------------------------


def test_no_strategy_claim_survives_on_a_null_simulation():
    frame = simulate_predictions(["random", "curriculum", "blocked"], runs=3, questions=150, seed=0)
    table = compare_strategies(frame).table
    assert not table["significant_holm"].any()
    lines = claims(table)
    assert len(lines) == 1 and lines[0].startswith("No strategy claim survives Holm's correction over the family of 4")


def test_a_big_planted_effect_is_claimed_for_the_strategies():
    frame = simulate_predictions(["random", "curriculum"], runs=4, questions=300, effects={"curriculum": 1.5}, seed=0)
    table = compare_strategies(frame).table
    lines = claims(table)
    held = [line for line in lines if line.startswith("Strategies:")]
    assert held and any("accuracy" in line for line in held)
    assert all("(4 vs 4 runs)" in line for line in held)
    accuracy = table[table["metric"] == "accuracy"].iloc[0]
    assert accuracy.significant_holm and accuracy.estimate > 20
