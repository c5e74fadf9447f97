"""A study: one YAML file that expands into the grid of training cells the runner executes.

A study file (``params/studies/<name>.yaml``) is a top-level mapping validated into :class:`StudyConfig`: its
grid keys (models, scenarios, strategies, replicates, split, ...) and, flat beside them, the settings each
notebook stage declares in its parameters dataclass (:data:`STAGE_KEYS`). Unknown keys, wrong types and bad
values are refused with the file and the key named. :mod:`hils_kit.study.loading` reads the file and checks
what it points at; :mod:`hils_kit.study.cells` expands the grid into cells and notebook parameters.

>>> config = study_from_dict({"name": "demo", "models": ["tiny"], "train_limit": 24, "train": {"lora_r": 4}})
>>> config.prepare.train_limit, config.train_overrides, config.cell.rounds
(24, {'lora_r': 4}, 3)
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field

from hils_kit.core.params import build, choice_problems, optional_fields, param, study_keys
from hils_kit.core.precision import PRECISIONS
from hils_kit.data.loaders import dataset_label
from hils_kit.labels.scenarios import LABEL_SCENARIOS
from hils_kit.order.orderings import CATEGORY_ORDERS, VARIANTS
from hils_kit.order.registry import (
    ADAPTIVE,
    NEEDS_CATEGORY,
    NEEDS_DIFFICULTY,
    PAPER_STRATEGIES,
    STRATEGIES,
    placebo_twin,
)
from hils_kit.stages.analysis import AnalysisParams
from hils_kit.stages.cell import CellParams
from hils_kit.stages.prepare import PrepareParams
from hils_kit.train.presets import TrainConfig, make_config

# "paper": the authors' five runs per strategy (paper.md §2.2, §4.4): run 1 the strict order, runs 2-5 tiered
# orders with the seeds of their code; strategies without difficulty use the same ordering seeds
STUDY_VARIANTS = (*VARIANTS, "paper")
PAPER_ORDER_SEEDS = (0, 42, 123, 456, 789)
SEED_KEYS = ("order_seeds", "train_seeds")  # replicates as a mapping: ordering seeds x training seeds
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


TrainSettings = dataclasses.make_dataclass(
    "TrainSettings", optional_fields(TrainConfig), namespace={"__module__": __name__}
)
TrainSettings.__doc__ = "A study's ``train:`` block: any TrainConfig field; null (or absent) keeps the preset's value."


@dataclass
class StudyConfig:
    """A study: the grid keys, and the stages' settings nested with their defaults.

    A study file gives every key flat (``train_limit: 24``); each key that is not a grid key belongs to the
    notebook stage that declares it (:class:`~hils_kit.stages.prepare.PrepareParams`,
    :class:`~hils_kit.stages.cell.CellParams`) and lands in ``prepare`` or ``cell``.
    """

    name: str = param("default", "study name, used for folder names")
    description: str = param("", "one paragraph shown at the top of the report")
    models: list[str] = param(["smollm2"], "kit model names, local folders or hub ids")
    preset: str | dict[str, str] = param("smollm2-cpu", "training preset, or a mapping model -> preset")
    train: TrainSettings = field(
        default_factory=TrainSettings,
        metadata={"help": "training settings that override the preset (any TrainConfig field; alias train_overrides)"},
    )
    precision: str = param(
        "auto",
        "fp32 or bf16 (autocast) for labelling, training and scoring; auto: the driver's HILS_PRECISION (written "
        "into every notebook's parameters), else the faster of the two on the driver for the study's largest model, "
        "measured",
        PRECISIONS,
    )
    split: SplitConfig = field(
        default_factory=SplitConfig,
        metadata={"help": "{kind: holdout, test_fraction, seed} or {kind: kfold, k, seed, include_full}"},
    )
    scenarios: list[str] = param(["llm"], f"any of {', '.join(LABEL_SCENARIOS)}", LABEL_SCENARIOS)
    strategies: list[str] = param(list(PAPER_STRATEGIES), f"any of {', '.join(STRATEGIES)}", STRATEGIES)
    variant: str = param(
        "strict",
        f"difficulty variant: {', '.join(STUDY_VARIANTS)} (paper: strict order, then tiered orders)",
        STUDY_VARIANTS,
    )
    placebo: bool = param(
        False,
        "also run a placebo twin of every strategy that uses labels or losses (<strategy>_placebo: the same schedule "
        "on labels, or losses, shuffled among the questions): does the order help by its labels or by its shape?",
    )
    replicates: int | dict = param(
        1,
        "independent runs per cell: an integer n (run r: ordering seed r, training seed base + r), or "
        "{order_seeds: A, train_seeds: B} (every ordering seed crossed with every training seed)",
    )
    # the stages' own settings (flat keys in the study file)
    prepare: PrepareParams = field(default_factory=PrepareParams, metadata={"help": "settings of 02 (flat keys)"})
    cell: CellParams = field(default_factory=CellParams, metadata={"help": "settings of 03 (flat keys)"})
    analysis: AnalysisParams = field(default_factory=AnalysisParams, metadata={"help": "settings of 04 (flat keys)"})
    # Execution (not part of any notebook's parameters, so changing it reruns nothing)
    cluster: ClusterConfig = field(
        default_factory=ClusterConfig,
        metadata={
            "help": "SLURM settings of --backend slurm: partition, time_min, gpus_per_cell, cpus_per_cell, mem_gb, "
            "array_parallelism, additional"
        },
    )

    def preset_for(self, model: str) -> str:
        return self.preset[model] if isinstance(self.preset, dict) else self.preset

    @property
    def crossed_seeds(self) -> tuple[int, int] | None:
        """``(order_seeds, train_seeds)`` when ``replicates`` is a mapping; None for an integer."""
        crossed = isinstance(self.replicates, dict)
        return (self.replicates["order_seeds"], self.replicates["train_seeds"]) if crossed else None

    @property
    def train_overrides(self) -> dict:
        """The training settings the study gives (not null)."""
        return {k: v for k, v in dataclasses.asdict(self.train).items() if v is not None}


STAGE_CLASSES = {"prepare": PrepareParams, "cell": CellParams, "analysis": AnalysisParams}
STAGE_KEYS = {stage: study_keys(cls) for stage, cls in STAGE_CLASSES.items()}
GRID_KEYS = [f.name for f in dataclasses.fields(StudyConfig) if f.name not in STAGE_KEYS]


def study_keys_help() -> str:
    """Every key of a study file with its help: the grid keys, then each stage's."""
    lines = [f"{f.name}: {f.metadata.get('help', '')}" for f in dataclasses.fields(StudyConfig) if f.name in GRID_KEYS]
    for stage, cls in STAGE_CLASSES.items():
        lines += [
            f"{f.name}: {f.metadata.get('help', '')}" for f in dataclasses.fields(cls) if f.name in STAGE_KEYS[stage]
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- validation


def study_from_dict(data: dict, source: str = "study") -> StudyConfig:
    """Validate a mapping into a :class:`StudyConfig`; errors name ``source`` and the key.

    The stages' keys are given flat and land in ``prepare`` / ``cell``; ``train_overrides`` is an alias of
    ``train``.
    """
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: the top level must be a mapping (name: ..., models: [...]), got {type(data).__name__}"
        )
    data = dict(data)
    if "train_overrides" in data:
        if "train" in data:
            raise ValueError(f"{source}: give 'train' or its alias 'train_overrides', not both")
        data["train"] = data.pop("train_overrides")
    known = [k for k in GRID_KEYS] + [k for keys in STAGE_KEYS.values() for k in keys]
    for key in data:
        if key not in known:
            raise ValueError(f"{source}: unknown key '{key}' (known keys: {', '.join(known)})")
    stages = {stage: {k: data.pop(k) for k in keys if k in data} for stage, keys in STAGE_KEYS.items()}
    try:
        config = build(StudyConfig, data)
        config = dataclasses.replace(
            config, **{stage: build(cls, stages[stage]) for stage, cls in STAGE_CLASSES.items()}
        )
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


