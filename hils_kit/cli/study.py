"""``hils study``: run or resume a study, then write its HTML reports.

hils study params/studies/default.yaml --workers 2
hils study default --only '*curriculum*' --dry-run
hils study paper --backend ray --address ray-head:6379
hils study paper --backend slurm --partition gpu --time-min 600
"""

from __future__ import annotations

from pathlib import Path

from hils_kit.core.paths import NOTEBOOKS_DIR, PARAMS_DIR, PROJ_ROOT, claim_folder, output_folder
from hils_kit.study.ray_backend import CONNECT_TIMEOUT, ray_head
from hils_kit.study.slurm_backend import SUBMITIT_CLUSTERS, require_slurm

BACKENDS = ("local", "ray", "slurm")
CLUSTER_FLAGS = ("partition", "time_min", "gpus_per_cell", "cpus_per_cell", "mem_gb", "array_parallelism")


def register(commands) -> None:
    p = commands.add_parser(
        "study",
        help="run a study: notebooks 01-04 over every cell, then HTML reports",
        description="Run (or resume) a study. Finished runs are kept and skipped; a run whose "
        "parameters changed is redone.",
    )
    p.add_argument("study", help="study YAML, or the name of one in params/studies/")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="cells run side by side, one GPU each, or without GPUs an equal share of the CPU cores each (default 1)",
    )
    p.add_argument(
        "--out",
        help="folder for params/, runs/ and reports/: the project root (default), a new "
        "folder, or one an earlier `hils study --out` made",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let --out name an existing folder the kit did not make (only the study's own files "
        "under params/, runs/ and reports/ are written)",
    )
    p.add_argument("--only", metavar="PATTERN", help="run only the cells whose id matches this glob")
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and a papermill command for one; write and run nothing"
    )
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="folder of the four notebooks")
    backend = p.add_argument_group("backends", "where the cells run; 01, 02 and 04 always run here")
    backend.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: this machine (--workers); ray: one Ray task per cell; slurm: a job array "
        "through submitit (default local)",
    )
    backend.add_argument(
        "--address",
        help="ray: the cluster to join (default $RAY_ADDRESS, else a Ray instance started here for this study)",
    )
    backend.add_argument(
        "--connect-timeout",
        type=float,
        default=CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"ray: how long the head at --address has to answer before the study stops (default {CONNECT_TIMEOUT:g})",
    )
    backend.add_argument("--num-cpus", type=float, default=1, help="ray: CPUs per cell task (default 1)")
    backend.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="ray: reruns of a cell whose worker died (notebook errors are never retried; default 3)",
    )
    backend.add_argument(
        "--shared-fs",
        action="store_true",
        help="ray: workers read and write the study folders in place (default: 02's output "
        "goes to the task, the cell's files come back to this machine)",
    )
    backend.add_argument(
        "--keep-adapters", action="store_true", help="ray without --shared-fs: bring the trained adapters back too"
    )
    for key in CLUSTER_FLAGS:
        kind = str if key == "partition" else int
        backend.add_argument(
            f"--{key.replace('_', '-')}", type=kind, dest=key, help=f"slurm: overrides the study's cluster.{key}"
        )
    backend.add_argument(
        "--submitit-cluster",
        choices=SUBMITIT_CLUSTERS,
        default="slurm",
        help="slurm: 'local' runs the same jobs as local processes, without SLURM (default slurm)",
    )
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


def study_out(out: str | None, overwrite: bool) -> Path:
    """The ``--out`` folder: the project root when not given, else a folder checked by :func:`output_folder`."""
    if out is None:
        return PROJ_ROOT
    is_root = output_folder(out, "--out", overwrite=True).resolve() == PROJ_ROOT  # '', '.', '..', a file: refused
    return PROJ_ROOT if is_root else output_folder(out, "--out", overwrite)


def check_backend(args) -> None:
    """Refuse a backend that is not there (no SLURM, no Ray head at the address) before anything runs."""
    if args.backend == "slurm":
        require_slurm(args.submitit_cluster)
    if args.backend == "ray":
        ray_head(args.address, args.connect_timeout)


def cell_backend(args, config, out: Path):
    """The executor of the cells that ``--backend`` names, or None for the local one."""
    if args.backend == "ray":
        from hils_kit.study.ray_backend import RayExecutor

        return RayExecutor(
            address=args.address,
            num_cpus=args.num_cpus,
            max_retries=args.max_retries,
            shared_fs=args.shared_fs,
            keep_adapters=args.keep_adapters,
            connect_timeout=args.connect_timeout,
        )
    if args.backend == "slurm":
        import dataclasses

        from hils_kit.core.layout import Layout
        from hils_kit.study.slurm_backend import SlurmExecutor

        flags = {key: getattr(args, key) for key in CLUSTER_FLAGS if getattr(args, key) is not None}
        cluster = dataclasses.replace(config.cluster, **flags)
        folder = Layout(out.resolve(), config.name).run_dir / "slurm"
        return SlurmExecutor(cluster, folder, submitit_cluster=args.submitit_cluster)
    return None


def cmd_study(args) -> int:
    from hils_kit.study.loading import load_study
    from hils_kit.study.runner import run_study, summary_table

    out = study_out(args.out, args.overwrite)
    config = load_study(study_path(args.study))
    if not args.dry_run:
        check_backend(args)
    if not args.dry_run and out != PROJ_ROOT:
        claim_folder(out, "hils study")
    try:
        run = run_study(
            config,
            out=out,
            notebooks=args.notebooks,
            workers=args.workers,
            only=args.only,
            dry_run=args.dry_run,
            backend=None if args.dry_run else cell_backend(args, config, out),
        )
    except KeyboardInterrupt:
        print("hils study: interrupted; finished runs are kept, run the same command to resume")
        return 130
    if args.dry_run:
        return 0
    print()
    print(summary_table(run))
    print(f"report: {run.index}")
    return 0 if run.ok else 1
