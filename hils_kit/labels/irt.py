"""Item-response-theory (IRT) difficulty: a Rasch/1PL or 2PL logistic model fitted to right/wrong answers.

IRT (Rasch 1960; Lord 1980) puts questions and respondents on one logit scale, P(right) = σ(a·(θ − b)): ``b`` is a
question's difficulty, ``a`` its discrimination, ``θ`` a respondent's ability. PUDF (Meng et al. 2024, arXiv
2408.05326) orders curriculum-learning data by IRT difficulty estimated from LLMs' answers; here the respondents are
the scoring models of ``difficulty_models`` (scenario ``irt``, :func:`hils_kit.stages.prepare.label_questions`).
The estimation is girth's (pure numpy/scipy): see :func:`fit_irt`.

>>> rng = np.random.default_rng(0)
>>> hardness, skill = np.linspace(-3, 3, 60), np.linspace(-2, 2, 8)
>>> right = rng.random((60, 8)) < 1 / (1 + np.exp(hardness[:, None] - skill))
>>> fit = fit_irt(pd.DataFrame(right.astype(int), columns=[f"m{i}" for i in range(8)]))
>>> bool(fit.difficulty.iloc[:20].mean() < 0 < fit.difficulty.iloc[-20:].mean()), fit.ability.idxmax()
(True, 'm7')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MODELS = ("1pl", "2pl")
MIN_RESPONDENTS = 3


@dataclass(frozen=True)
class IrtFit:
    """A fitted IRT model: per-question difficulty and discrimination, per-respondent ability (logit scale)."""

    difficulty: pd.Series  # indexed by question id; higher = harder
    discrimination: pd.Series  # indexed by question id; all 1.0 for the 1pl model
    ability: pd.Series  # indexed by respondent (column of the responses)
    model: str
    n_respondents: int


def fit_irt(responses: pd.DataFrame, model: str = "1pl") -> IrtFit:
    """Fit a Rasch/1PL (``"1pl"``) or 2PL (``"2pl"``) model to a 0/1 table: one row per question, one column per
    respondent.

    ``1pl`` is girth's marginal maximum likelihood (``rasch_mml``: discrimination fixed at 1, abilities integrated
    over a standard normal); ``2pl`` is girth's joint maximum likelihood (``twopl_jml``: discrimination bounded to
    [0.25, 4]), since its 2PL marginal fit took ~50 s on 200 questions and put all-right questions at the hard end.
    Abilities are then the MAP estimates under a standard-normal prior (``ability_map``).

    Questions every respondent got right (or wrong) have no finite maximum-likelihood difficulty: girth bounds
    difficulties to [-6, 6], so they land on the bound, -6 (all right, easiest) or +6 (all wrong, hardest), and
    rank at the easy or hard end without a fake spread among themselves. Respondents with all answers right (wrong)
    are likewise kept finite by the ability prior.
    """
    import girth  # 1 s of imports: only when fitting

    _check(responses, model)
    answers = responses.to_numpy(dtype=int)
    if model == "1pl":
        result = girth.rasch_mml(answers)
    else:
        with np.errstate(divide="ignore"):  # girth's starting values take log(0) for all-right/all-wrong questions
            result = girth.twopl_jml(answers)
    difficulty = np.asarray(result["Difficulty"], dtype=float)
    discrimination = np.asarray(result["Discrimination"], dtype=float) * np.ones_like(difficulty)
    ability = girth.ability_map(answers, difficulty, discrimination)
    return IrtFit(
        difficulty=pd.Series(difficulty, index=responses.index, name="difficulty"),
        discrimination=pd.Series(discrimination, index=responses.index, name="discrimination"),
        ability=pd.Series(ability, index=responses.columns, name="ability"),
        model=model,
        n_respondents=responses.shape[1],
    )


def difficulty_percentile(fit: IrtFit) -> pd.Series:
    """The difficulty as a rank percentile in [0, 1] (0 = easiest, ties share their mean rank), like the kit's
    other difficulty labels."""
    ranks = fit.difficulty.rank(method="average")
    return ((ranks - 1) / max(len(ranks) - 1, 1)).rename("difficulty")


def _check(responses: pd.DataFrame, model: str) -> None:
    """Refuse what IRT cannot fit: an unknown model, too few respondents, no questions, cells other than 0/1."""
    if model not in MODELS:
        raise ValueError(f"unknown IRT model {model!r}: choose one of {', '.join(MODELS)}")
    n = responses.shape[1]
    if n < MIN_RESPONDENTS:
        raise ValueError(
            f"IRT needs at least {MIN_RESPONDENTS} respondents (columns), but {n} were given: add models to "
            "`difficulty_models`"
        )
    if responses.empty:
        raise ValueError("IRT needs at least one question (row); the response table is empty")
    missing = responses.isna().to_numpy()
    bad = missing | ~responses.isin([0, 1]).to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        question, respondent = responses.index[row], responses.columns[col]
        what = "missing" if missing[row, col] else repr(responses.iloc[:, col].tolist()[row])
        raise ValueError(
            f"question {question!r}, respondent {respondent!r}: the answer is {what}; IRT needs every cell to be "
            "0 (wrong) or 1 (right)"
        )