def _problems(c: StudyConfig) -> list[str]:
    prep, cell = c.prepare, c.cell
    out = choice_problems(c) + choice_problems(prep) + choice_problems(cell) + choice_problems(c.analysis)
    if not 0 < c.analysis.alpha < 1:
        out.append(f"'alpha' must lie strictly between 0 and 1, got {c.analysis.alpha}")
    if not c.analysis.run_sd_points >= 0 or not c.analysis.target_points > 0:
        out.append("'run_sd_points' must be >= 0 and 'target_points' > 0 (accuracy points)")
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
    if split.kind == "kfold" and split.include_full and not prep.test_sets:
        out.append("'split.include_full' trains on all questions, so it needs external 'test_sets'")
    for key in ("train_limit", "test_limit"):
        if getattr(prep, key) < 0:
            out.append(f"'{key}' should be 0 (all) or more")
    if not cell.probe_max_share > 0:
        out.append(f"'probe_max_share' {cell.probe_max_share} should be a share of the training time, above 0")
    for key in ("probe_questions", "probe_train_questions", "probe_every"):
        if getattr(cell, key) < 0:
            out.append(f"'{key}' should be 0 or more")
    if cell.rounds < 1:
        out.append("'rounds' should be at least 1")
    if "irt" in c.scenarios and len(prep.difficulty_models) < 3 and not prep.irt_respondents:
        out.append(
            f"scenario 'irt' fits the answers of at least 3 respondents; 'difficulty_models' has "
            f"{len(prep.difficulty_models)}"
        )
    if "irt" in c.scenarios and prep.difficulty_file and not prep.irt_respondents:
        out.append("scenario 'irt' fits the difficulty_models' answers; 'difficulty_file' holds difficulties only")
    if cell.rescore_every < 0:
        out.append("'rescore_every' should be 0 (four times an epoch) or more")
    if not 0 < cell.review_budget <= 1:
        out.append(f"'review_budget' {cell.review_budget} should be a share of one epoch, in (0, 1]")
    if not 0 < cell.competence_start < 1:
        out.append(f"'competence_start' {cell.competence_start} should be in (0, 1)")
    adaptive = [s for s in c.strategies if s in ADAPTIVE]
    if adaptive and c.train.num_train_epochs not in (None, 1):
        out.append(f"{adaptive} decide one epoch during training; 'num_train_epochs' {c.train.num_train_epochs} != 1")
    if adaptive and cell.balance_letters:
        out.append(f"'balance_letters' cycles letters along a planned order; {adaptive} decide theirs during training")
    out += replicate_problems(c)
    for key in ("strategies", "scenarios"):
        values = getattr(c, key)
        if len(set(values)) < len(values):
            out.append(f"'{key}' repeats a value: {values}")
    if not c.strategies:
        out.append("'strategies' is empty")
    if c.placebo and c.strategies and not any(placebo_twin(s) for s in c.strategies):
        out.append(f"'placebo' is true, but none of 'strategies' {c.strategies} has a placebo twin (one uses labels)")
    if any(s in NEEDS_DIFFICULTY for s in c.strategies) and not c.scenarios:
        out.append("'scenarios' is empty, but difficulty-based strategies need at least one")
    if c.precision != "auto" and c.train.bf16 is not None:
        out.append(f"'precision' {c.precision} and 'train.bf16': give one of them")
    out += category_order_problems(c)
    for model in c.models:
        if isinstance(c.preset, dict) and model not in c.preset:
            continue  # reported above
        try:
            config = make_config(c.preset_for(model), c.train_overrides)
        except ValueError as err:
            out.append(f"'preset' / 'train' for model {model!r}: {err}")
            break
        settings = _setting_problems(config)
        if settings:
            out.append(f"'preset' / 'train' for model {model!r}: {'; '.join(settings)}")
            break
    if prep.train_format in ("csv", "jsonl"):
        out.append(
            f"'train_format' {prep.train_format!r} needs a column mapping, which a study cannot give; convert "
            f"the file first: hils data validate FILE --format {prep.train_format} --map ... -o train.csv"
        )
    if {"llm", "llm_clusters"} & set(c.scenarios) and not (prep.difficulty_models or prep.difficulty_file):
        out.append("LLM scenarios need 'difficulty_models' or a 'difficulty_file'")
    labels = [dataset_label(s) for s in [prep.train_data, *prep.test_sets]]
    if len(set(labels)) < len(labels):
        out.append(f"'train_data' and 'test_sets' repeat a data set: {labels}")
    return out


