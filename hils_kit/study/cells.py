"""A study's grid: the cells (model x scenario x strategy x training part x run) and the exact parameters each
notebook receives, built from the stages' dataclasses with ``dataclasses.replace``. A cell's runs are its
replicates, or its ordering seeds crossed with its training seeds (:func:`seed_runs`).

>>> from hils_kit.study.config import study_from_dict
>>> config = study_from_dict({"name": "demo", "models": ["tiny"], "strategies": ["random", "curriculum"],
...                           "scenarios": ["llm", "human"]})
>>> [cell.id for cell in expand_cells(config)]
['tiny__none__random__holdout__r0', 'tiny__llm__curriculum__holdout__r0', 'tiny__human__curriculum__holdout__r0']
>>> [cell.strategy for cell in expand_cells(dataclasses.replace(config, placebo=True))]
['random', 'curriculum', 'curriculum', 'curriculum_placebo', 'curriculum_placebo']
>>> part_test_sets(config, "holdout")
['medmcqa_test', 'medqa', 'mmlu_medical']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hils_kit.core.precision import pinned_precision, precision_record
from hils_kit.data.loaders import dataset_label
from hils_kit.labels.scenarios import SCENARIO
from hils_kit.models.shapes import model_shapes
from hils_kit.order.registry import STRATEGY, placebo_twin, strategy_scenarios
from hils_kit.stages.analysis import AnalysisParams
from hils_kit.stages.cell import CellParams, resolved_settings
from hils_kit.stages.exploration import ExplorationParams
from hils_kit.stages.prepare import PrepareParams
from hils_kit.study.config import PAPER_ORDER_SEEDS, SplitConfig, StudyConfig, model_slug
from hils_kit.train.presets import make_config


@dataclass(frozen=True)
class Cell:
    """One training run: a model trained on one part of the data in one order, then evaluated.

    The id ends ``__r{replicate}``, or ``__o{order_index}-t{train_index}`` for crossed seeds.

    >>> Cell("tiny", "llm", "curriculum", "holdout", 3, 1, 0, crossed=True).id
    'tiny__llm__curriculum__holdout__o1-t0'
    """

    model: str
    scenario: str  # "none", or a label scenario (see strategy_scenarios)
    strategy: str
    part: str  # "holdout", "fold0".."fold{k-1}" or "full"
    replicate: int  # the run's number among the runs of its model x scenario x strategy x part: 0, 1, ...
    order_index: int  # which ordering seed (see replicate_seeds)
    train_index: int  # which training seed
    crossed: bool = False  # replicates {order_seeds, train_seeds}: the id names both indexes

    @property
    def id(self) -> str:
        run = f"o{self.order_index}-t{self.train_index}" if self.crossed else f"r{self.replicate}"
        return f"{model_slug(self.model)}__{self.scenario}__{self.strategy}__{self.part}__{run}"


def training_parts(split: SplitConfig) -> list[str]:
    """``["holdout"]``, or ``["fold0", ..., "fold{k-1}"]`` plus ``"full"`` when ``include_full``."""
    if split.kind == "holdout":
        return ["holdout"]
    return [f"fold{i}" for i in range(split.k)] + (["full"] if split.include_full else [])


def part_test_sets(config: StudyConfig, part: str) -> list[str]:
    """Labels of the test sets a part is evaluated on (see :meth:`hils_kit.core.layout.PrepareFiles.test`)."""
    external = [dataset_label(s) for s in config.prepare.test_sets]
    own = dataset_label(config.prepare.train_data)
    if part == "holdout":
        return [f"{own}_test", *external]
    if part == "full":
        return external
    return [own]  # a fold is tested on its held-out questions only


def order_uses_seed(config: StudyConfig, strategy: str) -> bool:
    """Whether the ordering seed can change what a strategy's cells train on: the strategy is ``seeded``
    (:class:`~hils_kit.order.registry.Strategy`; every strategy of the kit is), its category blocks are shuffled,
    ``balance_letters`` starts its cycle at the seed, or ``variant: paper`` switches its difficulty to tiers.

    >>> from hils_kit.study.config import study_from_dict
    >>> order_uses_seed(study_from_dict({}), "curriculum")  # a strict curriculum breaks ties with the seed
    True
    """
    info = STRATEGY[strategy]
    return (
        info.seeded
        or config.cell.balance_letters
        or (info.uses_category and config.cell.category_order == "shuffle")
        or (info.uses_difficulty and config.variant == "paper")
    )


def seed_runs(config: StudyConfig, strategy: str) -> list[tuple[int, int]]:
    """The ``(order_index, train_index)`` of each run of a strategy's cell, in run order.

    An integer ``replicates`` n gives ``(r, r)`` for r < n. ``{order_seeds: A, train_seeds: B}`` gives the A x B
    cross product, with one order seed where the seed cannot change the order (:func:`order_uses_seed`).

    >>> from hils_kit.study.config import study_from_dict
    >>> seed_runs(study_from_dict({"replicates": 2}), "random")
    [(0, 0), (1, 1)]
    >>> seed_runs(study_from_dict({"replicates": {"order_seeds": 2, "train_seeds": 2}}), "random")
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    if config.crossed_seeds is None:
        return [(r, r) for r in range(config.replicates)]
    orders, trains = config.crossed_seeds
    orders = orders if order_uses_seed(config, strategy) else 1
    return [(i, j) for i in range(orders) for j in range(trains)]


