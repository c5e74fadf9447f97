"""Stage 03, ``03_train_evaluate``: one experiment cell. Owns the notebook's parameters (:class:`CellParams`:
the cell's place in the grid, its order, and every training setting of :class:`hils_kit.train.presets.TrainConfig`
as a typed parameter), the one place a cell's :class:`~hils_kit.train.presets.TrainConfig` is built
(:func:`train_config`), and the tables the cell trains and is tested on. Its files are named by
:class:`hils_kit.core.layout.CellFiles`.

>>> params = CellParams(preset="tiny", learning_rate=5e-4, train_seed=7, precision="fp32")
>>> config = train_config(params)
>>> config.learning_rate, config.lora_r, config.seed, config.bf16
(0.0005, 8, 7, False)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import pandas as pd

from hils_kit.core.layout import PrepareFiles
from hils_kit.core.params import optional_fields, param, same_as
from hils_kit.core.precision import with_precision
from hils_kit.data.loaders import load_questions
from hils_kit.labels.scenarios import SCENARIO
from hils_kit.order.adaptive import adaptive_schedule
from hils_kit.order.letter_prior import balance_letters
from hils_kit.order.orderings import CATEGORY_ORDERS, COMPETENCE_SHAPES, VARIANTS, order_questions
from hils_kit.order.registry import STRATEGIES, STRATEGY
from hils_kit.stages.prepare import PrepareParams
from hils_kit.train.presets import TrainConfig, make_config

# TrainConfig settings that are not notebook parameters of their own: the cell's train_seed and precision set them
CELL_SETTINGS = ("seed", "bf16")


@dataclass
class CellGridParams:
    """The cell's place in the study and its order (the first part of :class:`CellParams`)."""

    study: str = same_as(PrepareParams, "study")
    cell_id: str = param("smollm2__llm__curriculum__holdout__r0", "this cell's id", derived=True)
    model: str = param("smollm2", "model to fine-tune: kit name, local folder or hub id", derived=True)
    preset: str = param(
        "smollm2-cpu", "training preset (hils_kit.train.presets); each setting below may override it", derived=True
    )
    precision: Optional[str] = same_as(PrepareParams, "precision")
    strategy: str = param("curriculum", "training order", STRATEGIES, derived=True)
    variant: str = param("strict", "difficulty variant of this cell", VARIANTS, derived=True)
    rounds: int = param(3, "interleaving rounds per category")
    category_order: Union[str, list] = param(
        "size", f"order of the category blocks: {', '.join(CATEGORY_ORDERS)} or a list of every category"
    )
    scenario: str = param("llm", "labels the order uses", tuple(SCENARIO), derived=True)
    balance_letters: bool = param(
        False,
        "rotate each training question's options so the gold letters cycle A, B, C, ... along the (unchanged) "
        "order: removes the letter-prior confound",
    )
    competence_shape: str = param("sqrt", "competence function c(t) of the strategy competence", COMPETENCE_SHAPES)
    competence_start: float = param(0.01, "competence: share of the easiest questions open at the start, c(0)")
    rescore_every: int = param(
        0, "adaptive strategies: optimizer steps between re-scorings of the model's losses, 0: four times an epoch"
    )
    review_budget: float = param(
        0.25, "spaced_repetition: extra examples as a share of one epoch (random_matched gets as many)"
    )
    probe_questions: int = param(16, "held-out questions scored during training for the learning curve, 0 for none")
    probe_train_questions: int = param(
        16, "training questions scored during training for their learning and forgetting (trajectories.csv), 0 for none"
    )
    probe_every: int = param(0, "optimizer steps between probe scorings, 0: about 10 % of training")
    probe_max_share: float = param(
        0.15, "most of the training time the probe may take (measured; a study about forgetting may raise it)"
    )
    replicate: int = param(0, "replicate number r of this cell", derived=True)
    order_seed: int = param(0, "seed of the ordering (ties, shuffles)", derived=True)
    train_seed: int = param(42, "seed of training: LoRA init, dropout, data collation", derived=True)
    part: str = param("holdout", "training part prepared by 02 (holdout, fold0.., full)", derived=True)
    prepare_dir: str = same_as(PrepareParams, "prepare_dir")
    test_sets: list[str] = param(
        ["medmcqa_test", "medqa", "mmlu_medical"], "test set labels prepared for this part", derived=True
    )
    out_dir: str = param("runs/explore/cells/smollm2__llm__curriculum__holdout__r0", "this cell's folder", derived=True)


