"""``hils study``: run or resume a study, then write its HTML reports.

    hils study params/studies/default.yaml --workers 2
    hils study default --only '*curriculum*' --dry-run
"""

from __future__ import annotations

from pathlib import Path

from hils_kit.paths import NOTEBOOKS_DIR, PARAMS_DIR, PROJ_ROOT


def register(commands) -> None:
    p = commands.add_parser("study", help="run a study: notebooks 01-04 over every cell, then HTML reports",
                            description="Run (or resume) a study. Finished runs are kept and skipped; a run whose "
                                        "parameters changed is redone.")
    p.add_argument("study", help="study YAML, or the name of one in params/studies/")
    p.add_argument("--workers", type=int, default=1, help="cells run side by side, one GPU each (default 1)")
    p.add_argument("--out", type=Path, default=PROJ_ROOT,
                   help="folder for params/, runs/ and reports/ (default: the project root)")
    p.add_argument("--only", metavar="PATTERN", help="run only the cells whose id matches this glob")
    p.add_argument("--dry-run", action="store_true", help="list the runs and a papermill command for one; write and run nothing")
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="folder of the four notebooks")
    p.set_defaults(func=cmd_study)


def study_path(name_or_path: str) -> Path:
    """A study file, or ``params/studies/<name>.yaml`` for a bare name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    named = PARAMS_DIR / "studies" / f"{name_or_path}.yaml"
    if named.exists():
        return named
    raise FileNotFoundError(f"{name_or_path}: no such study file (nor {named})")


def cmd_study(args) -> int:
    from hils_kit.runner import run_study, summary_table
    from hils_kit.study import load_study

    config = load_study(study_path(args.study))
    try:
        run = run_study(config, out=args.out, notebooks=args.notebooks, workers=args.workers, only=args.only,
                        dry_run=args.dry_run)
    except KeyboardInterrupt:
        print("hils study: interrupted; finished runs are kept, run the same command to resume")
        return 130
    if args.dry_run:
        return 0
    print()
    print(summary_table(run))
    print(f"report: {run.index}")
    return 0 if run.ok else 1
