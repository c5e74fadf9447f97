"""``hils analyse``: the analysis again, without training.

hils analyse runs/default                                   # 04 again on a study's cells, reports re-rendered
hils analyse runs/default --alpha 0.01 --run-sd 2.5
hils analyse --predictions long.csv --baseline random -o comparisons/
"""

from __future__ import annotations

import time
from pathlib import Path

COLUMNS = ("dataset", "strategy", "metric", "claim", "estimate", "ci_low", "ci_high", "p_value", "p_holm")


def register(commands) -> None:
    p = commands.add_parser(
        "analyse",
        help="analyse again without training: a study's run folder, or a long predictions CSV from anywhere",
        description="RUNS_DIR: run 04_analysis again on a study's finished cells and re-render its reports. "
        "--predictions: compare strategies in a CSV with the columns dataset, strategy, run, question, correct "
        "(optional: gold_logprob, brier, answer, model, scenario) and write comparisons.csv, "
        "variance_components.csv, meta_analysis.csv and power.csv (and seed_spread.csv where the runs have "
        "crossed order_seed and train_seed columns) into -o DIR.",
    )
    p.add_argument("run_dir", nargs="?", metavar="RUNS_DIR", help="a study's run folder (runs/<study>)")
    p.add_argument("--predictions", metavar="LONG.csv", help="per-question predictions of every run, one row each")
    p.add_argument(
        "--baseline", default="random", help="the strategy every other one is compared with (default random)"
    )
    p.add_argument("-o", "--output", metavar="DIR", help="--predictions: folder for the tables (new, or the kit's)")
    p.add_argument("--overwrite", action="store_true", help="let -o name an existing folder the kit did not make")
    p.add_argument("--alpha", type=float, help="family-wise error rate of the strategy claims (default 0.05)")
    p.add_argument(
        "--run-sd",
        type=float,
        dest="run_sd_points",
        help="run-to-run sd of accuracy (points) assumed where a strategy has one run (default: 04's run_sd_points, 3)",
    )
    p.add_argument(
        "--target", type=float, dest="target_points", help="accuracy difference (points) to plan runs for (default 2)"
    )
    p.set_defaults(func=cmd_analyse)


def cmd_analyse(args) -> int:
    if args.run_dir and args.predictions:
        raise ValueError("give either RUNS_DIR (a study's run folder) or --predictions LONG.csv, not both")
    if not (args.run_dir or args.predictions):
        raise ValueError("give RUNS_DIR (a study's run folder) or --predictions LONG.csv")
    changes = {k: getattr(args, k) for k in ("alpha", "run_sd_points", "target_points") if getattr(args, k) is not None}
    if args.run_dir:
        if args.output or args.baseline != "random":
            raise ValueError("-o and --baseline go with --predictions; a study's analysis writes into its own folder")
        from hils_kit.study.reanalyse import analyse_again

        outcome = analyse_again(args.run_dir, changes)
        print(f"report: {outcome.job.report}" if outcome.status == "done" else f"04_analysis {outcome.status}")
        return 0 if outcome.status == "done" else 1
    if not args.output:
        raise ValueError("--predictions needs -o DIR for its tables")
    return _compare_file(Path(args.predictions), Path(args.output), args.baseline, args.overwrite, changes)


def _compare_file(path: Path, out: Path, baseline: str, overwrite: bool, changes: dict) -> int:
    from hils_kit.analyse.comparisons import compare_strategies
    from hils_kit.analyse.findings import power_view
    from hils_kit.analyse.predictions import read_long_predictions
    from hils_kit.core.paths import atomic_path, output_folder

    started = time.monotonic()
    output_folder(out, "-o", overwrite)
    frame = read_long_predictions(path)
    result = compare_strategies(frame, baseline, **changes)
    with atomic_path(out, overwrite) as folder:
        folder.mkdir()
        result.table.to_csv(folder / "comparisons.csv", index=False)
        result.components.to_csv(folder / "variance_components.csv", index=False)
        result.meta.to_csv(folder / "meta_analysis.csv", index=False)
        power_view(result.table).to_csv(folder / "power.csv")
        if not result.seeds.empty:
            result.seeds.to_csv(folder / "seed_spread.csv", index=False)
    table = result.table
    print(
        f"{len(table)} comparisons ({frame['dataset'].nunique()} test sets, {frame['run'].nunique()} runs) "
        f"in {time.monotonic() - started:.1f} s -> {out}/comparisons.csv"
    )
    for note in result.notes:
        print(f"- {note}")
    held = table[table.get("significant_holm", False) == True]  # noqa: E712 (NaN for model claims)
    print(f"- {len(held)} claim(s) significant after Holm" + (":" if len(held) else "."))
    if len(held):
        print(held[list(COLUMNS)].to_string(index=False))
    return 0
