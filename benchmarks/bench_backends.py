"""Per-cell overhead of each study backend (local, Ray, SLURM through submitit) on the smoke study, side by side.

    .venv/bin/python benchmarks/bench_backends.py [--cells GLOB] [--address RAY_HEAD] [--backends local,ray,slurm]
                                                  [-o FILE]

The selected cells of the smoke study run once on the local backend (with 01, 02 and 04); then, backend after
backend and cell after cell, each cell runs again alone from a copy of that run without its folder (``--only
CELL``; 01, 02 and 04 stay done), so no two notebooks share the CPUs. For each cell it takes
the wall time of the backend's ``run`` (submit to DONE marker: scheduling, transfer, papermill, kernel) and the
notebook's own execution time recorded by papermill (``metadata.papermill.duration``); the overhead of a
backend is their difference, in seconds and as a share of the cell's wall time. Starting or joining the Ray
instance happens once per study, before any cell, and is reported apart (``connect_s``). Without
``--address`` a local Ray instance is started for each cell's study (as ``hils study --backend ray`` does).

Progress lines go to stderr; stdout gets only the JSON: per backend the cells, mean cell wall time, mean
notebook time, mean overhead (s and %), and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from hils_kit.core.layout import Layout
from hils_kit.core.paths import PARAMS_DIR
from hils_kit.study.executors import LocalExecutor
from hils_kit.study.jobs import plan
from hils_kit.study.loading import load_study
from hils_kit.study.runner import run_study


class Timed:
    """An executor that times each cell it is given through another one (one cell per study here)."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, []

    @property
    def slots(self) -> int:
        return self.inner.slots

    def run(self, jobs, events) -> None:
        start = time.monotonic()
        self.inner.run(jobs, events)
        self.seconds.append(time.monotonic() - start)

    def close(self) -> None:
        self.inner.close()


def make_backend(name: str, out: Path, study: str, address: str | None):
    if name == "local":
        return LocalExecutor(1)
    if name == "ray":
        from hils_kit.study.ray_backend import RayExecutor

        return RayExecutor(address=address, num_cpus=2)
    from hils_kit.study.config import ClusterConfig
    from hils_kit.study.slurm_backend import SlurmExecutor

    return SlurmExecutor(ClusterConfig(time_min=30), Layout(out, study).run_dir / "slurm", submitit_cluster="local")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cells",
        default="tiny__*__[rc][au][nr]*__holdout__r0",
        help="glob of the smoke study's cells to time; 04 needs the random cell among them",
    )
    parser.add_argument("--address", help="an existing Ray head (default: a local Ray instance per study)")
    parser.add_argument("--backends", default="local,ray,slurm")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()

    def say(line):
        return print(line, file=sys.stderr, flush=True)

    config = load_study(PARAMS_DIR / "studies" / "smoke.yaml")
    root = Path(tempfile.mkdtemp(prefix="hils-bench-backends-"))
    base = root / "base"
    cells = [
        job.name for job in plan(config, Layout(base, config.name))[2] if fnmatch.fnmatchcase(job.name, args.cells)
    ]
    load_before = os.getloadavg()
    run_study(config, out=base, only=args.cells, say=say)
    results = {}
    for backend in args.backends.split(","):
        rows = []
        for cell in cells:
            out = root / backend / cell
            shutil.copytree(base, out)
            shutil.rmtree(out / "runs" / config.name / "cells" / cell)
            connect = time.monotonic()
            timed = Timed(make_backend(backend, out.resolve(), config.name, args.address))
            connect = time.monotonic() - connect
            run = run_study(config, out=out, only=cell, say=say, backend=timed)
            outcome = next(o for o in run.outcomes if o.job.name == cell)
            if outcome.status != "done":
                raise SystemExit(f"{backend} {cell}: {outcome.status} {outcome.error}")
            notebook = nbformat.read(outcome.job.output, as_version=4).metadata.papermill.duration
            rows.append({"cell": cell, "connect_s": connect, "wall_s": timed.seconds[0], "notebook_s": notebook})
        wall = sum(r["wall_s"] for r in rows) / len(rows)
        notebook = sum(r["notebook_s"] for r in rows) / len(rows)
        results[backend] = {
            "cells": len(rows),
            "connect_s": round(sum(r["connect_s"] for r in rows) / len(rows), 2),
            "cell_wall_s": round(wall, 2),
            "notebook_s": round(notebook, 2),
            "overhead_s": round(wall - notebook, 2),
            "overhead_pct": round(100 * (wall - notebook) / wall, 1),
            "per_cell": rows,
        }
        say(f"{backend}: {results[backend]['overhead_s']} s overhead per cell ({results[backend]['overhead_pct']} %)")
    report = {
        "benchmark": "backends",
        "study": "smoke",
        "cells": cells,
        "backends": results,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
