"""``hils order``: write a question set in the training order of a learning strategy.

hils order medmcqa --strategy interleaved_curriculum --labels difficulty.csv -o runs/order.csv
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from hils_kit.cli.data import _source_options, non_negative_int, parse_mapping, positive_number, write_output_rejects
from hils_kit.core.paths import output_file
from hils_kit.data.loaders import read_questions, save_questions
from hils_kit.data.questions import rejects_path
from hils_kit.labels.label_files import read_labels
from hils_kit.labels.tiers import THRESHOLDS
from hils_kit.order.orderings import CATEGORY_ORDERS, COMPETENCE_SHAPES, VARIANTS, order_questions
from hils_kit.order.placebo import placebo_text
from hils_kit.order.registry import NEEDS_DIFFICULTY, STRATEGIES

log = logging.getLogger(__name__)
PROTECTED = ("question", "options", "answer", "dataset")


def register(commands) -> None:
    p = commands.add_parser(
        "order",
        help="write questions in the order of a learning strategy",
        description="Order a question set by a learning strategy (paper §2, Figure 1) and write it as the kit's "
        "CSV with every column plus 'position' (0-based) and the structure columns "
        "(block, round, tier, pass).",
        epilog="Strategies that use difficulty (curriculum, blocked_curriculum, interleaved_curriculum, "
        "anti_curriculum, competence) need a difficulty column, higher = harder: in the data or from --labels. "
        "Adaptive strategies (self_paced, spaced_repetition) are decided during training: the file is their "
        "initial plan, trained with `hils train FILE --strategy NAME`.",
    )
    p.add_argument("data", metavar="DATA", help="data set name (see `hils data list`) or a question file")
    _source_options(p)
    p.add_argument(
        "--strategy", required=True, choices=STRATEGIES, metavar="NAME", help=f"one of: {', '.join(STRATEGIES)}"
    )
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="labels CSV merged onto the data: keyed by 'id' (id,difficulty,...; its columns replace "
        "same-named ones) or the authors' Index,llm_difficulty (Index = 0-based data row)",
    )
    p.add_argument(
        "--difficulty-scale",
        type=positive_number("--difficulty-scale"),
        default=1.0,
        metavar="S",
        help="divide the labels' difficulty by S first, e.g. 100 for percent (default 1: in [0, 1])",
    )
    p.add_argument("--difficulty", default="difficulty", metavar="COL", help="difficulty column (default difficulty)")
    p.add_argument(
        "--category", default="category", metavar="COL", help="category column (default category; e.g. cluster_label)"
    )
    p.add_argument(
        "--variant",
        default="strict",
        choices=VARIANTS,
        help="strict: sorted by difficulty; tiers: easy/medium/hard, shuffled inside (default strict)",
    )
    p.add_argument(
        "--thresholds",
        metavar="LO,HI",
        help=f"tier cut points for --variant tiers: LO,HI or {' or '.join(THRESHOLDS)} "
        f"({', '.join(f'{k}={v[0]},{v[1]}' for k, v in THRESHOLDS.items())}); terciles by default",
    )
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="interleaving rounds (default 3)")
    p.add_argument(
        "--category-order",
        default="size",
        choices=CATEGORY_ORDERS,
        help="order of the category blocks: size (largest first, default), name, shuffle (by seed)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="M",
        help="show each block M times, the repeats reshuffled (default 1; ids then repeat)",
    )
    p.add_argument(
        "--competence-shape",
        default="sqrt",
        choices=COMPETENCE_SHAPES,
        help="competence function c(t) of --strategy competence (default sqrt)",
    )
    p.add_argument(
        "--competence-start",
        type=float,
        default=0.01,
        metavar="C0",
        help="competence: share of the easiest questions open at the start (default 0.01)",
    )
    p.add_argument(
        "--review-budget",
        type=float,
        default=0.25,
        metavar="B",
        help="spaced_repetition's extra examples as a share of one epoch; random_matched repeats as many "
        "(default 0.25)",
    )
    p.add_argument("--seed", type=non_negative_int("--seed"), default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="output CSV (rejects go beside it)")
    p.set_defaults(func=cmd_order)


def parse_thresholds(text: str | None):
    """``"0.66,0.8"`` -> ``(0.66, 0.8)``; a name in :data:`THRESHOLDS` stays a name; None stays None."""
    if text is None or text in THRESHOLDS:
        return text
    parts = text.split(",")
    try:
        lo, hi = (float(x) for x in parts)
    except ValueError:
        raise ValueError(f"--thresholds '{text}': give LO,HI (two numbers) or one of {', '.join(THRESHOLDS)}") from None
    return lo, hi


def merge_labels(
    table: pd.DataFrame,
    labels_file: str | Path,
    scale: float = 1.0,
    data_rows: int | None = None,
    difficulty: str = "difficulty",
) -> pd.DataFrame:
    """``table`` with the columns of ``labels_file`` (see :mod:`hils_kit.labels.label_files`); every question needs a label."""
    labels = read_labels(labels_file, table, scale=scale, data_rows=data_rows, value=difficulty)
    protected = [c for c in labels.columns if c in PROTECTED]
    if protected:
        raise ValueError(f"{labels_file}: labels may not replace question columns {', '.join(protected)}")
    replaced = [c for c in labels.columns if c != "id" and c in table]
    labels.index = table.index
    return pd.concat([table.drop(columns=replaced), labels.drop(columns="id")], axis=1)


def cmd_order(args) -> int:
    output_file(args.output, "-o")
    output_file(rejects_path(args.output), "-o (its rejects file)")
    result = read_questions(args.data, format=args.format, mapping=parse_mapping(args.map), cop_base=args.cop_base)
    table = result.table
    if args.labels:
        table = merge_labels(
            table, args.labels, scale=args.difficulty_scale, data_rows=result.data_rows, difficulty=args.difficulty
        )
    if args.strategy in NEEDS_DIFFICULTY and args.difficulty not in table:
        raise ValueError(
            f"{args.data}: strategy '{args.strategy}' needs difficulty column '{args.difficulty}', which "
            f"the data does not have: give --labels FILE with columns id,{args.difficulty}, or name "
            f"another column with --difficulty"
        )
    ordered = order_questions(
        table,
        args.strategy,
        difficulty=args.difficulty,
        category=args.category,
        variant=args.variant,
        rounds=args.rounds,
        seed=args.seed,
        category_order=args.category_order,
        thresholds=parse_thresholds(args.thresholds),
        repeat=args.repeat,
        competence_shape=args.competence_shape,
        competence_start=args.competence_start,
        review_budget=args.review_budget,
    )
    ordered["position"] = range(len(ordered))
    save_questions(ordered, args.output)
    where = write_output_rejects(result.rejects, args.output)
    shape = ", ".join(f"{ordered[c].nunique()} {c}s" for c in ("block", "round", "tier") if c in ordered)
    placebo = ordered.attrs.get("placebo")
    print(
        f"wrote {args.output}: {len(ordered):,} rows in {args.strategy} order"
        + (f" ({shape})" if shape else "")
        + (f"; {len(result.rejects)} refused rows in {where}" if where else "")
    )
    if placebo:
        print(
            f"placebo labels (shuffled with seed {placebo['seed']}, attempt {placebo['attempt']}): {placebo_text(placebo)}"
        )
    if "adaptive" in ordered.attrs:
        plan = ordered.attrs["adaptive"]
        print(
            f"{args.strategy} is decided during training from the model's own losses ({plan['examples']:,} examples); "
            f"initial plan: {plan['initial_plan']}.\nTrain it with: hils train {args.output} --strategy {args.strategy}"
        )
    return 0
