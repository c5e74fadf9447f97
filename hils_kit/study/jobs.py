"""The plan of a study: one job per notebook run, its fingerprint, its DONE/FAILED marker, and the manifest.

Planning knows what must run and what already ran; it runs nothing (that is :mod:`hils_kit.study.executors`).
Under ``out``::

    params/<study>/exploration.yaml, prepare.yaml, <cell_id>.yaml, analysis.yaml   one YAML per notebook run
    runs/<study>/01_data_exploration.ipynb   exploration/
    runs/<study>/02_difficulty_labeling.ipynb   prepare/        splits, labels, train and test files
    runs/<study>/cells/<cell_id>/03_train_evaluate.ipynb, results.json, papermill.log, DONE or FAILED
    runs/<study>/04_analysis.ipynb   analysis/     table_<scenario>.csv, *.png
    runs/<study>/manifest.json   every step and cell with its status, for 04 and the index page
    reports/<study>/index.html, <notebook>.html, cells/<cell_id>.html

A run that finished gets ``DONE`` last, holding a fingerprint of its parameters and of the inputs it used; a
failed run gets ``FAILED`` with the error. Those markers are the only record of what ran.

>>> from hils_kit.study.config import study_from_dict
>>> config = study_from_dict({"name": "demo", "models": ["tiny"], "strategies": ["random"]})
>>> explore, prepare, cells, analysis = plan(config, Layout(Path("/tmp/hils-demo"), "demo"))
>>> cells[0].name, cells[0].folder.relative_to("/tmp/hils-demo").as_posix()
('tiny__none__random__holdout__r0', 'runs/demo/cells/tiny__none__random__holdout__r0')
>>> cells[0].done_record() is None      # nothing ran yet
True
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from hils_kit import __version__
from hils_kit.core.layout import DONE, FAILED, LOG_NAME, NOTEBOOKS, CellFiles, Layout
from hils_kit.core.paths import NOTEBOOKS_DIR, write_text_atomic
from hils_kit.study.cells import (
    Cell,
    analysis_parameters,
    cell_parameters,
    expand_cells,
    exploration_parameters,
    prepare_parameters,
    study_precision,
)
from hils_kit.study.config import StudyConfig

LOCATION_KEYS = ("out_dir", "prepare_dir", "run_dir")  # derived from study and cell id: not part of fingerprints


@dataclass
class Job:
    """One notebook run."""

    name: str  # the notebook name for the study steps, the cell id for cells
    notebook: Path  # source notebook
    output: Path  # executed notebook
    folder: Path  # the run's own folder: working directory, papermill.log, DONE/FAILED; emptied before a run
    parameters: dict
    params_file: Path
    report: Path  # code-free HTML of the executed notebook
    upstream: str = ""  # fingerprint of the inputs it depends on
    cell: Cell | None = None
    required: tuple[str, ...] = ()  # files the notebook must write into ``folder``

    @property
    def fingerprint(self) -> str:
        own = {k: v for k, v in self.parameters.items() if k not in LOCATION_KEYS}
        text = json.dumps({"parameters": own, "upstream": self.upstream}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def log(self) -> Path:
        return self.folder / LOG_NAME

    def done_record(self) -> dict | None:
        """The ``DONE`` record when this run finished with the same parameters and inputs, else None."""
        try:
            record = json.loads((self.folder / DONE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if record.get("fingerprint") == self.fingerprint else None

    def reset(self) -> None:
        """Empty the run's folder and remove an executed notebook of an earlier attempt: a run starts clean."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.output.unlink(missing_ok=True)
        self.folder.mkdir(parents=True)


@dataclass
class Outcome:
    """What happened to a job in this invocation."""

    job: Job
    status: str  # "done" (ran now), "cached" (done before), "failed", "pending" (not run: see error)
    seconds: float = 0.0
    error: str = ""


def plan(config: StudyConfig, layout: Layout, notebooks: Path = NOTEBOOKS_DIR) -> tuple[Job, Job, list[Job], Job]:
    """The jobs of a study: exploration, preparation, one per cell, analysis (its inputs are set when run)."""

    def step(notebook: str, folder: str, parameters) -> Job:
        return Job(
            notebook,
            notebooks / f"{notebook}.ipynb",
            layout.executed(notebook),
            layout.step_dir(folder),
            asdict(parameters),
            layout.params_file(folder),
            layout.report(notebook),
        )

    explore = step(NOTEBOOKS[0], "exploration", exploration_parameters(config, layout.step_dir("exploration")))
    prepare = step(NOTEBOOKS[1], "prepare", prepare_parameters(config, layout.step_dir("prepare")))
    analysis = step(NOTEBOOKS[3], "analysis", analysis_parameters(config, layout.run_dir, layout.step_dir("analysis")))
    cells = []
    for cell in expand_cells(config):
        folder = layout.cell_dir(cell.id)
        cells.append(
            Job(
                cell.id,
                notebooks / f"{NOTEBOOKS[2]}.ipynb",
                layout.executed(NOTEBOOKS[2], cell.id),
                folder,
                asdict(cell_parameters(config, cell, prepare.folder, folder)),
                layout.params_file(cell.id),
                layout.report(NOTEBOOKS[2], cell.id),
                upstream=prepare.fingerprint,
                cell=cell,
                required=(CellFiles(folder).results.name,),
            )
        )
    return explore, prepare, cells, analysis


