"""The analysis of a study run as ``04_analysis`` shows it and the report lists it.

:func:`analyse_study` computes every table, figure and test of a run from its cells (:mod:`hils_kit.analyse.collect`, :mod:`~hils_kit.analyse.tables`, :mod:`~hils_kit.analyse.paired`),
writes each under its artefact name (:func:`hils_kit.core.layout.artefact_path`) and records them in
``artefacts.json`` in the order the report shows them, so the index page never guesses file names.

>>> result = analyse_study("runs/default", "runs/default/analysis")         # doctest: +SKIP
>>> show(result, "tables")                                                 # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hils_kit.analyse.answers import answers
from hils_kit.analyse.collect import collect_results, scenario_cells
from hils_kit.analyse.comparisons import RUN_SD_POINTS, compare_strategies, placebo_comparisons
from hils_kit.analyse.findings import claims, comparisons_view, detectable, power_view
from hils_kit.analyse.forgetting import forgetting_by_strategy, plot_forgetting, study_forgetting
from hils_kit.analyse.paired import gain_intervals
from hils_kit.analyse.plots import plot_gains, plot_label_sources, plot_strategy_table
from hils_kit.analyse.predictions import study_predictions
from hils_kit.analyse.table_views import read_table, view_html, views
from hils_kit.analyse.tables import accuracy_spread, best_gains, label_source_deltas, strategy_table, win_counts
from hils_kit.core.layout import ARTEFACT_INDEX, artefact_path, artefact_title
from hils_kit.core.paths import write_text_atomic
from hils_kit.order.letter_prior import gains_track_letters, letter_prior_table
from hils_kit.order.registry import (
    BASELINE,
    BASELINE_NAME,
    CURRICULUM_STRATEGIES,
    PLACEBOS,
    matched_twin,
    paper_order,
    strategy_name,
)
from hils_kit.stats.family import is_p_column
from hils_kit.train.learning_curve import plot_curves, read_curves


@dataclass
class Item:
    """One artefact: its kind, scenario, caption, the object shown in the notebook and its file."""

    kind: str
    scenario: str
    title: str
    value: object
    path: Path


@dataclass
class StudyAnalysis:
    """What :func:`analyse_study` found: the long results frame, the tables by scenario and every artefact."""

    long: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    items: list[Item] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # what the study can and cannot say, first in the report
    out_dir: Path | None = None  # where the artefacts went
    alpha: float = 0.05  # the family-wise error rate of the strategy claims

    def section(self, *kinds: str) -> list[Item]:
        """The artefacts of these kinds, in the order they were made."""
        return [item for item in self.items if item.kind in kinds]

    @property
    def summary(self) -> str:
        """One line on what was analysed."""
        long = self.long
        level = long["level"] if "level" in long else pd.Series("cell", index=long.index)
        cells = long.loc[level != "pooled", "cell_id"].nunique()
        missing = long.attrs.get("missing_cells", [])
        return (
            f"{cells} cells, {long['dataset'].nunique()} test sets, scenarios: {', '.join(self.tables)}"
            + (f"; {(level == 'pooled').sum()} k-fold figures pooled over folds" if (level == "pooled").any() else "")
            + (f"; cells without results: {', '.join(missing)}" if missing else "")
        )


SECTIONS = {  # notebook section -> artefact kinds
    "tables": ("table", "table_plot", "spread"),
    "gains": ("best_gains", "gains_plot", "power"),
    "wins": ("wins",),
    "curves": ("learning_curves",),
    "forgetting": ("forgetting", "forgetting_plot"),
    "label_sources": ("label_sources", "label_sources_plot"),
    "tests": ("comparisons", "placebo", "matched", "variance_components", "meta_analysis", "seed_spread"),
    "letters": ("letter_prior",),
    "audit": ("audit", "overlap"),
}


def analyse_study(
    run_dir: str | Path,
    out_dir: str | Path,
    difficulty_models: list[str] = (),
    alpha: float = 0.05,
    run_sd_points: float = RUN_SD_POINTS,
    target_points: float = 2.0,
) -> StudyAnalysis:
    """Analyse the cells of ``run_dir`` and write every artefact into ``out_dir`` (see the module docstring).

    ``difficulty_models``: the models that scored the LLM difficulty; the findings say so when one of them is
    also a fine-tuned model (the paper chose other models to keep the labels free of that bias). ``alpha``,
    ``run_sd_points`` (the run-to-run sd assumed where a strategy has one run) and ``target_points`` (the
    difference the power figures plan for) go to :func:`hils_kit.analyse.comparisons.compare_strategies`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    long = collect_results(run_dir)
    scenarios = sorted(set(long["scenario"]) - {"none"}) or ["none"]
    tables = {scenario: strategy_table(long, scenario) for scenario in scenarios}
    result = StudyAnalysis(long, tables, out_dir=out_dir, alpha=alpha)

    def add(kind: str, value, scenario: str = "") -> None:
        path = artefact_path(out_dir, kind, scenario)
        if isinstance(value, pd.DataFrame):  # p-values unrounded: one below the display precision is never 0
            rounded = [c for c in value.select_dtypes("number") if not is_p_column(c)]
            write_text_atomic(path, value.round(dict.fromkeys(rounded, 4)).to_csv())
        else:
            value.savefig(path, dpi=120, bbox_inches="tight")
        result.items.append(Item(kind, scenario, artefact_title(kind, scenario), value, path))

    for scenario, table in tables.items():
        add("table", table.round(2), scenario)
        add("table_plot", plot_strategy_table(table, title=artefact_title("table", scenario)), scenario)
        add("spread", accuracy_spread(long, scenario).round(2), scenario)
    strategies = sorted({name for table in tables.values() for name in table.index})
    several = len(strategies) > 1  # every comparison needs a second strategy
    compared = [scenario for scenario, table in tables.items() if several and BASELINE_NAME in table.index]
    if not several:
        result.findings.append(
            f"One strategy ({strategies[0]}): comparisons (gains, wins, paired tests, power) need a second strategy."
        )
    elif len(compared) < len(tables):
        result.findings.append(
            f"No {BASELINE_NAME} cells in scenario(s) {', '.join(sorted(set(tables) - set(compared)))}:"
            " gains, paired tests and power need them, so they are left out."
        )
    for scenario in compared:
        add("best_gains", best_gains(tables[scenario]).per_column.round(2), scenario)
        add(
            "gains_plot",
            plot_gains(gain_intervals(long, scenario), title=artefact_title("gains_plot", scenario)),
            scenario,
        )
    comparisons = None
    if compared:  # the run as the unit; what the study could have detected, beside the gains
        comparisons = compare_strategies(
            study_predictions(long, compared), BASELINE, alpha, target_points=target_points, run_sd=run_sd_points
        )
        add("power", power_view(comparisons.table))
        result.findings[:0] = [*detectable(comparisons.table), *comparisons.notes, *claims(comparisons.table)]
    if several:
        add("wins", win_counts(list(tables.values())))
    for scenario in scenarios:
        curves = learning_curves(long, scenario)
        if not curves.empty:
            add("learning_curves", plot_curves(curves, title=f"learning curves, {scenario} labels"), scenario)
    forgetting = study_forgetting(long)
    if not forgetting.empty:  # per-question learning and forgetting on the training probe
        by_strategy = forgetting_by_strategy(forgetting).reindex(paper_order(forgetting["strategy"]))
        add("forgetting", by_strategy.round(3))
        add("forgetting_plot", plot_forgetting(by_strategy, title="Forgetting"))
    if {"human", "llm"} <= set(tables):  # the curricula run with both label sources (a study may run some)
        both = [s for s in CURRICULUM_STRATEGIES if all(strategy_name(s) in tables[k].index for k in tables)]
        if both:
            add("label_sources", label_source_deltas(tables["human"], tables["llm"], both).round(2))
        if both and {"human", "llm"} <= set(compared):  # the plot shows gains over Random Shuffle
            add("label_sources_plot", plot_label_sources(tables["human"], tables["llm"], strategies=both))
    if comparisons is not None:
        add("comparisons", comparisons_view(comparisons.table))
        add("variance_components", comparisons.components.set_index(["scenario", "model", "dataset", "strategy"]))
        add("meta_analysis", comparisons.meta.set_index(["strategy", "metric"]))
        if not comparisons.seeds.empty:
            add("seed_spread", comparisons.seeds.set_index(["scenario", "model", "dataset", "strategy"]))
    if set(PLACEBOS) & set(long["strategy"]):  # what the labels add beyond the shape of their schedule
        placebo = placebo_comparisons(study_predictions(long, list(tables)), alpha)
        if not placebo.empty:
            add("placebo", placebo.set_index(["scenario", "model", "dataset", "strategy", "metric"]))
    if any(matched_twin(s) in set(long["strategy"]) for s in set(long["strategy"])):  # at equal compute
        matched = placebo_comparisons(study_predictions(long, list(tables)), alpha, twin=matched_twin)
        if not matched.empty:
            add("matched", matched.set_index(["scenario", "model", "dataset", "strategy", "metric"]))
    same = sorted(set(difficulty_models) & set(long["model"]))
    if same:
        result.findings.append(
            f"The LLM difficulty labels were scored by {', '.join(same)}, the model being "
            "fine-tuned; the paper scored with other models to keep its labels free of that bias."
        )
    letters = letter_prior_table(long)
    if not letters.empty:
        add("letter_prior", letters.set_index("cell_id").round(3))
        if several:  # whether the gains over Random Shuffle follow the letter mix
            result.findings.append("Letter prior: " + gains_track_letters(letters)["verdict"] + ".")
    add("audit", training_audit(long))
    add("overlap", overlap_table(long))
    index = {
        "findings": result.findings,
        "artefacts": [
            {"kind": i.kind, "scenario": i.scenario, "title": i.title, "file": i.path.name} for i in result.items
        ],
    }
    write_text_atomic(out_dir / ARTEFACT_INDEX, json.dumps(index, indent=1))
    return result


