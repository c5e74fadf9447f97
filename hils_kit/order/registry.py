"""The strategy registry: every training order by key, with its display name, the labels it needs, whether the
paper ran it, and its function (:mod:`hils_kit.order.strategies`).

Every structured strategy (one that uses labels) has a placebo twin, ``<key>_placebo``: the same function on labels
shuffled among the questions (:mod:`hils_kit.order.placebo`), so the schedule keeps its shape and loses its meaning.
An adaptive strategy (decided during training from the model's losses, :mod:`hils_kit.order.adaptive`) has one too:
its scores are shuffled among the questions at every re-scoring.

The study's validation, the notebooks, the analysis and the report read this registry; a new strategy plugs in
with one line in :data:`STRATEGY`. No other module compares strategy names.

>>> STRATEGY["blocked_curriculum"].name, strategy_name("random"), strategy_key("Interleaved")
('Blocked Curriculum', 'Random Shuffle', 'interleaved')
>>> strategy_scenarios("blocked", ["llm", "llm_clusters"])
['none', 'llm_clusters']
>>> strategy_name("curriculum_placebo"), placebo_twin("curriculum"), placebo_twin("random")
('Curriculum (placebo)', 'curriculum_placebo', None)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hils_kit.labels.scenarios import SCENARIO
from hils_kit.order import strategies


@dataclass(frozen=True)
class Strategy:
    """A training order: its key, display name, the labels it uses, whether the paper ran it, its function, and
    whether the ordering seed can change its order; a placebo names the strategy it is the twin of.

    Every strategy of the kit is ``seeded``: each shuffles, or breaks ties of equal difficulty in a seeded random
    order (strict ``curriculum`` too). An order no seed can change sets ``seeded=False``; a study with crossed
    seeds then runs it with one ordering seed (:func:`hils_kit.study.cells.order_uses_seed`).
    """

    key: str
    name: str
    uses_category: bool
    uses_difficulty: bool
    order: Callable[[strategies.Keys], strategies.Ordering]
    in_paper: bool = True
    seeded: bool = True
    placebo_of: str | None = None
    adaptive: bool = False  # decided during training from the model's losses (hils_kit.order.adaptive)
    matched_by: str | None = None  # the strategy with its number of examples, for comparisons at equal compute
    extra_examples: bool = False  # shows review_budget x the questions more than one epoch


def _placebo(real: Strategy) -> Strategy:
    """The twin of ``real``: its function and labels, the labels shuffled (the seed always changes the shuffle)."""
    return Strategy(
        f"{real.key}_placebo",
        f"{real.name} (placebo)",
        real.uses_category,
        real.uses_difficulty,
        real.order,
        in_paper=False,
        placebo_of=real.key,
        adaptive=real.adaptive,
        matched_by=real.matched_by,
        extra_examples=real.extra_examples,
    )


_REAL: dict[str, Strategy] = {
    s.key: s
    for s in (  # in the paper's row order; a new strategy is one line here and one function in strategies.py
        Strategy("random", "Random Shuffle", False, False, strategies.random),
        Strategy("curriculum", "Curriculum", False, True, strategies.curriculum),
        Strategy("blocked", "Blocked", True, False, strategies.blocked),
        Strategy("blocked_curriculum", "Blocked Curriculum", True, True, strategies.blocked_curriculum),
        Strategy("interleaved", "Interleaved", True, False, strategies.interleaved),
        Strategy("interleaved_curriculum", "Interleaved Curriculum", True, True, strategies.interleaved_curriculum),
        Strategy("anti_curriculum", "Anti-Curriculum", False, True, strategies.anti_curriculum, in_paper=False),
        # beyond the paper: a competence schedule planned in advance, and schedules decided during training
        Strategy("competence", "Competence", False, True, strategies.competence, in_paper=False),
        Strategy("self_paced", "Self-Paced", False, False, strategies.random, in_paper=False, adaptive=True),
        Strategy(
            "spaced_repetition",
            "Spaced Repetition",
            False,
            False,
            strategies.random,
            in_paper=False,
            adaptive=True,
            matched_by="random_matched",
            extra_examples=True,
        ),
        Strategy(
            "random_matched",
            "Random Shuffle (matched)",
            False,
            False,
            strategies.random_matched,
            in_paper=False,
            extra_examples=True,
        ),
    )
}
STRATEGY: dict[str, Strategy] = {
    **_REAL,
    **{twin.key: twin for twin in map(_placebo, _REAL.values()) if twin.uses_category or twin.uses_difficulty},
    **{twin.key: twin for twin in map(_placebo, _REAL.values()) if twin.adaptive},
}
STRATEGIES = tuple(STRATEGY)
PLACEBOS = tuple(k for k, s in STRATEGY.items() if s.placebo_of)
PAPER_STRATEGIES = tuple(k for k, s in STRATEGY.items() if s.in_paper)
NEEDS_CATEGORY = tuple(k for k, s in STRATEGY.items() if s.uses_category)
NEEDS_DIFFICULTY = tuple(k for k, s in STRATEGY.items() if s.uses_difficulty)
CURRICULUM_STRATEGIES = tuple(k for k in NEEDS_DIFFICULTY if STRATEGY[k].in_paper)
ADAPTIVE = tuple(k for k, s in STRATEGY.items() if s.adaptive)
BASELINE = "random"  # the key every gain is measured against; tables show its display name
BASELINE_NAME = STRATEGY[BASELINE].name


def placebo_twin(key: str) -> str | None:
    """The key of a strategy's placebo twin; None for one that uses no labels or losses (``random``) or is a
    placebo."""
    return next((k for k, s in STRATEGY.items() if s.placebo_of == key), None)


def matched_twin(key: str) -> str | None:
    """The strategy fed as many examples as ``key`` for comparisons at equal compute (``random_matched`` for
    ``spaced_repetition``); None for a strategy of one epoch."""
    return STRATEGY[key].matched_by if key in STRATEGY else None


def strategy_name(key: str) -> str:
    """Display name of a strategy key; a name (or an unknown key) passes through."""
    return STRATEGY[key].name if key in STRATEGY else key


def strategy_key(name: str) -> str:
    """The key of a strategy display name; a key passes through."""
    return next((k for k, s in STRATEGY.items() if s.name == name), name)


def paper_order(names) -> list[str]:
    """Display names in the paper's row order, then any others in order of appearance."""
    names = list(dict.fromkeys(names))
    known = [s.name for s in STRATEGY.values() if s.name in names]
    return known + [n for n in names if n not in known]


def labels_used(strategy: str, scenario: str) -> list[str]:
    """The labels (``difficulty``, ``categories``) a cell's order depends on; an unknown strategy uses both."""
    known = STRATEGY.get(strategy)
    used = [
        label
        for label, flag in (
            ("difficulty", known.uses_difficulty if known else True),
            ("categories", known.uses_category if known else True),
        )
        if flag
    ]
    return [label for label in used if not (scenario == "none" and label == "difficulty")]


def strategy_scenarios(strategy: str, scenarios: list[str]) -> list[str]:
    """The scenarios a strategy runs under: once per distinct set of labels it uses.

    ``random`` uses no labels: once, as ``"none"``. ``blocked`` and ``interleaved`` use only the categories:
    ``"none"`` (the data's categories, shared by the ``human`` and ``llm`` tables) plus each ``*_clusters``
    scenario. Curricula use the difficulty: every scenario.
    """
    info = STRATEGY[strategy]
    if info.uses_difficulty:
        return list(scenarios)
    if info.uses_category:
        clusters = [s for s in scenarios if SCENARIO[s].categories == "clusters"]
        return (["none"] if len(clusters) < len(scenarios) or not scenarios else []) + clusters
    return ["none"]
