"""The run layout: every file and folder name of a study's tree, defined here and nowhere else.

Under the study's ``out`` folder::

    params/<study>/exploration.yaml, prepare.yaml, <cell_id>.yaml, analysis.yaml   one YAML per notebook run
    runs/<study>/manifest.json                 every step and cell with its status (for 04 and the index page)
    runs/<study>/01_data_exploration.ipynb     exploration/   summary.json
    runs/<study>/02_difficulty_labeling.ipynb  prepare/       split.json, train_<part>.csv,
                                                              test_<part>__<label>.csv, overlap.json, labels.csv,
                                                              llm_difficulty.csv, clusters.csv, irt.json, orderings.png
    runs/<study>/cells/<cell_id>/              03_train_evaluate.ipynb, results.json, metrics.json,
                                               predictions_<test set>.csv, train/ (adapter, orders, curve)
    runs/<study>/04_analysis.ipynb             analysis/      ARTEFACTS (tables, figures), artefacts.json
    reports/<study>/index.html, <notebook>.html, cells/<cell_id>.html

Every run's folder also holds ``papermill.log`` and, when it ended, ``DONE`` or ``FAILED``.

>>> layout = Layout(Path("/tmp/out"), "demo")
>>> layout.cell_dir("tiny__none__random__holdout__r0").relative_to("/tmp/out").as_posix()
'runs/demo/cells/tiny__none__random__holdout__r0'
>>> PrepareFiles("prep").test("holdout", "medqa").name, CellFiles("cell").predictions("medqa").name
('test_holdout__medqa.csv', 'predictions_medqa.csv')
>>> artefact_path("runs/demo/analysis", "table", "llm").name
'table_llm.csv'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = ("01_data_exploration", "02_difficulty_labeling", "03_train_evaluate", "04_analysis")
LOG_NAME = "papermill.log"  # a run's log, in its folder
DONE = "DONE"  # written last by a run that finished: its fingerprint
FAILED = "FAILED"  # written by a run that failed: its error
MANIFEST = "manifest.json"
CELLS = "cells"
EXPLORATION_SUMMARY = "summary.json"
CURVE_FILE = "learning_curve.csv"  # in a training folder: the held-out probe's learning curve
TRAJECTORIES_FILE = "trajectories.csv"  # in a training folder: every probe question at every scoring


@dataclass(frozen=True)
class Layout:
    """Where a study's files go under ``out``."""

    out: Path
    study: str

    @property
    def params_dir(self) -> Path:
        return self.out / "params" / self.study

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.study

    @property
    def reports_dir(self) -> Path:
        return self.out / "reports" / self.study

    @property
    def manifest(self) -> Path:
        return self.run_dir / MANIFEST

    @property
    def index_page(self) -> Path:
        return self.reports_dir / "index.html"

    def step_dir(self, step: str) -> Path:
        """The folder of a study step: ``exploration``, ``prepare`` or ``analysis``."""
        return self.run_dir / step

    def cell_dir(self, cell_id: str) -> Path:
        return self.run_dir / CELLS / cell_id

    def params_file(self, name: str) -> Path:
        """The papermill YAML of a run: a step name or a cell id."""
        return self.params_dir / f"{name}.yaml"

    def executed(self, notebook: str, cell_id: str | None = None) -> Path:
        """Where the executed copy of ``notebook`` goes: the run folder, or the cell's folder."""
        return (self.cell_dir(cell_id) if cell_id else self.run_dir) / f"{notebook}.ipynb"

    def report(self, notebook: str, cell_id: str | None = None) -> Path:
        """The code-free HTML report of a run."""
        return self.reports_dir / CELLS / f"{cell_id}.html" if cell_id else self.reports_dir / f"{notebook}.html"


def cells_dir(run_dir: str | Path) -> Path:
    """The ``cells/`` folder of a study run folder; a path that is already a cells folder passes through."""
    run_dir = Path(run_dir)
    return run_dir / CELLS if (run_dir / CELLS).is_dir() else run_dir


@dataclass(frozen=True)
class PrepareFiles:
    """The files ``02_difficulty_labeling`` writes into its folder."""

    folder: Path

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))

    split = property(lambda self: self.folder / "split.json")
    overlap = property(lambda self: self.folder / "overlap.json")
    labels = property(lambda self: self.folder / "labels.csv")
    llm_difficulty = property(lambda self: self.folder / "llm_difficulty.csv")
    clusters = property(lambda self: self.folder / "clusters.csv")
    irt = property(lambda self: self.folder / "irt.json")
    orderings_figure = property(lambda self: self.folder / "orderings.png")

    def train(self, part: str) -> Path:
        """The training questions of a part (kit CSV)."""
        return self.folder / f"train_{part}.csv"

    def test(self, part: str, label: str) -> Path:
        """A part's test set ``label`` (kit CSV, already limited)."""
        return self.folder / f"test_{part}__{label}.csv"


@dataclass(frozen=True)
class CellFiles:
    """The files ``03_train_evaluate`` (and ``hils evaluate``) write into a cell's folder."""

    folder: Path

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))

    results = property(lambda self: self.folder / "results.json")
    metrics = property(lambda self: self.folder / "metrics.json")
    train_dir = property(lambda self: self.folder / "train")
    curve = property(lambda self: TrainFiles(self.folder / "train").curve)
    trajectories = property(lambda self: TrainFiles(self.folder / "train").trajectories)

    def predictions(self, test_set: str) -> Path:
        """Per-question predictions on ``test_set``."""
        return self.folder / f"predictions_{test_set}.csv"


