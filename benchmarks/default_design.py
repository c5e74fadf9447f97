"""What each design that fits the default study's budget (six cells, about 15 minutes on 2 cores) could detect;
prints JSON. The numbers behind the README's choice of the default design.

For each design: the strategy claims in the report's family (strategies other than Random Shuffle × 3 test sets
× 3 metrics), the run-unit test's degrees of freedom and its minimal detectable accuracy difference at 80 %
power and α divided by the family (:func:`hils_kit.stats.runs.run_mde`), and the runs a 2-point difference needs.
With one run per strategy the only claims are about the trained models: their exact-McNemar MDE is given instead.

The variance components: a run-to-run sd of 3 accuracy points (the kit's documented default, the middle of the
2–4 points of the literature), a per-answer residual of 0.2 (share², 2,000 points²: a run flips a fifth of its
answers' chances) and a discordance of 0.35 between two models, as in the default study's report.

    python benchmarks/default_design.py
"""

from __future__ import annotations

import json

from hils_kit.stats.power import mde_mcnemar_exact
from hils_kit.stats.runs import Components, run_mde, runs_needed

QUESTIONS, TEST_SETS, METRICS, ALPHA = 60, 3, 3, 0.05
COMPONENTS = Components(question=0.0, run=3.0**2, question_by_strategy=0.0, residual=2000.0, run_df=0)
DISCORDANCE = 0.35
DESIGNS = [(6, 1), (3, 2), (2, 3)]  # strategies × runs = 6 cells


def design_row(strategies: int, runs: int, claims: int, questions: int) -> dict:
    """What a design of ``strategies`` × ``runs`` cells with ``claims`` strategy claims per test set and metric
    could detect on ``questions`` test questions: the run-unit t-test's MDE, or with one run the exact McNemar MDE
    about the trained models, and the runs a 2-point difference needs."""
    family = claims * TEST_SETS * METRICS
    level = ALPHA / family
    row = {"strategies": strategies, "runs_per_strategy": runs, "cells": strategies * runs, "family": family}
    if runs == 1:
        row["strategy_claims"] = "none: strategy and run confounded"
        row["mde_models_points"] = round(100 * mde_mcnemar_exact(DISCORDANCE, questions, level), 1)
    else:
        row["df"] = 2 * runs - 2
        row["mde_strategy_points"] = round(run_mde(COMPONENTS, runs, questions, level), 1)
    row["runs_needed_2pt"] = runs_needed(2.0, COMPONENTS, questions, level)
    return row


def main() -> None:
    rows = []
    for strategies, runs in DESIGNS:
        row = design_row(strategies, runs, strategies - 1, QUESTIONS)
        row["runs_needed_2pt_60q"] = row.pop("runs_needed_2pt")
        row["runs_needed_2pt_1000q"] = design_row(strategies, runs, strategies - 1, 1000)["runs_needed_2pt"]
        rows.append(row)
    print(
        json.dumps({"questions_per_test_set": QUESTIONS, "components": COMPONENTS.as_dict(), "designs": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