CellParams = dataclasses.make_dataclass(
    "CellParams",
    [
        (n, t, dataclasses.field(default=None, metadata={**f.metadata, "derived": True}))
        for n, t, f in optional_fields(TrainConfig, exclude=CELL_SETTINGS)
    ],
    bases=(CellGridParams,),
    namespace={"__module__": __name__},
)
CellParams.__doc__ = """``03_train_evaluate``: one experiment cell. After the grid fields come the training settings, one per
:class:`~hils_kit.train.presets.TrainConfig` field: ``None`` is the preset's value (the study runner writes the
resolved values)."""
TRAINING_SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in CELL_SETTINGS)


def train_config(params) -> TrainConfig:
    """The cell's training settings: the preset, each setting the parameters give, the cell's seed and precision."""
    given = {name: getattr(params, name) for name in TRAINING_SETTINGS if getattr(params, name) is not None}
    return make_config(params.preset, with_precision({**given, "seed": params.train_seed}, params.precision))


def resolved_settings(preset: str, overrides: dict) -> dict:
    """Every training setting of :class:`CellParams` resolved from ``preset`` and ``overrides``."""
    config = make_config(preset, overrides)
    return {name: getattr(config, name) for name in TRAINING_SETTINGS}


def cell_training_table(prepare_dir: str | Path, part: str, scenario: str) -> pd.DataFrame:
    """The training questions of ``part`` with the scenario's labels as ``difficulty`` (and ``cluster``)."""
    files = PrepareFiles(prepare_dir)
    table = load_questions(files.train(part))
    labels = pd.read_csv(files.labels, dtype={"id": str})
    table = table.drop(columns=[c for c in labels.columns if c != "id" and c in table]).merge(
        labels, on="id", how="left"
    )
    column = SCENARIO[scenario].difficulty_column
    if column is not None:
        if column not in table or table[column].isna().any():
            raise ValueError(
                f"{files.labels}: no '{column}' labels for every question of part '{part}' (scenario '{scenario}')"
            )
        table["difficulty"] = table[column]
    return table


def cell_test_sets(prepare_dir: str | Path, part: str, labels: list[str]) -> dict[str, pd.DataFrame]:
    """The test sets prepared for ``part``, by label."""
    files = PrepareFiles(prepare_dir)
    return {label: load_questions(files.test(part, label)) for label in labels}


# ----------------------------------------------------------------------------- the notebook's steps


def order_cell(params, table: pd.DataFrame) -> pd.DataFrame:
    """Step 1 of 03: ``table`` in the cell's training order, its options rotated when ``balance_letters``; for an
    adaptive strategy, the initial plan (:func:`cell_feed` decides the rest during training)."""
    if params.balance_letters and STRATEGY[params.strategy].adaptive:
        raise ValueError(
            f"balance_letters cycles the gold letters along a planned order; '{params.strategy}' is decided during "
            "training, so it does not apply (set balance_letters: false)"
        )
    ordered = order_questions(
        table,
        params.strategy,
        category=SCENARIO[params.scenario].category_column,
        variant=params.variant,
        rounds=params.rounds,
        seed=params.order_seed,
        category_order=params.category_order,
        competence_shape=params.competence_shape,
        competence_start=params.competence_start,
        review_budget=params.review_budget,
    )
    return balance_letters(ordered, seed=params.order_seed) if params.balance_letters else ordered


def cell_probe(params, tests: dict[str, pd.DataFrame], config: TrainConfig, table: pd.DataFrame) -> list:
    """Step 2 of 03: the probe's callbacks: held-out questions of the cell's test sets (the learning curve) and
    training questions of ``table`` (their learning and forgetting)."""
    from hils_kit.train.probe import probe_callbacks  # transformers: imported by the notebook, not the study planner

    return probe_callbacks(
        tests,
        params.probe_questions,
        params.probe_every,
        seed=params.order_seed,
        template=config.template,
        train_table=table,
        n_train=params.probe_train_questions,
        max_share=params.probe_max_share,
    )


def cell_feed(params, ordered: pd.DataFrame, config: TrainConfig):
    """Step 2 of 03 for an adaptive strategy: its training feed over ``ordered`` (None for a planned order)."""
    schedule = adaptive_schedule(params.strategy, len(ordered), params.order_seed, params.review_budget)
    if schedule is None:
        return None
    from hils_kit.train.adaptive_feed import AdaptiveFeed  # torch: imported by the notebook, not the study planner

    return AdaptiveFeed(schedule, ordered, params.rescore_every, config.template)
