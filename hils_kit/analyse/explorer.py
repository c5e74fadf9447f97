"""A study explorer for JupyterLab: choose a label scenario, a test set, a metric and two strategies A and B of a
finished study, and see (1) the test questions that flipped between them, (2) their learning curves and (3) each
one's score with a 95 % interval, the A − B difference with its interval and the study's own test of it.

:class:`StudyExplorer` computes every view from the run folder as a DataFrame or a Figure, with the kit's loaders
and statistics; :func:`explore_study` puts dropdowns over it that redraw an Output area on every change. In a
notebook the study runner executes (:func:`hils_kit.core.progress.headless`) it shows a static note instead, as the
kit's other widgets do (:mod:`hils_kit.order.widgets`).

>>> explore_study("runs/default")                                          # doctest: +SKIP
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.analyse.collect import POOLED_PART, collect_results
from hils_kit.analyse.comparisons import METRICS
from hils_kit.analyse.predictions import study_predictions
from hils_kit.analyse.report import learning_curves
from hils_kit.analyse.results import read_manifest
from hils_kit.core.layout import MANIFEST, PrepareFiles, artefact_path
from hils_kit.core.progress import headless
from hils_kit.data.loaders import load_questions
from hils_kit.order.registry import BASELINE, paper_order, strategy_key, strategy_name
from hils_kit.order.widgets import STATIC_NOTE
from hils_kit.stats.family import format_p_column, is_p_column
from hils_kit.stats.significance import replicate_bootstrap_difference, replicate_bootstrap_mean
from hils_kit.train.learning_curve import plot_curves

LEVEL = 0.95
A_ONLY, B_ONLY = "A right, B wrong", "A wrong, B right"
OUTCOMES = (A_ONLY, B_ONLY, "both right", "both wrong")
TEXT_CHARS = 90  # of a question's text in the flips table
TESTS = ("comparisons", "placebo", "matched")  # notebook 04's paired tests: against Random Shuffle, twin, matched
METRIC = {name: (column, unit, scale) for column, (name, unit, scale) in METRICS.items()}  # by display name


@dataclass
class Flips:
    """A and B question by question: ``table`` (the pairs answered differently, with each question's category and
    text), ``counts`` (pairs per outcome of :data:`OUTCOMES`) and ``paired`` (a sentence: what was paired)."""

    table: pd.DataFrame
    counts: pd.Series
    paired: str


def _read_tests(analysis_dir: Path) -> pd.DataFrame | None:
    """Notebook 04's paired tests of two strategies in one frame, with ``baseline`` and ``source`` (the file); None
    where it wrote none. ``comparisons.csv`` (against Random Shuffle) has no baseline column, the twins no also_in."""
    tests = []
    for path in (artefact_path(analysis_dir, kind) for kind in TESTS):
        if path.is_file():
            test = pd.read_csv(path)
            baseline, also_in = test.get("baseline", BASELINE), test.get("also_in", "")
            tests.append(test.assign(source=path.name, baseline=baseline, also_in=also_in))
    return pd.concat(tests, ignore_index=True) if tests else None


class StudyExplorer:
    """The views of one finished study folder (``runs/<study>``); one that is not is refused with a ValueError.

    ``options`` lists what the folder holds: its label scenarios (those of notebook 04's tables), test sets
    (``dataset``), metrics and strategy keys (paper order). A view takes one of each; ``a`` and ``b`` are keys.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not (self.run_dir / MANIFEST).is_file():
            raise ValueError(f"{self.run_dir} is not a finished study: it has no {MANIFEST} (run `hils study` first)")
        analysis = read_manifest(self.run_dir / MANIFEST, required=("cells",)).get("analysis_dir")
        try:
            self.long = collect_results(self.run_dir)
        except FileNotFoundError as err:
            raise ValueError(f"{self.run_dir} is not a finished study: {err}") from None
        scenarios = sorted(set(self.long["scenario"]) - {"none"}) or ["none"]
        replicate = dict(zip(self.long["cell_id"], self.long["replicate"]))
        predictions = study_predictions(self.long, scenarios).rename(columns={"question": "id"})
        self.predictions = predictions.assign(replicate=predictions["run"].map(replicate))
        self.tests = _read_tests(self.run_dir / analysis) if analysis else None
        names = paper_order(map(strategy_name, self.predictions["strategy"].unique()))
        self.options = {
            "scenario": scenarios,
            "dataset": list(self.long["dataset"].unique()),
            "metric": [name for name, (column, _, _) in METRIC.items() if column in self.predictions],
            "strategy": [strategy_key(name) for name in names],
        }

    def _rows(self, scenario: str, dataset: str, a: str, b: str) -> pd.DataFrame:
        """The predictions of A and B on ``dataset`` in ``scenario``; a ValueError where one has none."""
        if a == b:
            raise ValueError(f"A and B are both {strategy_name(a)}: choose two different strategies")
        p = self.predictions
        rows = p[(p["scenario"] == scenario) & (p["dataset"] == dataset) & p["strategy"].isin([a, b])]
        for strategy in (a, b):
            if strategy not in set(rows["strategy"]):
                raise ValueError(f"{strategy_name(strategy)} has no predictions on {dataset} in scenario {scenario}")
        return rows

    @staticmethod
    def _matrix(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
        """Questions × replicates of ``metric`` (scaled), as :func:`~hils_kit.analyse.tables.accuracy_spread` has."""
        if metric not in METRIC:
            raise ValueError(f"unknown metric {metric!r} (one of {', '.join(METRIC)})")
        column, _, scale = METRIC[metric]
        return rows.pivot_table(index="id", columns="replicate", values=column, aggfunc="mean") * scale

    def questions(self, dataset: str) -> pd.DataFrame:
        """Each test question's ``category`` and the start of its ``text`` by ``id``, from the study's prepare
        folder (empty where it has none)."""
        prepare = PrepareFiles(self.run_dir / "prepare")  # Layout.step_dir("prepare")
        parts = sorted(set(self.long["part"].dropna()) - {POOLED_PART}) if "part" in self.long else []
        tables = [load_questions(path) for path in (prepare.test(part, dataset) for part in parts) if path.is_file()]
        if not tables:
            return pd.DataFrame({"category": [], "text": []}, index=pd.Index([], name="id"))
        table = pd.concat(tables).drop_duplicates("id").set_index("id")
        text = table["question"].astype(str)
        text = text.where(text.str.len() <= TEXT_CHARS, text.str[: TEXT_CHARS - 1] + "…")
        return pd.DataFrame({"category": table["category"], "text": text})

    def flips(self, scenario: str, dataset: str, a: str, b: str) -> Flips:
        """Which test questions A and B answer differently (right / wrong) with the same model.

        Where A and B have the same replicate indices (one run each), run r of A is paired with run r of B: a pair
        is a question × model × replicate. Otherwise a pair is a question × model, and a strategy is right on it
        when more than half of its runs are. ``a_correct`` and ``b_correct``: the share of runs right.
        """
        rows = self._rows(scenario, dataset, a, b)
        runs = rows.drop_duplicates("run")
        held = {s: set(zip(group["model"], group["replicate"])) for s, group in runs.groupby("strategy")}
        by_replicate = held[a] == held[b] and not runs.duplicated(["model", "strategy", "replicate"]).any()
        unit = ["model", "replicate"] if by_replicate else ["model"]
        wide = rows.pivot_table(index=[*unit, "id"], columns="strategy", values="correct", aggfunc="mean").dropna()
        right_a, right_b = wide[a] > 0.5, wide[b] > 0.5
        outcome = np.select([right_a & ~right_b, ~right_a & right_b, right_a], OUTCOMES[:3], OUTCOMES[3])
        pairs = wide[[a, b]].set_axis(["a_correct", "b_correct"], axis=1).reset_index()
        pairs.insert(0, "outcome", pd.Categorical(outcome, categories=OUTCOMES))
        flipped = pairs[pairs["outcome"].isin([A_ONLY, B_ONLY])].join(self.questions(dataset), on="id")
        columns = ["outcome", "id", "category", "text", *unit, "a_correct", "b_correct"]
        table = flipped.sort_values(["outcome", *unit, "id"])[columns].reset_index(drop=True)
        a_b = f"{strategy_name(a)} and {strategy_name(b)}"
        paired = (
            f"Paired: the same question of {dataset}, answered by the {a_b} runs of the same model and replicate "
            f"index; {len(pairs)} pairs, pooled over models and replicates."
            if by_replicate
            else f"Paired: the same question of {dataset} and the same model; the {a_b} runs have different replicate "
            f"indices, so a strategy is right on a question when more than half of its runs are; {len(pairs)} pairs, "
            "pooled over models."
        )
        return Flips(table, pairs["outcome"].value_counts(sort=False), paired)

    def intervals(self, scenario: str, dataset: str, metric: str, a: str, b: str) -> pd.DataFrame:
        """A's and B's mean ``metric`` per model (accuracy in %) with a 95 % interval, questions and runs resampled
        (:func:`~hils_kit.stats.significance.replicate_bootstrap_mean`, as in ``accuracy_spread``)."""
        rows, out = self._rows(scenario, dataset, a, b), []
        for strategy in (a, b):
            for model, group in rows[rows["strategy"] == strategy].groupby("model", sort=False):
                result = replicate_bootstrap_mean(self._matrix(group, metric).to_numpy(), level=LEVEL)
                (low, high), name = result["ci"], strategy_name(strategy)
                out.append({"strategy": name, "model": model, "runs": result["replicates"], metric: result["mean"]})
                out[-1] |= {"ci_low": low, "ci_high": high, "n_questions": result["n"]}
        return pd.DataFrame(out)

    def difference(self, scenario: str, dataset: str, metric: str, a: str, b: str) -> pd.DataFrame:
        """A − B per model on the questions both answered, with a 95 % interval: the questions resampled jointly,
        each strategy's runs on their own (:func:`~hils_kit.stats.significance.replicate_bootstrap_difference`)."""
        out = []
        for model, group in self._rows(scenario, dataset, a, b).groupby("model", sort=False):
            mine, other = (self._matrix(group[group["strategy"] == s], metric) for s in (a, b))
            common = mine.index.intersection(other.index)
            if common.empty:  # this model has predictions of one strategy only
                continue
            result = replicate_bootstrap_difference(mine.loc[common], other.loc[common], level=LEVEL)
            (low, high), comparison = result["ci"], f"{strategy_name(a)} − {strategy_name(b)}"
            out.append({"comparison": comparison, "model": model, "estimate": result["difference"], "ci_low": low})
            out[-1] |= {"ci_high": high, "runs_a": result["replicates_a"], "runs_b": result["replicates_b"]}
        return pd.DataFrame(out)

    def study_test(self, scenario: str, dataset: str, metric: str, a: str, b: str) -> pd.DataFrame:
        """The study's own paired test of A and B (the training run as the unit), read as A − B: notebook 04's row
        of a strategy against Random Shuffle (``comparisons.csv``), its placebo twin or its matched twin; empty
        where the analysis did not test this pair."""
        if self.tests is None:
            return pd.DataFrame()
        t = self.tests
        shared = t["also_in"].fillna("").astype(str).str.split(", ").map(lambda also: scenario in also)
        here = ((t["scenario"] == scenario) | shared) & (t["dataset"] == dataset) & (t["metric"] == metric)
        forward = t[here & (t["strategy"] == a) & (t["baseline"] == b)]
        backward = t[here & (t["strategy"] == b) & (t["baseline"] == a)]
        backward = backward.assign(
            estimate=0.0 - backward["estimate"], ci_low=0.0 - backward["ci_high"], ci_high=0.0 - backward["ci_low"]
        )
        rows = pd.concat([forward, backward], ignore_index=True)
        keep = ["model", "estimate", "ci_low", "ci_high", "claim", "p_value", "p_holm", "p_bh", "p_models", "source"]
        test = rows[[k for k in keep if k in rows]]
        return test.assign(comparison=f"{strategy_name(a)} − {strategy_name(b)}")[["comparison", *test.columns]]

    def curves_figure(self, scenario: str, a: str, b: str):
        """A's and B's learning curves in ``scenario``: the probe's mean gold log-prob on held-out questions by
        training questions seen (one probe for every test set); None when their cells wrote no curve."""
        curves = learning_curves(self.long, scenario)
        chosen = curves[curves["strategy"].isin([strategy_name(a), strategy_name(b)])] if len(curves) else curves
        if chosen.empty:
            return None
        return plot_curves(chosen, title=f"{strategy_name(a)} vs {strategy_name(b)}, {scenario} labels")


def _table(frame: pd.DataFrame) -> str:
    """A frame as HTML, p-values formatted, other numbers rounded, in a box that scrolls when long."""
    shown = frame.assign(**{c: format_p_column(frame[c]) for c in frame if is_p_column(c)}).round(3)
    return f"<div style='max-height:22em;overflow:auto'>{shown.to_html(index=False)}</div>"


def _views(explorer: StudyExplorer, scenario: str, dataset: str, metric: str, a: str, b: str) -> list:
    """The display objects of one choice: the flips, the learning curves, the intervals."""
    from IPython.display import HTML, Image

    flips = explorer.flips(scenario, dataset, a, b)
    title = f"A = {strategy_name(a)}, B = {strategy_name(b)}; {dataset}, {scenario} labels"
    views = [
        HTML(
            f"<h4>1. Questions that flipped: {html.escape(title)}</h4><p>{html.escape(flips.paired)} Right and "
            "wrong answers, whatever the metric.</p>"
            + _table(flips.counts.rename_axis(None).rename("pairs").to_frame().T)
            + (_table(flips.table) if len(flips.table) else "<p>No question flipped.</p>")
        ),
        HTML("<h4>2. Learning curves: the probe's mean gold log-prob on held-out questions during training</h4>"),
    ]
    figure = explorer.curves_figure(scenario, a, b)
    if figure is None:
        views.append(HTML("<p>No learning curve: the probe was off, or the study is k-fold (curves per fold).</p>"))
    else:
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=100, bbox_inches="tight")
        views.append(Image(data=png.getvalue()))
    test = explorer.study_test(scenario, dataset, metric, a, b)
    views.append(
        HTML(
            f"<h4>3. {html.escape(metric)} with {LEVEL:.0%} intervals (unit: {METRIC[metric][1]})</h4>"
            + _table(explorer.intervals(scenario, dataset, metric, a, b))
            + "<p>A − B: the questions paired (resampled jointly), each strategy's runs resampled on their own.</p>"
            + _table(explorer.difference(scenario, dataset, metric, a, b))
            + (
                "<p>The study's paired test (notebook 04, the training run as the unit):</p>" + _table(test)
                if len(test)
                else "<p>The study's analysis has no test of this pair: it tests each strategy against Random "
                "Shuffle, its placebo twin and its matched twin (run notebook 04 if it has not run).</p>"
            )
        )
    )
    return views


def explore_study(run_dir: str | Path):
    """Dropdowns (scenario, test set, metric, strategy A and B; B is Random Shuffle where the study has it) over a
    finished study's :class:`StudyExplorer`, and an Output area they redraw on every change; headless, a static
    note (the folder is not read). A folder that is not a finished study is refused with a ValueError naming it."""
    from IPython.display import HTML

    if headless():  # nobody can choose anything: no need to read the study
        return HTML(f"<p><i>{STATIC_NOTE.format(what='compare two strategies question by question')}</i></p>")
    explorer = StudyExplorer(run_dir)
    import ipywidgets as w

    keys = explorer.options["strategy"]
    b = BASELINE if BASELINE in keys else keys[-1]
    strategies = [(strategy_name(k), k) for k in keys]
    picks = {
        "scenario": w.Dropdown(options=explorer.options["scenario"], description="scenario"),
        "dataset": w.Dropdown(options=explorer.options["dataset"], description="test set"),
        "metric": w.Dropdown(options=explorer.options["metric"], description="metric"),
        "a": w.Dropdown(options=strategies, value=next((k for k in keys if k != b), b), description="strategy A"),
        "b": w.Dropdown(options=strategies, value=b, description="strategy B"),
    }
    out = w.Output()

    def draw(_=None) -> None:
        try:
            views = _views(explorer, **{name: pick.value for name, pick in picks.items()})
        except ValueError as err:  # a strategy without cells in this scenario, or A = B
            views = [HTML(f"<p><b>{html.escape(str(err))}</b></p>")]
        out.outputs = ()
        for view in views:
            out.append_display_data(view)

    for pick in picks.values():
        pick.observe(draw, names="value")
    draw()
    controls = list(picks.values())
    return w.VBox([w.HBox(controls[:3]), w.HBox(controls[3:]), out])
