"""The contract between the study runner, the four notebooks and the analysis, written once.

- **Vocabulary**: :data:`STRATEGY` (key -> :class:`Strategy`: display name, the labels it uses, whether the
  paper ran it) and :data:`SCENARIO` (name -> :class:`Scenario`: where its difficulty and its categories
  come from, and the label columns that hold them).
- **Notebook parameters**: one dataclass per notebook (:class:`ExplorationParams`, :class:`PrepareParams`,
  :class:`CellParams`, :class:`AnalysisParams`), with help text per field. The study expands its grid into
  them, the runner writes them with ``asdict`` as papermill YAMLs, each notebook's parameters cell declares
  exactly these fields (a test compares ``papermill --help-notebook`` with the dataclass) and the cell after
  it validates its globals with :func:`from_namespace`.
- **Results**: :class:`CellResults`, the layout of a cell's ``results.json`` that ``03`` writes and the
  analysis reads.
- **Types**: :func:`convert`, the one converter that checks a value against a field's type (YAML, papermill
  and ``--set key=value`` all go through it).

>>> STRATEGY["blocked_curriculum"].name, SCENARIO["llm_clusters"].category_column
('Blocked Curriculum', 'cluster')
>>> strategy_scenarios("blocked", ["llm", "llm_clusters"])
['none', 'llm_clusters']
>>> from_namespace(AnalysisParams, {"study": "demo", "run_dir": "runs/demo", "out_dir": "x", "other": 1}).study
'demo'
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

from hils_kit.paths import write_text_atomic

# ----------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Strategy:
    """A training order: its key, display name, the labels it uses and whether the paper ran it."""

    key: str
    name: str
    uses_category: bool
    uses_difficulty: bool
    in_paper: bool = True


STRATEGY: dict[str, Strategy] = {
    s.key: s
    for s in (  # in the paper's row order
        Strategy("random", "Random Shuffle", False, False),
        Strategy("curriculum", "Curriculum", False, True),
        Strategy("blocked", "Blocked", True, False),
        Strategy("blocked_curriculum", "Blocked Curriculum", True, True),
        Strategy("interleaved", "Interleaved", True, False),
        Strategy("interleaved_curriculum", "Interleaved Curriculum", True, True),
        Strategy("anti_curriculum", "Anti-Curriculum", False, True, in_paper=False),
    )
}
STRATEGIES = tuple(STRATEGY)
PAPER_STRATEGIES = tuple(k for k, s in STRATEGY.items() if s.in_paper)
NEEDS_CATEGORY = tuple(k for k, s in STRATEGY.items() if s.uses_category)
NEEDS_DIFFICULTY = tuple(k for k, s in STRATEGY.items() if s.uses_difficulty)
CURRICULUM_STRATEGIES = tuple(k for k in NEEDS_DIFFICULTY if STRATEGY[k].in_paper)
BASELINE = "random"


def strategy_name(key: str) -> str:
    """Display name of a strategy key; a name (or an unknown key) passes through.

    >>> strategy_name("random"), strategy_name("Interleaved")
    ('Random Shuffle', 'Interleaved')
    """
    return STRATEGY[key].name if key in STRATEGY else key


def strategy_key(name: str) -> str:
    """The key of a strategy display name; a key passes through.

    >>> strategy_key("Random Shuffle"), strategy_key("curriculum")
    ('random', 'curriculum')
    """
    return next((k for k, s in STRATEGY.items() if s.name == name), name)


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
    )
}
LABEL_SCENARIOS = tuple(name for name in SCENARIO if name != "none")  # what a study lists


def scenario_of(name: str) -> Scenario:
    """The scenario ``name``; a name the kit does not list is read as ``<difficulty source>[_clusters]``.

    >>> scenario_of("gpt4_clusters").difficulty_column, scenario_of("gpt4_clusters").category_column
    ('difficulty_gpt4', 'cluster')
    """
    if name in SCENARIO:
        return SCENARIO[name]
    return Scenario(name, name.removesuffix("_clusters"), "clusters" if name.endswith("_clusters") else "human")


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


# ----------------------------------------------------------------------------- one type converter


def _type_name(hint) -> str:
    """How an error message names a type: ``list[str]`` -> ``"a list of strings"``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    names = {
        type(None): "null",
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin is list and args:
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict and args:
        return f"a mapping of {_type_name(args[0]).removeprefix('a ')} to {_type_name(args[1]).removeprefix('a ')}"
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _from_text(text: str, kind: type):
    """A string given for a bool/int/float field, parsed strictly (YAML reads ``1e-4`` as a string; --set
    gives strings); ``None`` when it does not parse."""
    text = text.strip()
    if kind is bool:
        return {"true": True, "false": False}.get(text.lower())
    try:
        number = float(text)
    except ValueError:
        return None
    if kind is int:
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else None
    return number


def convert(value, hint, where: str):
    """``value`` checked against the type ``hint``; raises ``TypeError`` naming ``where`` and the type.

    Rules: a bool is only ``true``/``false``; a string is parsed for a bool/int/float field ("1e-4", "8",
    "true"); an int is accepted for a float field; NaN and infinities are refused; dataclasses are built
    from mappings with unknown keys refused.

    >>> convert("1e-4", float, "learning_rate"), convert("8", int, "batch"), convert(None, Optional[str], "x")
    (0.0001, 8, None)
    >>> convert("yes", bool, "debias")
    Traceback (most recent call last):
    TypeError: 'debias' should be true/false, got str 'yes'
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and isinstance(value, str) and value.strip().lower() in ("null", "none"):
                return None  # "--set bf16=null"
            try:
                return convert(value, option, where)
            except TypeError:
                pass
        raise TypeError(f"'{where}' should be {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"'{where}' should be a mapping, got {type(value).__name__} {value!r}")
        return build(hint, value, where + ".")
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    given = value
    if isinstance(value, str) and origin in (bool, int, float):
        parsed = _from_text(value, origin)
        value = value if parsed is None else parsed
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value) and origin in (int, float):
        raise TypeError(f"'{where}' should be a finite number, got {given!r}")
    ok = {
        type(None): value is None,
        bool: isinstance(value, bool),
        float: isinstance(value, float),
        int: isinstance(value, int) and not isinstance(value, bool),
        str: isinstance(value, str),
        list: isinstance(value, list),
        dict: isinstance(value, dict),
    }
    if not ok.get(origin, False):
        raise TypeError(f"'{where}' should be {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if origin is list and args:
        return [convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and args:
        return {convert(k, args[0], f"{where} (a key)"): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return value


def build(cls, data: dict, prefix: str = ""):
    """The dataclass ``cls`` from ``data``: unknown keys refused (``KeyError``), values converted (``TypeError``)."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise KeyError(f"unknown key '{prefix}{key}' (known keys: {', '.join(known)})")
    return cls(**{key: convert(value, hints[key], f"{prefix}{key}") for key, value in data.items()})


def _choices(instance) -> list[str]:
    """Problems with fields whose metadata lists ``choices``."""
    out = []
    for f in dataclasses.fields(instance):
        allowed = f.metadata.get("choices")
        value = getattr(instance, f.name)
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if allowed is not None and isinstance(v, str) and v not in allowed]
        if bad:
            out.append(f"'{f.name}' has unknown value(s) {bad} (known: {', '.join(allowed)})")
    return out


