"""``hils train``: fine-tune a model on an ordered question file, in its row order, and audit the order.

hils train runs/order/curriculum.csv -o runs/train-curriculum
hils train ordered.csv --model tiny --preset tiny --set learning_rate=5e-4 --limit 64 -o /tmp/run
hils train questions.csv --strategy self_paced -o runs/train-self-paced
"""

from __future__ import annotations

import argparse
import sys

from hils_kit.core.precision import HELP as PRECISION_HELP
from hils_kit.core.precision import PRECISIONS, with_precision
from hils_kit.order.registry import ADAPTIVE
from hils_kit.train.presets import PRESETS, describe_settings


def register(commands) -> None:
    p = commands.add_parser(
        "train",
        help="LoRA/QLoRA fine-tuning in the file's row order, with an audit of the fed order",
        description="Fine-tune a model on ORDERED (the kit CSV that `hils order` writes) in its row order\n"
        "and write a run folder: adapter/, train_config.json, train_log.csv, train_summary.json,\n"
        "order_planned.csv and order_fed.csv (what the model was really fed, audited against the plan).",
        epilog="presets: "
        + ", ".join(f"{name} ({p['model']})" for name, p in PRESETS.items())
        + "\n\nsettings for --set:\n"
        + describe_settings(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ordered", help="ordered question file (kit CSV from `hils order`)")
    p.add_argument("--model", help="model name or folder (default: the preset's model, else smollm2)")
    p.add_argument("--preset", choices=list(PRESETS), help="training preset (default: the one made for the model)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="override a training setting, e.g. --set learning_rate=1e-4 (repeatable)",
    )
    p.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP + " (the setting bf16)")
    p.add_argument("--limit", type=int, help="train on the first N questions of the order only")
    p.add_argument(
        "--strategy",
        choices=ADAPTIVE,
        metavar="NAME",
        help=f"decide the order during training from the model's losses: {', '.join(ADAPTIVE)}; the file's rows are "
        "the questions (and spaced_repetition's epoch order)",
    )
    p.add_argument(
        "--rescore-every",
        type=int,
        default=0,
        metavar="K",
        help="--strategy: optimizer steps between re-scorings (default 0: four times an epoch)",
    )
    p.add_argument(
        "--review-budget",
        type=float,
        default=0.25,
        metavar="B",
        help="--strategy spaced_repetition: extra examples as a share of one epoch (default 0.25)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="--strategy *_placebo: seed of the score shuffles")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument(
        "--balance-letters",
        action="store_true",
        help="rotate each question's options so the gold letters cycle A, B, C, ... along the (unchanged) order",
    )
    p.add_argument(
        "-o", "--output", required=True, help="run folder to write: a new one, or one the kit made (replaced whole)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an existing folder the kit did not make, replacing only the files a run writes",
    )
    p.set_defaults(func=cmd_train)


def parse_settings(items: list[str]) -> dict:
    """``["learning_rate=1e-4"]`` -> ``{"learning_rate": "1e-4"}`` (types are coerced by ``make_config``)."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set '{item}': use KEY=VALUE, e.g. --set learning_rate=1e-4")
        settings[key.strip()] = value.strip()
    return settings


def cmd_train(args) -> int:
    from hils_kit.core.paths import output_folder
    from hils_kit.data.loaders import load_questions
    from hils_kit.models.loading import DEFAULT_MODEL
    from hils_kit.train.presets import make_config, preset_for_model, preset_model

    output_folder(args.output, "-o", args.overwrite)
    model = args.model or (preset_model(args.preset) if args.preset else DEFAULT_MODEL)
    preset = args.preset or preset_for_model(model)
    config = make_config(preset, with_precision(parse_settings(args.settings), args.precision))
    table = load_questions(args.ordered)
    if table.attrs.get("rejects"):
        rejects = table.attrs["rejects"]
        raise ValueError(
            f"{args.ordered}: {len(rejects)} row(s) refused (first: {rejects[0]}); training on "
            "a silently shorter order is not allowed, fix the file"
        )
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        table = table.head(args.limit)
    if args.balance_letters:
        from hils_kit.order.letter_prior import balance_letters, tail_letter_mix

        table = balance_letters(table)
        print(f"gold letters balanced along the order; last 10%: {tail_letter_mix(table)}")
    print(f"training {model} (preset {preset or 'none'}) on {len(table)} questions from {args.ordered}")

    from hils_kit.order.adaptive import adaptive_schedule
    from hils_kit.order.audit import OrderAuditError
    from hils_kit.train.adaptive_feed import AdaptiveFeed
    from hils_kit.train.training import train

    feed = None
    if args.strategy:
        if args.balance_letters:
            raise ValueError(
                "--balance-letters cycles letters along a planned order; --strategy decides it in training"
            )
        schedule = adaptive_schedule(args.strategy, len(table), args.seed, args.review_budget)
        feed = AdaptiveFeed(schedule, table.reset_index(drop=True), args.rescore_every, config.template)
        print(f"{args.strategy}: {schedule.total} examples decided during training")
    try:
        result = train(
            table,
            model=model,
            config=config,
            out_dir=args.output,
            device=args.device,
            overwrite=args.overwrite,
            feed=feed,
        )
    except OrderAuditError as err:
        print(f"hils: error: {err}", file=sys.stderr)
        return 1
    s = result.summary
    audit = s["order_audit"]
    print(f"\nrun folder: {result.out_dir}")
    print(f"device: {s['device']}")
    print(f"steps: {s['steps']} ({s['n_examples_fed']} examples in {s['micro_batches']} micro-batches)")
    print(
        f"time: {s['train_seconds']:.1f} s ({s['seconds_per_step']:.3f} s/step, {s['tokens_per_second']:.0f} tokens/s)"
    )
    print(f"peak memory: {s['peak_memory_mb']:.0f} MB ({s['peak_memory_kind']})")
    print(f"loss: final {s['final_loss']:.4f}, mean {s['mean_loss']:.4f}")
    print(
        f"order audit: {'fed order equals the plan' if s['audit_ok'] else 'MISMATCH'} "
        f"({audit['n_same_position']}/{audit['n_planned']} positions)"
    )
    if s["adaptive"]:
        a = s["adaptive"]
        print(
            f"adaptive: {a['rescorings']} re-scorings of {a['questions_scored']} questions in {a['rescoring_seconds']:.1f} s; "
            f"decisions {a['decisions']} (order_planned.csv)"
        )
    return 0