def seed_plan(config: StudyConfig) -> list[str]:
    """The plan's lines on crossed seeds: the runs per cell, each strategy that runs one order seed, and each strict
    difficulty order, whose seed only breaks ties.

    >>> from hils_kit.study.config import study_from_dict
    >>> seed_plan(study_from_dict({"replicates": {"order_seeds": 3, "train_seeds": 2}, "strategies": ["random"]}))
    ['runs per cell: 3 order seeds × 2 training seeds']
    """
    if config.crossed_seeds is None:
        return []
    orders, trains = config.crossed_seeds
    lines = [f"runs per cell: {_count(orders, 'order seed')} × {_count(trains, 'training seed')}"]
    for strategy in study_strategies(config):
        info = STRATEGY[strategy]  # a placebo's seed also draws its shuffled labels, not only ties
        name = f"{strategy} ({config.variant})" if info.uses_difficulty else strategy
        if orders > 1 and not order_uses_seed(config, strategy):
            lines.append(
                f"{name}: its order does not depend on the seed, so 1 order seed × {_count(trains, 'training seed')}"
            )
        elif orders > 1 and config.variant == "strict" and info.uses_difficulty and not info.placebo_of:
            lines.append(f"{name}: the order seed only breaks ties between equal difficulties")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def study_strategies(config: StudyConfig) -> list[str]:
    """The study's ``strategies``, each followed by its placebo twin when ``placebo`` is true (one that uses labels
    or losses) and by the Random Shuffle with its number of examples (``random_matched``, for one that spends an
    extra budget), unless listed already.

    >>> from hils_kit.study.config import study_from_dict
    >>> study_strategies(study_from_dict({"strategies": ["random", "blocked"], "placebo": True}))
    ['random', 'blocked', 'blocked_placebo']
    >>> study_strategies(study_from_dict({"strategies": ["random", "spaced_repetition"]}))
    ['random', 'spaced_repetition', 'random_matched']
    """
    twins = [
        (placebo_twin(s) if config.placebo else None, STRATEGY[s].matched_by if s in STRATEGY else None)
        for s in config.strategies
    ]
    return list(dict.fromkeys(k for s, more in zip(config.strategies, twins) for k in (s, *more) if k))


def expand_cells(config: StudyConfig) -> list[Cell]:
    """Models x training parts x (scenario, strategy) x runs (:func:`seed_runs`), in a stable order.

    A strategy runs once per distinct set of labels it uses (:func:`strategy_scenarios`), not once per scenario;
    its placebo twin (``placebo: true``) runs the same scenarios and seeds.
    """
    pairs = [
        (scenario, strategy)
        for strategy in study_strategies(config)
        for scenario in strategy_scenarios(strategy, config.scenarios)
    ]
    crossed = config.crossed_seeds is not None
    return [
        Cell(model, scenario, strategy, part, replicate, order_index, train_index, crossed)
        for model in config.models
        for part in training_parts(config.split)
        for scenario, strategy in pairs
        for replicate, (order_index, train_index) in enumerate(seed_runs(config, strategy))
    ]


# ----------------------------------------------------------------------------- notebook parameters


def exploration_parameters(config: StudyConfig, out_dir: str | Path) -> ExplorationParams:
    """Parameters of ``01_data_exploration``."""
    prep = config.prepare
    return ExplorationParams(
        study=config.name,
        train_data=prep.train_data,
        train_format=prep.train_format,
        compare_with=list(prep.test_sets),
        tokenizer_model=config.models[0],
        out_dir=str(out_dir),
    )


