"""``hils label``: LLM difficulty and LLM-defined categories for a question set.

hils label difficulty medmcqa --models smollm2 --limit 80 --debias -o labels/difficulty.csv
hils label categories medmcqa --limit 800 -o labels/clusters.csv
hils label categories lek --search paper -o labels/clusters.csv
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from hils_kit.cli.data import _source_options, parse_mapping
from hils_kit.core.paths import cache_dir, output_file
from hils_kit.core.precision import HELP as PRECISION_HELP
from hils_kit.core.precision import PRECISIONS
from hils_kit.data.loaders import load_questions
from hils_kit.data.prompts import TEMPLATES
from hils_kit.data.splits import sample_questions
from hils_kit.labels.categories import DEFAULT_ENCODER, DEFAULT_SEARCH, DEFAULT_TEXT, SEARCHES, TEXTS


def register(commands) -> None:
    label = commands.add_parser("label", help="label questions with LLM difficulty or LLM-defined categories")
    sub = label.add_subparsers(dest="label_command", metavar="ACTION", required=True)

    p = sub.add_parser(
        "difficulty",
        help="difficulty = 1 - mean expected accuracy of scoring LLMs (paper Eq. 1)",
        description="Score every question with each model (probability on the correct letter, "
        "softmax over the option letters) and save id,difficulty,p_correct_<model>,right_<model> (1: the "
        "model's answer is right; the respondents of an IRT fit, study scenario 'irt'). "
        "A saved file is reused when models, questions and settings are unchanged.",
    )
    _data_options(p)
    p.add_argument("--models", required=True, help="comma-separated model names or folders, e.g. smollm2,gemma3-270m")
    p.add_argument(
        "--debias",
        action="store_true",
        help="average over cyclic rotations of the options (cancels letter bias; n times slower)",
    )
    p.add_argument("--template", default="paper", choices=list(TEMPLATES), help="prompt template (default: paper)")
    p.add_argument("--batch-size", type=int, default=32, help="questions per forward pass (default 32)")
    p.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument(
        "--cache",
        default=str(cache_dir() / "expected_accuracy"),
        help="folder keeping each model's scores, so adding a model scores only that one (default: %(default)s)",
    )
    p.set_defaults(func=cmd_difficulty)

    p = sub.add_parser(
        "categories",
        help="cluster question embeddings with UMAP + HDBSCAN (paper App. C)",
        description="Embed questions with a sentence encoder, search UMAP/HDBSCAN hyper-parameters "
        "with seeded TPE, and save id,cluster,probability,was_noise.",
    )
    _data_options(p)
    p.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help="sentence encoder: 'minilm' (all-MiniLM-L6-v2, embedded), a sentence-transformers folder "
        "or a hub id in the local cache (default %(default)s)",
    )
    p.add_argument(
        "--text",
        default=DEFAULT_TEXT,
        choices=TEXTS,
        help="what is embedded: the question only (as the authors' code did) or the question with "
        "its options (as the paper says) (default %(default)s)",
    )
    p.add_argument(
        "--search",
        default=DEFAULT_SEARCH,
        choices=list(SEARCHES),
        help="hyper-parameter ranges: 'scaled' to the number of questions or 'paper' (Table 4, LEK) "
        "(default %(default)s)",
    )
    p.add_argument(
        "--trials", type=int, help="search trials (default: " + ", ".join(f"{k} {v}" for k, v in SEARCHES.items()) + ")"
    )
    p.add_argument("--clusters", default="6,20", metavar="MIN,MAX", help="wanted cluster count range (default 6,20)")
    p.add_argument("--batch-size", type=int, default=32, help="questions per encoder batch (default 32)")
    p.set_defaults(func=cmd_categories)


def _data_options(p) -> None:
    p.add_argument("data", help="data set name (see `hils data list`) or a question file")
    _source_options(p)
    p.add_argument("--limit", type=int, help="label a seeded sample of N questions, stratified by category")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the --limit sample and of the cluster search (default 0)"
    )
    p.add_argument("-o", "--output", required=True, help="labels CSV to write (a .meta.json goes beside it)")


def check_output(args) -> None:
    """Refuse a bad ``-o`` (and its ``.meta.json`` sidecar) before any question or model loads."""
    output_file(args.output, "-o")
    output = Path(args.output)
    output_file(output.with_name(f"{output.stem}.meta.json"), "-o (its .meta.json)")


def load_sample(args) -> pd.DataFrame:
    """The question table of ``args.data``, cut to a stratified sample of ``--limit`` questions."""
    table = load_questions(args.data, format=args.format, mapping=parse_mapping(args.map), cop_base=args.cop_base)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be positive, got {args.limit}")
        table = sample_questions(table, args.limit, seed=args.seed)
    print(f"{args.data}: {len(table):,} questions in {table['category'].nunique()} categories")
    return table


def cmd_difficulty(args) -> int:
    from hils_kit.labels.difficulty import label_difficulty, model_agreement
    from hils_kit.labels.tiers import LLM_THRESHOLDS, resolve_thresholds, tier_names

    check_output(args)
    table = load_sample(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    start = time.monotonic()
    labels = label_difficulty(
        table, models, args.debias, args.output, args.template, args.batch_size, args.cache, args.precision
    )
    print(f"labelled in {time.monotonic() - start:.0f} s -> {args.output}")
    agreement = model_agreement(labels)
    print("\nmean expected accuracy per model:")
    for name, value in agreement.mean_accuracy.items():
        print(f"  {name:<32} {value:.3f}")
    if len(models) > 1:
        print("\npairwise Pearson correlation of per-question expected accuracy:")
        print(agreement.correlation.round(3).to_string())
        print(f"mean pairwise correlation: {agreement.mean_pairwise:.3f} (paper, six LLMs on LEK: 0.54)")
    d = labels["difficulty"]
    print(
        f"\ndifficulty: mean {d.mean():.3f}, median {d.median():.3f}, sd {d.std():.3f}, "
        f"min {d.min():.3f}, max {d.max():.3f}"
    )
    terciles = resolve_thresholds(None, d)
    for title, cuts in (
        (f"paper thresholds {LLM_THRESHOLDS[0]}/{LLM_THRESHOLDS[1]}", LLM_THRESHOLDS),
        (f"terciles {terciles[0]:.3f}/{terciles[1]:.3f}", terciles),
    ):
        counts = tier_names(d, cuts).value_counts()
        print(f"tiers by {title}: " + ", ".join(f"{t} {counts.get(t, 0)}" for t in ("easy", "medium", "hard")))
    return 0


def cmd_categories(args) -> int:
    from sklearn.metrics import adjusted_rand_score

    from hils_kit.labels.categories import cluster_report, label_categories

    low, _, high = args.clusters.partition(",")
    try:
        cluster_range = (int(low), int(high))
    except ValueError:
        raise ValueError(f"--clusters '{args.clusters}': use MIN,MAX, e.g. 6,20") from None
    check_output(args)
    table = load_sample(args)
    start = time.monotonic()
    result = label_categories(
        table, args.encoder, args.output, args.trials, args.seed, cluster_range, args.search, args.text, args.batch_size
    )
    print(f"clustered in {time.monotonic() - start:.0f} s -> {args.output}")
    print(f"{args.search} search, {result.n_trials} trials over {result.search_space}")
    print(
        f"\n{result.n_clusters} clusters, objective {result.objective:.3f}, params {result.params}, "
        f"{int(result.was_noise.sum())} noise questions ({result.was_noise.mean():.1%}) moved to the nearest cluster"
    )
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(cluster_report(table, result.labels).to_string(index=False))
    if table["category"].nunique() > 1:
        ari = adjusted_rand_score(table["category"], result.labels)
        print(f"\nadjusted Rand index against the {table['category'].nunique()} human categories: {ari:.3f}")
    return 0
