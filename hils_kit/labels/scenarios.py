"""Label scenarios: where a cell's difficulty and its categories come from, and the ``labels.csv`` columns
that hold them.

>>> SCENARIO["llm_clusters"].category_column, scenario_of("gpt4_clusters").difficulty_column
('cluster', 'difficulty_gpt4')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """Where a cell's labels come from: difficulty ``human``/``llm`` (or None) and categories ``human``/``clusters``."""

    name: str
    difficulty: str | None
    categories: str

    @property
    def difficulty_column(self) -> str | None:
        """The column of ``labels.csv`` that orders by difficulty (``difficulty_llm`` ...), None for ``none``."""
        return None if self.difficulty is None else f"difficulty_{self.difficulty}"

    @property
    def category_column(self) -> str:
        """``cluster`` (LLM-defined categories) or the data's own ``category``."""
        return "cluster" if self.categories == "clusters" else "category"


SCENARIO: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("none", None, "human"),  # a strategy that uses no difficulty
        Scenario("human", "human", "human"),  # examinee error rate
        Scenario("llm", "llm", "human"),  # 1 - mean expected accuracy of scoring LLMs
        Scenario("llm_clusters", "llm", "clusters"),  # LLM difficulty, categories from embedding clusters
        Scenario("irt", "irt", "human"),  # item-response-theory difficulty fitted to the scoring LLMs' answers
    )
}
LABEL_SCENARIOS = tuple(name for name in SCENARIO if name != "none")  # what a study lists


def scenario_of(name: str) -> Scenario:
    """The scenario ``name``; a name the kit does not list is read as ``<difficulty source>[_clusters]``."""
    if name in SCENARIO:
        return SCENARIO[name]
    return Scenario(name, name.removesuffix("_clusters"), "clusters" if name.endswith("_clusters") else "human")
