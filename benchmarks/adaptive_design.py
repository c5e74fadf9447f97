"""What each design that fits the adaptive study's budget (12 cells, at most 30 minutes on 2 cores) could detect;
prints JSON. The numbers behind the design of ``params/studies/adaptive.yaml``.

The study asks two questions: does a schedule decided during training beat the best order fixed in advance, and is
it the labels (or losses) or the schedule's shape that helps (a strategy against its placebo twin)? Twelve cells
fit the budget. Three ways to spend them:

- ``breadth``: every strategy the question names once (Random Shuffle, Curriculum, Interleaved, Self-Paced,
  Competence, Spaced Repetition, five placebo twins and the Random Shuffle matched to Spaced Repetition's
  examples): one run each, so strategy and run are confounded and the claims are about the trained models
  (exact McNemar on the test questions);
- ``focused``: the two contrasts only (Curriculum, Self-Paced and Self-Paced's placebo), four runs each: the
  run-unit t-test (:func:`hils_kit.stats.runs.run_mde`);
- ``pairs``: six strategies, two runs each.

Each design's family (strategy claims × 3 test sets × 3 metrics) divides α; the variance components and the
computation are those of ``benchmarks/default_design.py`` (run-to-run sd 3 points, per-answer residual 2,000
points², discordance 0.35).

    python benchmarks/adaptive_design.py
"""

from __future__ import annotations

import json

from default_design import COMPONENTS, DISCORDANCE, design_row

DESIGNS = {  # name: (strategies, runs per strategy, strategy claims per test set and metric)
    "breadth": (12, 1, 11 + 5 + 1),  # against Random Shuffle, against each placebo, Spaced Repetition vs matched
    "focused": (3, 4, 2 + 1),  # Self-Paced against Curriculum and against Random Shuffle's stand-in, and its placebo
    "pairs": (6, 2, 5 + 2),
}


def main() -> None:
    designs = [
        {"design": name, "test_questions": questions, **design_row(strategies, runs, claims, questions)}
        for questions in (60, 100, 200)
        for name, (strategies, runs, claims) in DESIGNS.items()
    ]
    print(json.dumps({"components": COMPONENTS.as_dict(), "discordance": DISCORDANCE, "designs": designs}, indent=1))


if __name__ == "__main__":
    main()
