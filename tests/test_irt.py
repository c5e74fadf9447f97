"""IRT difficulty labels: 1PL and 2PL fits recover simulated difficulties and abilities; bad tables are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from hils_kit.labels.irt import IrtFit, difficulty_percentile, fit_irt

RESPONDENTS = [f"model_{i}" for i in range(12)]


def simulate(n_questions: int, model: str, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Right/wrong answers of 12 respondents (abilities −2…2) to questions of difficulty ~ N(0, 2).

    With 12 respondents a question's sum score has only 13 values, which caps how well any estimator can rank
    difficulties (about 0.92 Spearman here); narrower difficulties or fewer respondents lower that cap.
    """
    rng = np.random.default_rng(seed)
    difficulty, ability = rng.normal(0, 2, n_questions), np.linspace(-2, 2, len(RESPONDENTS))
    discrimination = rng.uniform(0.7, 2.0, n_questions) if model == "2pl" else np.ones(n_questions)
    p_right = 1 / (1 + np.exp(-discrimination[:, None] * (ability - difficulty[:, None])))
    answers = (rng.random(p_right.shape) < p_right).astype(int)
    index = pd.Index([f"q{i}" for i in range(n_questions)], name="id")
    return pd.DataFrame(answers, index=index, columns=RESPONDENTS), difficulty, ability


@pytest.mark.parametrize(("model", "n_questions"), [("1pl", 200), ("2pl", 150)])
def test_the_fit_recovers_simulated_difficulties_and_abilities(model, n_questions):
    responses, difficulty, ability = simulate(n_questions, model)
    fit = fit_irt(responses, model)
    assert isinstance(fit, IrtFit) and fit.model == model and fit.n_respondents == len(RESPONDENTS)
    assert fit.difficulty.index.equals(responses.index) and fit.discrimination.index.equals(responses.index)
    assert list(fit.ability.index) == RESPONDENTS
    assert spearmanr(fit.difficulty, difficulty).statistic >= 0.9
    assert spearmanr(fit.ability, ability).statistic >= 0.8
    if model == "1pl":
        assert (fit.discrimination == 1.0).all()
    else:
        assert (fit.discrimination > 0).all() and fit.discrimination.nunique() > 1


@pytest.mark.parametrize("model", ["1pl", "2pl"])
def test_all_right_and_all_wrong_questions_are_finite_at_the_ends(model):
    responses, _, _ = simulate(40, model, seed=3)
    responses.loc["q0"], responses.loc["q1"] = 1, 0
    fit = fit_irt(responses, model)
    assert np.isfinite(fit.difficulty).all() and np.isfinite(fit.ability).all()
    assert fit.difficulty["q0"] == fit.difficulty.min() and fit.difficulty["q1"] == fit.difficulty.max()
    percentile = difficulty_percentile(fit)
    assert percentile["q0"] < 0.1 and percentile["q1"] > 0.9


def test_difficulty_percentile_is_in_0_1_and_monotone_in_difficulty():
    fit = fit_irt(simulate(60, "1pl", seed=1)[0])
    percentile = difficulty_percentile(fit)
    assert percentile.index.equals(fit.difficulty.index)
    assert percentile.between(0, 1).all()
    order = fit.difficulty.sort_values(kind="stable").index
    assert percentile[order].is_monotonic_increasing
    harder = fit.difficulty.to_numpy()[:, None] > fit.difficulty.to_numpy()
    assert (percentile.to_numpy()[:, None] > percentile.to_numpy())[harder].all()
    untied = pd.Series([0.3, -1.0, 2.0, 0.1], index=["a", "b", "c", "d"])
    fit = IrtFit(untied, untied * 0 + 1.0, pd.Series([0.0, 1.0, 2.0]), "1pl", 3)
    assert difficulty_percentile(fit).tolist() == pytest.approx([2 / 3, 0.0, 1.0, 1 / 3])


def test_fewer_than_three_respondents_are_refused():
    responses = simulate(10, "1pl")[0].iloc[:, :2]
    with pytest.raises(ValueError, match=r"at least 3 respondents.*2 were given.*difficulty_models"):
        fit_irt(responses)


@pytest.mark.parametrize(("cell", "shown"), [(0.5, "0.5"), (np.nan, "missing")])
def test_a_cell_that_is_not_0_or_1_is_refused_by_question_and_respondent(cell, shown):
    responses = simulate(10, "1pl")[0].astype(float)
    responses.loc["q7", "model_4"] = cell
    with pytest.raises(ValueError, match=rf"question 'q7', respondent 'model_4': the answer is {shown}"):
        fit_irt(responses)


def test_an_unknown_model_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown IRT model '3pl'.*1pl, 2pl"):
        fit_irt(simulate(10, "1pl")[0], "3pl")


def test_the_irt_scenario_labels_from_the_answers_of_three_scoring_models(tmp_path):
    import json

    from hils_kit.core.layout import PrepareFiles
    from hils_kit.labels.difficulty import right_column
    from hils_kit.models.tiny import build_tiny_model
    from hils_kit.stages.prepare import label_questions
    from hils_kit.study.config import study_from_dict
    from tests.conftest import make_questions

    models = ["tiny", *(str(build_tiny_model(tmp_path / f"tiny{seed}", seed=seed)) for seed in (1, 2))]
    table = make_questions(30)
    labels = label_questions(table, ["llm", "irt"], tmp_path / "prepare", models, debias=False, precision="fp32")
    files = PrepareFiles(tmp_path / "prepare")
    answers = pd.read_csv(files.llm_difficulty, dtype={"id": str})[[right_column(m) for m in models]]
    assert answers.isin([0, 1]).all().all() and labels["difficulty_irt"].between(0, 1).all()
    expected = difficulty_percentile(fit_irt(answers.set_axis(models, axis=1).set_index(table["id"])))
    assert labels["difficulty_irt"].tolist() == pytest.approx(expected.tolist())
    # fewer right answers, harder: the IRT difficulty follows the count of wrong answers
    wrong = (1 - answers).sum(axis=1).to_numpy()
    assert (labels["difficulty_irt"].to_numpy()[wrong == wrong.max()] >= labels["difficulty_irt"].max() - 1e-9).all()
    record = json.loads(files.irt.read_text())
    assert record["model"] == "1pl" and set(record["respondents"]) == set(models)
    with pytest.raises(ValueError, match=r"needs at least 3 respondents.*has 2"):
        label_questions(table, ["irt"], tmp_path / "two", models[:2], debias=False)
    with pytest.raises(ValueError, match="'irt' fits the answers of at least 3 respondents"):
        study_from_dict({"scenarios": ["irt"], "difficulty_models": ["tiny"]})