def replicate_problems(c: StudyConfig) -> list[str]:
    """Problems with the study's ``replicates``: a positive integer, or ``{order_seeds: A, train_seeds: B}``.

    >>> for problem in replicate_problems(StudyConfig(replicates={"order_seeds": 0, "train_seed": 2})):
    ...     print(problem)
    'replicates.train_seed' is not a key (known: order_seeds, train_seeds)
    'replicates.order_seeds' should be a positive integer, got 0
    'replicates.train_seeds' is missing
    """
    paper = len(PAPER_ORDER_SEEDS)
    if not isinstance(c.replicates, dict):
        if c.replicates < 1:
            return ["'replicates' should be at least 1"]
        if c.variant == "paper" and c.replicates > paper:
            return [f"'variant' paper defines {paper} runs per cell; 'replicates' is {c.replicates}"]
        return []
    out = [
        f"'replicates.{key}' is not a key (known: {', '.join(SEED_KEYS)})"
        for key in c.replicates
        if key not in SEED_KEYS
    ]
    for key in SEED_KEYS:
        value = c.replicates.get(key)
        if key not in c.replicates:
            out.append(f"'replicates.{key}' is missing")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            out.append(f"'replicates.{key}' should be a positive integer, got {value!r}")
    orders = c.replicates.get("order_seeds")
    if c.variant == "paper" and not out and orders > paper:
        out.append(f"'variant' paper defines {paper} ordering seeds; 'replicates.order_seeds' is {orders}")
    return out


def category_order_problems(c: StudyConfig) -> list[str]:
    """Problems with the study's ``category_order`` (a list must name categories, once each)."""
    order = c.cell.category_order
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


def model_slug(model: str) -> str:
    """A folder-safe id for a model name, folder or hub id: ``"org/My Model"`` -> ``"org-My-Model"``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.") or "model"