def check_parameters(job: Job) -> None:
    """Refuse to start when the notebook is missing or its parameters cell lacks a parameter the runner passes."""
    import papermill

    if not job.notebook.exists():
        raise FileNotFoundError(f"{job.notebook}: notebook not found")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    declared = papermill.inspect_notebook(job.notebook)
    missing = [name for name in job.parameters if name not in declared]
    if missing:
        raise ValueError(
            f"{job.notebook}: the cell tagged 'parameters' does not declare {', '.join(missing)} "
            f"(the runner passes {', '.join(job.parameters)}; papermill cannot read a line with "
            f"two '=' (comments included) or an annotation with '|': write `x: str = None`)"
        )


def params_yaml(job: Job) -> str:
    """The text of a run's parameter YAML (papermill ``-f``)."""
    run = f" of {job.name}" if job.name != job.notebook.stem else ""
    header = f"# {job.notebook.name} parameters{run}, written by hils study (papermill -f reads them)\n"
    return header + yaml.safe_dump(job.parameters, sort_keys=False)


def write_params(jobs: list[Job], params_dir: Path) -> None:
    """One YAML per notebook run (papermill ``-f``); YAMLs of runs no longer in the study are removed."""
    for job in jobs:
        write_text_atomic(job.params_file, params_yaml(job))
    keep = {job.params_file for job in jobs}
    for stale in params_dir.glob("*.yaml"):
        if stale not in keep:
            stale.unlink()


# ----------------------------------------------------------------------------- markers


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def error_message(job: Job, returncode: int) -> str:
    """The notebook's exception (``ename: evalue``), or the end of the papermill log."""
    import nbformat

    try:
        nb = nbformat.read(job.output, as_version=4)
    except (OSError, ValueError):
        nb = None
    for cell in nb.cells if nb else []:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.ename}: {output.evalue}"
    try:
        text = job.log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or f"papermill exited with code {returncode}"


def finish(job: Job, returncode: int, seconds: float, error: str = "") -> Outcome:
    """Write ``DONE`` (last, atomically) or ``FAILED`` for a run that ended with ``returncode``.

    ``error`` explains a run that failed outside the notebook (a lost worker); otherwise the notebook's own
    exception or the end of its log is recorded.
    """
    missing = [name for name in job.required if not (job.folder / name).exists()]
    job.folder.mkdir(parents=True, exist_ok=True)
    if returncode == 0 and not missing and not error:
        record = {"fingerprint": job.fingerprint, "seconds": round(seconds, 1), "finished": _now()}
        write_text_atomic(job.folder / DONE, json.dumps(record, indent=1))
        return Outcome(job, "done", seconds)
    if not error and returncode == 0:
        error = f"the notebook finished without writing {', '.join(missing)} into {job.folder}"
    elif not error:
        error = error_message(job, returncode)
    record = {"error": error, "seconds": round(seconds, 1), "finished": _now(), "log": LOG_NAME}
    write_text_atomic(job.folder / FAILED, json.dumps(record, indent=1))
    return Outcome(job, "failed", seconds, error)


# ----------------------------------------------------------------------------- manifest


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def manifest_entry(outcome: Outcome, base: Path) -> dict:
    """The manifest record of a run: status, seconds, error, paths relative to ``base``; a cell adds its fields."""
    job = outcome.job
    entry = {
        "name": job.name,
        "status": "done" if outcome.status == "cached" else outcome.status,
        "seconds": round(outcome.seconds, 1),
        "error": outcome.error,
        "notebook": _relative(job.output, base),
        "report": _relative(job.report, base),
        "log": _relative(job.log, base),
    }
    if job.cell is not None:
        cell = job.cell
        entry = {
            "cell_id": job.name,
            **entry,
            "model": cell.model,
            "scenario": cell.scenario,
            "strategy": cell.strategy,
            "part": cell.part,
            "replicate": cell.replicate,
            "results": _relative(CellFiles(job.folder).results, base),
            "parameters": job.parameters,
        }
    return entry


def write_manifest(config: StudyConfig, outcomes: list[Outcome], path: Path, seconds: float) -> Path:
    """``manifest.json``: the study, every step and cell with status, seconds, error and paths (relative to the
    manifest's folder), and ``seconds``, the wall time of this invocation so far.

    ``04_analysis`` reads its ``cells``; the index page reads all of it. Cell folders left from an earlier
    version of the study are not listed.
    """
    base = path.parent
    manifest = {
        "study": config.name,
        "description": config.description,
        "models": list(config.models),
        "train_data": config.prepare.train_data,
        "test_sets": list(config.prepare.test_sets),
        "precision": study_precision(config),
        "kit_version": __version__,
        "written": _now(),
        "seconds": round(seconds, 1),
        "analysis_dir": "analysis",
        "steps": [manifest_entry(o, base) for o in outcomes if o.job.cell is None],
        "cells": [manifest_entry(o, base) for o in outcomes if o.job.cell is not None],
    }
    return write_text_atomic(path, json.dumps(manifest, indent=1, default=str))