def from_namespace(cls, namespace: dict):
    """The parameters dataclass ``cls`` from a notebook's globals (the fields only), validated.

    Raises ``ValueError`` naming the parameter, its expected type or its allowed values.
    """
    values = {f.name: namespace[f.name] for f in dataclasses.fields(cls) if f.name in namespace}
    try:
        params = build(cls, values)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{cls.__name__}: {err.args[0]}") from None
    problems = _choices(params)
    if problems:
        raise ValueError(f"{cls.__name__}: " + "; ".join(problems))
    return params


def describe(cls) -> str:
    """One line per field: ``name (type, default): help`` — the reference of a notebook's parameters."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"{f.name} ({f.type}, default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- notebook parameters


def _help(text: str, choices=None) -> dict:
    return {"help": text, **({"choices": tuple(choices)} if choices else {})}


@dataclass
class ExplorationParams:
    """``01_data_exploration``."""

    study: str = field(default="explore", metadata=_help("study name, used in titles"))
    train_data: str = field(default="medmcqa", metadata=_help("training data: a kit name or a question file"))
    train_format: Optional[str] = field(default=None, metadata=_help("loader format of train_data, None to detect"))
    compare_with: list[str] = field(
        default_factory=lambda: ["medqa", "mmlu_medical"], metadata=_help("other data sets to compare with")
    )
    tokenizer_model: str = field(default="smollm2", metadata=_help("tokenizer that counts prompt tokens, empty: skip"))
    out_dir: str = field(default="runs/explore/exploration", metadata=_help("where summary.json goes"))


@dataclass
class PrepareParams:
    """``02_difficulty_labeling``: split, sample, label."""

    study: str = field(default="explore", metadata=_help("study name"))
    train_data: str = field(default="medmcqa", metadata=_help("training data: a kit name or a question file"))
    train_format: Optional[str] = field(default=None, metadata=_help("loader format of train_data, None to detect"))
    split: dict = field(
        default_factory=lambda: {"kind": "holdout", "test_fraction": 0.2, "seed": 0},
        metadata=_help("{kind: holdout, test_fraction, seed} or {kind: kfold, k, seed, include_full}"),
    )
    train_limit: int = field(default=64, metadata=_help("training questions sampled per part, 0 for all"))
    test_sets: list[str] = field(
        default_factory=lambda: ["medqa", "mmlu_medical"], metadata=_help("external test sets (names or files)")
    )
    test_limit: int = field(default=60, metadata=_help("questions sampled per test set, 0 for all"))
    scenarios: list[str] = field(default_factory=lambda: ["llm"], metadata=_help("label scenarios", LABEL_SCENARIOS))
    difficulty_models: list[str] = field(
        default_factory=lambda: ["smollm2"], metadata=_help("models that score LLM difficulty")
    )
    difficulty_file: Optional[str] = field(
        default=None,
        metadata=_help("precomputed labels (id,difficulty or the authors' Index,llm_difficulty) instead of scoring"),
    )
    debias: bool = field(default=True, metadata=_help("average over cyclic option rotations (removes letter bias)"))
    precision: Optional[str] = field(
        default=None, metadata=_help("difficulty scoring: fp32, bf16, auto; None: HILS_PRECISION, else auto")
    )
    parts: dict = field(
        default_factory=lambda: {"holdout": ["medmcqa_test", "medqa", "mmlu_medical"]},
        metadata=_help("training part -> its test set labels"),
    )
    cluster_encoder: str = field(
        default="minilm",
        metadata=_help(
            "sentence encoder of the LLM-defined categories: minilm, a sentence-transformers folder or a cached hub id"
        ),
    )
    cluster_text: str = field(
        default="question",
        metadata=_help(
            "what is embedded: the question (authors' code) or question_options (the paper's text)",
            ("question", "question_options"),
        ),
    )
    cluster_search: str = field(
        default="scaled",
        metadata=_help(
            "UMAP/HDBSCAN search: scaled to the data (30 trials) or paper (Table 4 ranges, 100 trials)",
            ("scaled", "paper"),
        ),
    )
    cluster_trials: Optional[int] = field(default=None, metadata=_help("search trials, None for the search's own"))
    on_overlap: str = field(
        default="drop",
        metadata=_help(
            "test questions that also appear among the training questions: drop them, or stop with an error",
            ("drop", "error"),
        ),
    )
    prepare_dir: str = field(default="runs/explore/prepare", metadata=_help("where split, questions and labels go"))


@dataclass
class CellParams:
    """``03_train_evaluate``: one experiment cell."""

    study: str = field(default="explore", metadata=_help("study name"))
    cell_id: str = field(default="smollm2__llm__curriculum__holdout__r0", metadata=_help("this cell's id"))
    model: str = field(default="smollm2", metadata=_help("model to fine-tune: kit name, local folder or hub id"))
    preset: str = field(default="smollm2-cpu", metadata=_help("training preset (hils_kit.presets)"))
    train_overrides: dict = field(default_factory=dict, metadata=_help("TrainConfig fields to override"))
    precision: Optional[str] = field(
        default=None,
        metadata=_help(
            "training and scoring: fp32, bf16, auto; None: the preset's bf16, else HILS_PRECISION, else auto"
        ),
    )
    strategy: str = field(default="curriculum", metadata=_help("training order", STRATEGIES))
    variant: str = field(default="strict", metadata=_help("difficulty variant of this cell", ("strict", "tiers")))
    rounds: int = field(default=3, metadata=_help("interleaving rounds"))
    category_order: Union[str, list] = field(
        default="size", metadata=_help("category order: size, name, shuffle or a list of categories")
    )
    scenario: str = field(default="llm", metadata=_help("labels the order uses", tuple(SCENARIO)))
    balance_letters: bool = field(
        default=False,
        metadata=_help(
            "rotate each question's options so the gold letters cycle A, B, C, ... along the (unchanged) order"
        ),
    )
    probe_questions: int = field(
        default=16, metadata=_help("held-out questions scored during training for the learning curve, 0 for none")
    )
    probe_every: int = field(
        default=0, metadata=_help("optimizer steps between probe scorings, 0: about 10 % of training")
    )
    replicate: int = field(default=0, metadata=_help("replicate number r of this cell"))
    order_seed: int = field(default=0, metadata=_help("seed of the ordering (ties, shuffles)"))
    train_seed: int = field(default=42, metadata=_help("seed of training: LoRA init, dropout, data collation"))
    part: str = field(default="holdout", metadata=_help("training part prepared by 02 (holdout, fold0.., full)"))
    prepare_dir: str = field(default="runs/explore/prepare", metadata=_help("output folder of 02"))
    test_sets: list[str] = field(
        default_factory=lambda: ["medmcqa_test", "medqa", "mmlu_medical"],
        metadata=_help("test set labels prepared for this part"),
    )
    out_dir: str = field(
        default="runs/explore/cells/smollm2__llm__curriculum__holdout__r0", metadata=_help("this cell's folder")
    )


@dataclass
class AnalysisParams:
    """``04_analysis``."""

    study: str = field(default="explore", metadata=_help("study name"))
    run_dir: str = field(default="runs/explore", metadata=_help("the study's run folder (holds manifest.json, cells/)"))
    difficulty_models: list[str] = field(
        default_factory=list,
        metadata=_help("models that scored the LLM difficulty (the report says when they are also fine-tuned)"),
    )
    out_dir: str = field(default="runs/explore/analysis", metadata=_help("where tables (CSV) and figures (PNG) go"))


NOTEBOOK_PARAMS = {
    "01_data_exploration": ExplorationParams,
    "02_difficulty_labeling": PrepareParams,
    "03_train_evaluate": CellParams,
    "04_analysis": AnalysisParams,
}


# ----------------------------------------------------------------------------- report artefacts

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
    "paired_tests": (
        "paired_tests.csv",
        "Paired tests against Random Shuffle on the same questions (Holm-corrected "
        "across the strategies of each table; pairing unit in 'paired_over')",
    ),
    "power": ("power.csv", "What the study could detect: minimal detectable differences (80 % power, α 0.05)"),
    "learning_curves": (
        "learning_curves_{scenario}.png",
        "Learning curves: mean gold-letter log-prob on held-out probe questions during training, {scenario} labels",
    ),
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


# ----------------------------------------------------------------------------- results of a cell

RESULTS_FILE = "results.json"


def predictions_file(cell_dir: str | Path, test_set: str) -> Path:
    """Where a cell writes its per-question predictions on ``test_set``."""
    return Path(cell_dir) / f"predictions_{test_set}.csv"


@dataclass
class CellResults:
    """A cell's ``results.json``: its parameters, metrics per test set, the training summary, and per test set the
    number of questions the leakage guard dropped because they overlap the training or labelling questions."""

    cell: dict
    metrics: dict
    train: dict = field(default_factory=dict)
    test_overlap_dropped: dict = field(default_factory=dict)

    def write(self, cell_dir: str | Path) -> Path:
        """Write ``results.json`` atomically into ``cell_dir``."""
        return write_text_atomic(Path(cell_dir) / RESULTS_FILE, json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def read(cls, path: str | Path) -> CellResults:
        """Read and check a ``results.json``; a clear error names the file and the field."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        for part in ("cell", "metrics"):
            if not isinstance(data, dict) or not isinstance(data.get(part), dict):
                raise ValueError(f"{path}: field '{part}' is missing or not an object")
        cell = data["cell"]
        for key in ("cell_id", "model", "strategy", "scenario", "replicate"):
            if key not in cell:
                raise ValueError(f"{path}: field 'cell.{key}' is missing")
            if key != "replicate" and not (isinstance(cell[key], str) and cell[key]):
                raise ValueError(f"{path}: field 'cell.{key}' must be a non-empty string, got {cell[key]!r}")
        if not data["metrics"]:
            raise ValueError(f"{path}: field 'metrics' has no test sets")
        for name, scores in data["metrics"].items():
            accuracy = scores.get("accuracy") if isinstance(scores, dict) else None
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
                raise ValueError(
                    f"{path}: field 'metrics.{name}.accuracy' is missing or not a share in [0, 1] (got {accuracy!r})"
                )
        return cls(cell, data["metrics"], data.get("train") or {}, data.get("test_overlap_dropped") or {})