RESULTS_FILE = CellFiles("").results.name


@dataclass(frozen=True)
class TrainFiles:
    """A training run's folder (``hils train``, or ``train/`` in a cell): written atomically by
    :func:`hils_kit.train.training.train`."""

    folder: Path

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))

    adapter = property(lambda self: self.folder / "adapter")
    order_planned = property(lambda self: self.folder / "order_planned.csv")
    order_fed = property(lambda self: self.folder / "order_fed.csv")
    log = property(lambda self: self.folder / "train_log.csv")
    summary = property(lambda self: self.folder / "train_summary.json")
    config = property(lambda self: self.folder / "train_config.json")
    curve = property(lambda self: self.folder / CURVE_FILE)
    trajectories = property(lambda self: self.folder / TRAJECTORIES_FILE)


# ----------------------------------------------------------------------------- the analysis folder

ARTEFACTS = {  # what 04_analysis writes for the report: kind -> (file name, title); {scenario} filled in
    "table": ("table_{scenario}.csv", "Accuracy (%) by strategy, {scenario} labels"),
    "table_plot": (
        "table_{scenario}.png",
        "Accuracy by strategy, {scenario} labels (colour: gain over Random Shuffle)",
    ),
    "spread": (
        "spread_{scenario}.csv",
        "Accuracy (%) per model and test set: mean over runs with a 95 % interval (questions and runs resampled) "
        "and the spread between runs, {scenario} labels",
    ),
    "best_gains": (
        "best_gains_{scenario}.csv",
        "Best strategy per column and its gain (descriptive), {scenario} labels",
    ),
    "gains_plot": ("gains_{scenario}.png", "Mean gain over Random Shuffle with 95% interval, {scenario} labels"),
    "wins": ("wins.csv", "How often each strategy is best"),
    "label_sources": ("label_sources.csv", "LLM minus human difficulty labels, curriculum strategies"),
    "label_sources_plot": ("label_sources.png", "Curriculum gains: human vs LLM difficulty labels"),
    "power": (
        "power.csv",
        "What the study could detect: the minimal detectable difference of the test run (80 % power, α divided by "
        "its family), and the runs and questions a target difference needs",
    ),
    "comparisons": (
        "comparisons.csv",
        "Each strategy against Random Shuffle, the training run as the unit (t-test on run means, questions "
        "paired; Holm and Benjamini–Hochberg across every strategy claim; 'these trained models' where a "
        "strategy has one run)",
    ),
    "placebo": (
        "placebo.csv",
        "Each strategy against its placebo twin (the same schedule on labels shuffled among the questions): what "
        "the labels add beyond the schedule's shape (run as the unit; Holm and Benjamini–Hochberg within these claims)",
    ),
    "matched": (
        "matched.csv",
        "Strategies that feed extra examples (Spaced Repetition's reviews) against the Random Shuffle fed as many "
        "(equal compute; run as the unit; Holm and Benjamini–Hochberg within these claims)",
    ),
    "variance_components": (
        "variance_components.csv",
        "Variance components behind each comparison: questions, runs, question × strategy, residual",
    ),
    "seed_spread": (
        "seed_spread.csv",
        "Run-to-run spread of accuracy (points²) from the order seed and from the training seed (crossed seeds)",
    ),
    "meta_analysis": (
        "meta_analysis.csv",
        "Each strategy over models × test sets × label sources: random-effects pooled gain, heterogeneity "
        "(τ², I²), 95 % prediction interval for a new cell, share of cells it beats Random Shuffle",
    ),
    "learning_curves": (
        "learning_curves_{scenario}.png",
        "Learning curves: mean gold-letter log-prob on held-out probe questions during training, {scenario} labels",
    ),
    "forgetting": (
        "forgetting.csv",
        "Forgetting: per training probe question, learning and forgetting events (after Toneva et al. 2019), the "
        "share ever forgotten, the gold log-prob lost by the end by the questions fed first and last, and the rank "
        "correlation of difficulty with the step each was first right (mean over each strategy's cells)",
    ),
    "forgetting_plot": ("forgetting.png", "Forgetting events and retention of the questions fed first, per strategy"),
    "letter_prior": (
        "letter_prior.csv",
        "Letter prior: accuracy against what each model's predicted-letter mix "
        "earns on its own, and the gold letters at the end of its order",
    ),
    "audit": ("audit.csv", "Training order audit"),
    "overlap": (
        "overlap.csv",
        "Leakage guard: test questions dropped because they also appear among the training or labelling questions",
    ),
}
ARTEFACT_INDEX = "artefacts.json"


def artefact_path(out_dir: str | Path, kind: str, scenario: str = "") -> Path:
    """The one place that names the files 04_analysis writes and the report reads.

    >>> artefact_path("runs/demo/analysis", "table", "llm").name
    'table_llm.csv'
    """
    if kind not in ARTEFACTS:
        raise ValueError(f"unknown artefact kind '{kind}' (one of {', '.join(ARTEFACTS)})")
    return Path(out_dir) / ARTEFACTS[kind][0].format(scenario=scenario)


def artefact_title(kind: str, scenario: str = "") -> str:
    """The caption of an artefact in the report."""
    return ARTEFACTS[kind][1].format(scenario=scenario)