def study_precision(config: StudyConfig) -> dict:
    """What the study computes in, decided once on the driver and passed to every notebook, whatever the backend
    (nodes of different kinds would otherwise train strategies in different precisions and confound the two):
    :func:`~hils_kit.core.precision.precision_record` of the study's ``precision``, measured when ``auto`` on the
    shapes of the largest of its models (trained and labelling), on the driver's GPU when it has one (a local study
    trains there), else on its CPU. A study with cells on GPUs (4-bit presets) keeps ``auto``: each GPU decides for
    itself (4-bit weights compute in bf16).

    >>> from hils_kit.study.config import study_from_dict
    >>> study_precision(study_from_dict({"models": ["tiny"], "preset": "tiny", "precision": "fp32"}))
    {'precision': 'fp32', 'decided_by': 'setting'}
    """
    if any(make_config(config.preset_for(m), config.train_overrides).quantization != "none" for m in config.models):
        return {"precision": pinned_precision(config.precision), "decided_by": "each GPU (4-bit presets)"}
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return precision_record(config.precision, device, model_shapes(*config.models, *config.prepare.difficulty_models))


def prepare_parameters(config: StudyConfig, prepare_dir: str | Path) -> PrepareParams:
    """Parameters of ``02_difficulty_labeling``; ``parts`` maps each training part to its test set labels."""
    return dataclasses.replace(
        config.prepare,
        study=config.name,
        split=config.split.as_params(),
        scenarios=list(config.scenarios),
        precision=study_precision(config)["precision"],
        parts={part: part_test_sets(config, part) for part in training_parts(config.split)},
        prepare_dir=str(prepare_dir),
    )


def replicate_seeds(config: StudyConfig, cell: Cell) -> dict:
    """The cell's ``variant``, ``order_seed`` and ``train_seed``: every run is an independent one.

    Ordering seed i is i; training seed j is the preset's seed (or the study's ``train.seed``) plus j, so LoRA
    init, dropout and the collator differ between runs. An integer ``replicates`` gives run r both i = j = r.
    With ``variant: paper`` ordering seed 0 is the strict order and seeds 1-4 are tiered orders with the authors'
    seeds (:data:`~hils_kit.study.config.PAPER_ORDER_SEEDS`).

    >>> from hils_kit.study.config import study_from_dict
    >>> config = study_from_dict({"models": ["tiny"], "preset": "tiny", "variant": "paper", "replicates": 3})
    >>> [replicate_seeds(config, Cell("tiny", "llm", "curriculum", "holdout", r, r, r)) for r in (0, 2)]
    [{'variant': 'strict', 'order_seed': 0, 'train_seed': 42}, {'variant': 'tiers', 'order_seed': 123, 'train_seed': 44}]
    """
    base = make_config(config.preset_for(cell.model), config.train_overrides).seed
    i, train_seed = cell.order_index, base + cell.train_index
    if config.variant != "paper":
        return {"variant": config.variant, "order_seed": i, "train_seed": train_seed}
    uses_difficulty = STRATEGY[cell.strategy].uses_difficulty
    return {
        "variant": "tiers" if i and uses_difficulty else "strict",
        "order_seed": PAPER_ORDER_SEEDS[i],
        "train_seed": train_seed,
    }


def cell_parameters(config: StudyConfig, cell: Cell, prepare_dir: str | Path, out_dir: str | Path) -> CellParams:
    """Parameters of ``03_train_evaluate`` for one cell: the study's cell settings, the cell's place in the grid,
    and every training setting resolved from the preset and the study's ``train`` block."""
    preset = config.preset_for(cell.model)
    bf16 = config.train.bf16  # a training setting bf16 wins over the study's precision
    return dataclasses.replace(
        config.cell,
        study=config.name,
        cell_id=cell.id,
        model=cell.model,
        preset=preset,
        precision=study_precision(config)["precision"] if bf16 is None else pinned_precision(bf16),
        strategy=cell.strategy,
        scenario=cell.scenario,
        replicate=cell.replicate,
        part=cell.part,
        prepare_dir=str(prepare_dir),
        test_sets=part_test_sets(config, cell.part),
        out_dir=str(out_dir),
        **replicate_seeds(config, cell),
        **resolved_settings(preset, config.train_overrides),
    )


def analysis_parameters(config: StudyConfig, run_dir: str | Path, out_dir: str | Path) -> AnalysisParams:
    """Parameters of ``04_analysis``."""
    scored = any(SCENARIO[s].difficulty == "llm" for s in config.scenarios) and not config.prepare.difficulty_file
    return dataclasses.replace(
        config.analysis,
        study=config.name,
        run_dir=str(run_dir),
        out_dir=str(out_dir),
        difficulty_models=list(config.prepare.difficulty_models) if scored else [],
    )
