"""A study: one YAML file that expands into the grid of training cells the runner executes.

A study file (``params/studies/<name>.yaml``) is a top-level mapping validated into :class:`StudyConfig`;
unknown keys and wrong types are refused with the file and the key named. :func:`expand_cells` turns it into
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

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hils_kit.orderings import CATEGORY_ORDERS, NEEDS_CATEGORY, NEEDS_DIFFICULTY, STRATEGIES, VARIANTS
from hils_kit.presets import make_config

SCENARIOS = ("human", "llm", "llm_clusters")  # difficulty source, "_clusters": categories from text clusters
PAPER_STRATEGIES = ("random", "curriculum", "blocked", "blocked_curriculum", "interleaved", "interleaved_curriculum")
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
    gpus_per_cell: int | None = field(default=None, metadata={
        "help": "GPUs per cell; null: 1 for presets that need CUDA (4bit), 0 for the others"})
    cpus_per_cell: int = field(default=4, metadata={"help": "CPUs per cell"})
    mem_gb: int | None = field(default=None, metadata={"help": "memory per cell in GB (the partition's default if "
                                                               "null)"})
    array_parallelism: int = field(default=0, metadata={"help": "cells of the job array running at once; 0 = no "
                                                                "limit"})
    additional: dict = field(default_factory=dict, metadata={"help": "other sbatch options, e.g. {account: lab, "
                                                                     "qos: normal}"})


@dataclass
class StudyConfig:
    """Everything a study varies. Field help doubles as the reference for the YAML keys."""

    name: str = field(default="default", metadata={"help": "study name, used for folder names"})
    description: str = field(default="", metadata={"help": "one paragraph shown at the top of the report"})
    # Models
    models: list[str] = field(default_factory=lambda: ["smollm2"],
                              metadata={"help": "kit model names, local folders or hub ids"})
    preset: str | dict[str, str] = field(default="smollm2-cpu",
                                         metadata={"help": "training preset, or a mapping model -> preset"})
    train_overrides: dict = field(default_factory=dict, metadata={"help": "TrainConfig fields to override"})
    # Data
    train_data: str = field(default="medmcqa", metadata={"help": "training data set name or file"})
    train_format: str | None = field(default=None, metadata={"help": "loader format of train_data (detected if null)"})
    split: SplitConfig = field(default_factory=SplitConfig,
                               metadata={"help": "{kind: holdout, test_fraction, seed} or {kind: kfold, k, seed, "
                                                 "include_full}"})
    train_limit: int = field(default=64, metadata={"help": "questions sampled from each training part; 0 = all"})
    test_sets: list[str] = field(default_factory=lambda: ["medqa", "mmlu_medical"],
                                 metadata={"help": "external test sets (names or files)"})
    test_limit: int = field(default=60, metadata={"help": "questions sampled from each test set; 0 = all"})
    # Labels
    scenarios: list[str] = field(default_factory=lambda: ["llm"], metadata={"help": f"any of {', '.join(SCENARIOS)}"})
    difficulty_models: list[str] = field(default_factory=lambda: ["smollm2"],
                                         metadata={"help": "scoring models for LLM difficulty"})
    difficulty_file: str | None = field(default=None, metadata={"help": "precomputed id,difficulty CSV"})
    debias: bool = field(default=True, metadata={"help": "average over option rotations to remove the letter bias"})
    # Orderings
    strategies: list[str] = field(default_factory=lambda: list(PAPER_STRATEGIES),
                                  metadata={"help": f"any of {', '.join(STRATEGIES)}"})
    variant: str = field(default="strict", metadata={"help": f"difficulty variant: {' or '.join(VARIANTS)}"})
    rounds: int = field(default=3, metadata={"help": "interleaving rounds per category"})
    category_order: str | list[str] = field(default="size", metadata={
        "help": f"order of the categories: {', '.join(CATEGORY_ORDERS)} or a list of categories"})
    replicates: int = field(default=1, metadata={"help": "ordering seeds 0..replicates-1"})
    # Execution (not part of any notebook's parameters, so changing it reruns nothing)
    cluster: ClusterConfig = field(default_factory=ClusterConfig,
                                   metadata={"help": "SLURM settings of --backend slurm: partition, time_min, "
                                                     "gpus_per_cell, cpus_per_cell, mem_gb, array_parallelism, "
                                                     "additional"})

    def preset_for(self, model: str) -> str:
        return self.preset[model] if isinstance(self.preset, dict) else self.preset


@dataclass(frozen=True)
class Cell:
    """One training run: a model trained on one part of the data in one order, then evaluated."""

    model: str
    scenario: str  # "none", or a label scenario (see strategy_scenarios)
    strategy: str
    part: str  # "holdout", "fold0".."fold{k-1}" or "full"
    replicate: int  # the ordering seed

    @property
    def id(self) -> str:
        return f"{model_slug(self.model)}__{self.scenario}__{self.strategy}__{self.part}__r{self.replicate}"


# ----------------------------------------------------------------------------- validation


def _convert(value, hint, where: str):
    """``value`` checked against the type ``hint`` (numeric strings become floats for float fields)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(value, option, where)
            except TypeError:
                pass
        raise TypeError(f"'{where}' should be {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"'{where}' should be a mapping, got {type(value).__name__} {value!r}")
        return _build(hint, value, where + ".")
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    ok = {
        type(None): value is None,
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        str: isinstance(value, str),
        list: isinstance(value, list),
        dict: isinstance(value, dict),
    }
    if origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise TypeError(f"'{where}' should be a number, got {type(value).__name__} {value!r}")
    if not ok[origin]:
        raise TypeError(f"'{where}' should be {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if origin is list and args:
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and args:
        return {_convert(k, args[0], f"{where} (a key)"): _convert(v, args[1], f"{where}.{k}")
                for k, v in value.items()}
    return value


def _type_name(hint) -> str:
    """How an error message names a type: ``list[str]`` -> ``"a list of strings"``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    names = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin is list and args:
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict and args:
        return f"a mapping of {_type_name(args[0]).removeprefix('a ')} to {_type_name(args[1]).removeprefix('a ')}"
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _build(cls, data: dict, prefix: str = ""):
    """The dataclass ``cls`` from ``data``: unknown keys are refused, values checked against the field types."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise KeyError(f"unknown key '{prefix}{key}' (known keys: {', '.join(known)})")
    return cls(**{key: _convert(value, hints[key], f"{prefix}{key}") for key, value in data.items()})


def study_from_dict(data: dict, source: str = "study") -> StudyConfig:
    """Validate a mapping into a :class:`StudyConfig`; errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: the top level must be a mapping (name: ..., models: [...]), "
                         f"got {type(data).__name__}")
    try:
        config = _build(StudyConfig, data)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source}: {err.args[0]}") from None
    problems = _problems(config)
    if config.split.kind in SPLIT_KINDS:
        given = data.get("split") or {}
        problems += [f"'split.{key}' does not apply to kind {config.split.kind} "
                     f"(its keys: {', '.join(SPLIT_KINDS[config.split.kind])})"
                     for key in given if key not in SPLIT_KINDS[config.split.kind]]
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
    """Read and validate a study YAML; ``name`` defaults to the file name.

    >>> load_study("params/studies/default.yaml").name     # doctest: +SKIP
    'default'
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return study_from_dict(data if data is not None else {"name": path.stem}, source=str(path))


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
    for key in ("rounds", "replicates"):
        if getattr(c, key) < 1:
            out.append(f"'{key}' should be at least 1")
    for key, allowed in (("strategies", STRATEGIES), ("scenarios", SCENARIOS)):
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
    if c.variant not in VARIANTS:
        out.append(f"'variant' {c.variant!r} should be one of {', '.join(VARIANTS)}")
    if isinstance(c.category_order, str) and c.category_order not in CATEGORY_ORDERS:
        out.append(f"'category_order' {c.category_order!r} should be one of {', '.join(CATEGORY_ORDERS)} "
                   f"or a list of categories")
    for model in c.models:
        if isinstance(c.preset, dict) and model not in c.preset:
            continue  # reported above
        try:
            make_config(c.preset_for(model), c.train_overrides)
        except ValueError as err:
            out.append(f"'preset' / 'train_overrides' for model {model!r}: {err}")
            break
    if {"llm", "llm_clusters"} & set(c.scenarios) and not (c.difficulty_models or c.difficulty_file):
        out.append("LLM scenarios need 'difficulty_models' or a 'difficulty_file'")
    labels = [dataset_label(s) for s in [c.train_data, *c.test_sets]]
    if len(set(labels)) < len(labels):
        out.append(f"'train_data' and 'test_sets' repeat a data set: {labels}")
    return out


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


def strategy_scenarios(strategy: str, scenarios: list[str]) -> list[str]:
    """The scenarios a strategy runs under: once per distinct set of labels it uses.

    ``random`` uses no labels: once, as ``"none"``. ``blocked`` and ``interleaved`` use only the categories:
    ``"none"`` (the data set's categories, shared by the ``human`` and ``llm`` tables) plus each ``*_clusters``
    scenario. Curricula use the difficulty: every scenario.

    >>> strategy_scenarios("blocked", ["llm", "llm_clusters"])
    ['none', 'llm_clusters']
    """
    if strategy in NEEDS_DIFFICULTY:
        return list(scenarios)
    if strategy in NEEDS_CATEGORY:
        clusters = [s for s in scenarios if s.endswith("_clusters")]
        return (["none"] if len(clusters) < len(scenarios) or not scenarios else []) + clusters
    return ["none"]


def expand_cells(config: StudyConfig) -> list[Cell]:
    """Models x training parts x (scenario, strategy) x replicates, in a stable order.

    A strategy runs once per distinct set of labels it uses (:func:`strategy_scenarios`), not once per scenario.
    """
    pairs = [(scenario, strategy) for strategy in config.strategies
             for scenario in strategy_scenarios(strategy, config.scenarios)]
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


def exploration_parameters(config: StudyConfig, out_dir: str | Path) -> dict:
    """Parameters of ``01_data_exploration``."""
    return {"study": config.name, "train_data": config.train_data, "train_format": config.train_format,
            "out_dir": str(out_dir)}


def prepare_parameters(config: StudyConfig, prepare_dir: str | Path) -> dict:
    """Parameters of ``02_difficulty_labeling``; ``parts`` maps each training part to its test set labels."""
    return {
        "study": config.name,
        "train_data": config.train_data,
        "train_format": config.train_format,
        "split": config.split.as_params(),
        "train_limit": config.train_limit,
        "test_sets": list(config.test_sets),
        "test_limit": config.test_limit,
        "scenarios": list(config.scenarios),
        "difficulty_models": list(config.difficulty_models),
        "difficulty_file": config.difficulty_file,
        "debias": config.debias,
        "parts": {part: part_test_sets(config, part) for part in training_parts(config.split)},
        "prepare_dir": str(prepare_dir),
    }


def cell_parameters(config: StudyConfig, cell: Cell, prepare_dir: str | Path, out_dir: str | Path) -> dict:
    """Parameters of ``03_train_evaluate`` for one cell."""
    return {
        "study": config.name,
        "cell_id": cell.id,
        "model": cell.model,
        "preset": config.preset_for(cell.model),
        "train_overrides": dict(config.train_overrides),
        "strategy": cell.strategy,
        "variant": config.variant,
        "rounds": config.rounds,
        "category_order": config.category_order,
        "scenario": cell.scenario,
        "seed": cell.replicate,
        "part": cell.part,
        "prepare_dir": str(prepare_dir),
        "test_sets": part_test_sets(config, cell.part),
        "out_dir": str(out_dir),
    }


def analysis_parameters(config: StudyConfig, run_dir: str | Path, out_dir: str | Path) -> dict:
    """Parameters of ``04_analysis``."""
    return {"study": config.name, "run_dir": str(run_dir), "out_dir": str(out_dir)}
