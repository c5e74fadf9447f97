"""``hils evaluate``: score a model (zero-shot or with an adapter) on test sets and print the metrics."""

from __future__ import annotations

from hils_kit.core.precision import HELP as PRECISION_HELP
from hils_kit.core.precision import PRECISIONS
from hils_kit.data.prompts import TEMPLATES


def register(commands) -> None:
    p = commands.add_parser(
        "evaluate", help="score a model on test sets: predictions, accuracy with intervals, baselines"
    )
    p.add_argument("--model", default="smollm2", help="model name or folder (default smollm2)")
    p.add_argument("--adapter", help="LoRA adapter folder on top of the model, e.g. RUN_DIR/adapter")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="NAME_OR_FILE",
        help="data set name (medmcqa, medqa, mmlu_medical) or question file; repeat for several",
    )
    p.add_argument(
        "--limit", type=int, default=0, help="score a seeded sample of N questions per set, stratified by category"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    p.add_argument(
        "--exclude-ids",
        metavar="FILE",
        help="ids to leave out (training questions): a split JSON (its train ids), a JSON list or one id per line",
    )
    p.add_argument("--template", default="paper", choices=list(TEMPLATES), help="prompt template (default paper)")
    p.add_argument("--batch-size", type=int, default=32, help="questions per forward pass (default 32)")
    p.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="folder for predictions_*.csv and metrics.json: a new one, or one the kit made",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an existing folder the kit did not make (only predictions_*.csv and "
        "metrics.json are replaced)",
    )
    p.set_defaults(func=cmd_evaluate)


def format_report(metrics: dict) -> str:
    """One line per test set, then the predicted and gold letter counts."""
    lines = [
        f"{'data':<14} {'n':>5}  {'accuracy [95% CI]':<22} {'debiased':>8} {'majority':>8} {'macro F1':>8} {'s/q':>6}"
    ]
    for name, m in metrics.items():
        lo, hi = m["accuracy_ci"]
        acc = f"{m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"
        lines.append(
            f"{name:<14} {m['n']:>5}  {acc:<22} {m['debiased_accuracy']:>8.3f} "
            f"{m['majority_baseline']:>8.3f} {m['f1_macro']:>8.3f} {m['seconds_per_question']:>6.2f}"
        )
    lines.append("")
    lines.append(f"precision: {', '.join(sorted({m['precision'] for m in metrics.values()}))}")
    for name, m in metrics.items():
        lines.append(f"{name}: predicted {_counts(m['predicted_letters'])} | gold {_counts(m['gold_letters'])}")
    return "\n".join(lines)


def _counts(letters: dict) -> str:
    return " ".join(f"{letter}{n}" for letter, n in letters.items())


def cmd_evaluate(args) -> int:
    from hils_kit.core.paths import output_folder
    from hils_kit.score.evaluation import evaluate, resolve_test_sets

    output_folder(args.output, "-o", args.overwrite)
    if args.limit < 0 or args.batch_size < 1:
        raise ValueError("--limit must be >= 0 and --batch-size >= 1")
    sets = resolve_test_sets(args.data, limit=args.limit, seed=args.seed, exclude_ids=args.exclude_ids)
    metrics = evaluate(
        args.model,
        args.adapter,
        test_sets=sets,
        out_dir=args.output,
        template=args.template,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    print(format_report(metrics))
    print(f"\nwrote {args.output}/metrics.json and predictions_*.csv")
    return 0