def learning_curves(long: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """The learning curves of a scenario's cells (one per trained model), with their strategy's display name."""
    cells = scenario_cells(long, scenario)
    cells = cells[cells.get("level", "cell") == "cell"].drop_duplicates("cell_id")
    curves = read_curves(dict(zip(cells["cell_id"], cells["cell_dir"])))
    if curves.empty:
        return curves
    names = dict(zip(cells["cell_id"], cells["strategy"].map(strategy_name)))
    return curves.assign(strategy=curves["cell_id"].map(names))


def training_audit(long: pd.DataFrame) -> pd.DataFrame:
    """One row per trained cell: did the fed order equal the plan, how many examples it was fed, how long training
    took and what share of it the probe and an adaptive strategy's re-scoring took, and, for a placebo, how its
    shuffled labels correlate with the real ones."""
    cells = long[long.get("level", "cell") != "pooled"].drop_duplicates("cell_id")
    wanted = ("train_audit_ok", "train_n_examples_fed", "train_train_seconds", "train_final_loss")
    audit = cells.set_index("cell_id")[[c for c in wanted if c in cells]]
    for column, keys, name in (
        ("train_probe", ("share_of_training",), "probe_share_of_training"),
        ("train_adaptive", ("rescoring_share_of_training",), "rescoring_share_of_training"),
        ("train_adaptive", ("reviews",), "reviews"),
        ("train_adaptive", ("placebo", "max_abs_rank_r"), "placebo_scores_max_abs_rank_r"),
    ):
        if column in cells:
            records = cells[column].map(lambda record: record if isinstance(record, dict) else {})
            audit[name] = records.map(lambda record, keys=keys: _nested(record, keys)).to_numpy()
    if "train_placebo" in cells:  # a placebo's labels against the real ones (hils_kit.order.placebo)
        records = cells["train_placebo"].map(lambda record: record if isinstance(record, dict) else {}).tolist()
        for key in ("difficulty_rank_r", "category_kappa"):
            audit[f"placebo_{key}"] = [record.get(key) for record in records]
    return audit


def _nested(record: dict, keys: tuple):
    """``record[k1][k2]...``, None where a level is missing."""
    for key in keys:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def overlap_table(long: pd.DataFrame) -> pd.DataFrame:
    """Per test set: its questions and how many the leakage guard dropped before sampling (most over cells)."""
    rows = long[long.get("level", "cell") != "fold"]
    dropped = rows["overlap_dropped"] if "overlap_dropped" in rows else pd.Series(0, index=rows.index)
    rows = rows.assign(overlap_dropped=dropped.fillna(0).astype(int), n=rows["n"] if "n" in rows else pd.NA)
    return rows.groupby("dataset", sort=False).agg(questions=("n", "max"), overlap_dropped=("overlap_dropped", "max"))


def show(result: StudyAnalysis, section: str) -> None:
    """Display a notebook section's artefacts: figures, and tables as the study index shows them (at most 8 columns,
    units in the headers, what every row shares in the caption: :func:`hils_kit.analyse.table_views.views`).
    ``"findings"`` shows the answers per test set (:func:`hils_kit.analyse.answers.answers`), then what the study can
    and cannot tell."""
    from IPython.display import HTML, Markdown, display

    if section == "findings":
        strategies = sorted(set(result.long["strategy"])) if "strategy" in result.long else []
        found = answers(result.out_dir, strategies, result.alpha) if result.out_dir else None
        if found is not None:
            display(Markdown("\n".join(f"- {line}" for line in found.verdicts)))
            for view in found.views:
                display(HTML(view_html(view, f"Each strategy against {BASELINE_NAME}, accuracy")))
        display(Markdown("\n".join(f"- {line}" for line in result.findings) or "(no findings)"))
        return
    for item in result.section(*SECTIONS[section]):
        if isinstance(item.value, pd.DataFrame):
            for i, view in enumerate(views(item.kind, read_table(item.path))):
                display(HTML(view_html(view, item.title + (" (continued)" if i else ""))))
        else:
            display(Markdown(f"**{item.title}**"))
            display(item.value)
