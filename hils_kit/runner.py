"""Run a study: the four notebooks through papermill, resumable and in parallel, then the HTML reports.

Steps: ``01_data_exploration`` and ``02_difficulty_labeling`` once, ``03_train_evaluate`` once per cell,
``04_analysis`` once, then one code-free HTML report per executed notebook and an index page. Under ``out``::

    params/<study>/exploration.yaml, prepare.yaml, <cell_id>.yaml, analysis.yaml   one YAML per notebook run
    runs/<study>/01_data_exploration.ipynb   exploration/
    runs/<study>/02_difficulty_labeling.ipynb   prepare/        splits, labels, train and test files
    runs/<study>/cells/<cell_id>/03_train_evaluate.ipynb, results.json, papermill.log, DONE or FAILED
    runs/<study>/manifest.json   the cells and their status, for 04
    runs/<study>/04_analysis.ipynb   analysis/     table_<scenario>.csv, *.png
    reports/<study>/index.html, <notebook>.html, cells/<cell_id>.html

Each notebook run gets the parameters in its YAML, its own folder as working directory and its output in
``papermill.log``; with one worker it runs through ``papermill.execute_notebook`` in this process, with
``--workers N`` as ``python -m papermill NOTEBOOK OUTPUT -f params/<study>/<run>.yaml`` processes side by side,
one GPU each (the same command repeats a run by hand). A run that finished writes ``DONE`` last, holding a
fingerprint of its parameters and of the data it used; a rerun skips runs whose ``DONE`` matches and redoes
the rest from an emptied folder, so an interrupted study (Ctrl-C, SIGTERM, SIGKILL) resumes where it stopped
and a changed study reruns only what changed. A failed run keeps its executed notebook and gets ``FAILED``
(with the error); the other runs, 04 and the reports go on.

>>> from hils_kit.study import load_study
>>> run = run_study(load_study("params/studies/default.yaml"), workers=2)     # doctest: +SKIP
>>> run.ok, run.index                                                          # doctest: +SKIP
(True, PosixPath('.../reports/default/index.html'))
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from hils_kit.paths import NOTEBOOKS_DIR, PROJ_ROOT, write_text_atomic
from hils_kit.study import (Cell, StudyConfig, analysis_parameters, cell_parameters, expand_cells,
                            exploration_parameters, prepare_parameters)

NOTEBOOKS = ("01_data_exploration", "02_difficulty_labeling", "03_train_evaluate", "04_analysis")
LOCATION_KEYS = ("out_dir", "prepare_dir", "run_dir")  # derived from study and cell id: not part of fingerprints
KERNEL = "hils-kit"  # installed by `make setup`; "python3" (the running venv's Python) otherwise


@dataclass(frozen=True)
class Layout:
    """Where a study's files go under ``out``."""

    out: Path
    study: str

    @property
    def params_dir(self) -> Path:
        return self.out / "params" / self.study

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.study

    @property
    def reports_dir(self) -> Path:
        return self.out / "reports" / self.study


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

    def done_record(self) -> dict | None:
        """The ``DONE`` record when this run finished with the same parameters and inputs, else None."""
        try:
            record = json.loads((self.folder / "DONE").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if record.get("fingerprint") == self.fingerprint else None


@dataclass
class Outcome:
    """What happened to a job in this invocation."""

    job: Job
    status: str  # "done" (ran now), "cached" (done before), "failed", "pending" (not run: see error)
    seconds: float = 0.0
    error: str = ""


@dataclass
class StudyRun:
    """The result of :func:`run_study`."""

    config: StudyConfig
    outcomes: list[Outcome]
    index: Path | None  # reports/<study>/index.html (None for a dry run)
    seconds: float  # wall time of this invocation

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


# ----------------------------------------------------------------------------- planning


def plan(config: StudyConfig, layout: Layout, notebooks: Path = NOTEBOOKS_DIR) -> tuple[Job, Job, list[Job], Job]:
    """The jobs of a study: exploration, preparation, one per cell, analysis (its inputs are set when run)."""
    run, params, reports = layout.run_dir, layout.params_dir, layout.reports_dir

    def step(notebook: str, folder: str, parameters: dict, params_name: str) -> Job:
        return Job(notebook, notebooks / f"{notebook}.ipynb", run / f"{notebook}.ipynb", run / folder, parameters,
                   params / f"{params_name}.yaml", reports / f"{notebook}.html")

    explore = step(NOTEBOOKS[0], "exploration", asdict(exploration_parameters(config, run / "exploration")),
                   "exploration")
    prepare = step(NOTEBOOKS[1], "prepare", asdict(prepare_parameters(config, run / "prepare")), "prepare")
    analysis = step(NOTEBOOKS[3], "analysis", asdict(analysis_parameters(config, run, run / "analysis")), "analysis")
    cells = []
    for cell in expand_cells(config):
        folder = run / "cells" / cell.id
        cells.append(Job(cell.id, notebooks / f"{NOTEBOOKS[2]}.ipynb", folder / f"{NOTEBOOKS[2]}.ipynb", folder,
                         asdict(cell_parameters(config, cell, prepare.folder, folder)), params / f"{cell.id}.yaml",
                         reports / "cells" / f"{cell.id}.html", upstream=prepare.fingerprint, cell=cell,
                         required=("results.json",)))
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
        raise ValueError(f"{job.notebook}: the cell tagged 'parameters' does not declare {', '.join(missing)} "
                         f"(the runner passes {', '.join(job.parameters)}; papermill cannot read a line with "
                         f"two '=' (comments included) or an annotation with '|': write `x: str = None`)")


def write_params(jobs: list[Job], params_dir: Path) -> None:
    """One YAML per notebook run (papermill ``-f``); YAMLs of runs no longer in the study are removed."""
    for job in jobs:
        run = f" of {job.name}" if job.name != job.notebook.stem else ""
        header = f"# {job.notebook.name} parameters{run}, written by hils study (papermill -f reads them)\n"
        write_text_atomic(job.params_file, header + yaml.safe_dump(job.parameters, sort_keys=False))
    keep = {job.params_file for job in jobs}
    for stale in params_dir.glob("*.yaml"):
        if stale not in keep:
            stale.unlink()


def kernel_name() -> str:
    """``hils-kit`` when that kernelspec is installed, else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL if KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


def kernel_environment(gpu: str | None = None) -> dict:
    """The environment of notebook runs: offline hub (unless ``HF_HUB_OFFLINE`` is set), no progress widgets."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HILS_PROGRESS="log")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def visible_gpus() -> list[str]:
    """Ids to put in ``CUDA_VISIBLE_DEVICES``, one per GPU this process can see."""
    import torch

    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",")[:count] if visible else [str(i) for i in range(count)]


# ----------------------------------------------------------------------------- executing


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): kill it when the study process dies, even by SIGKILL.

    Its kernel follows within a second: ipykernel exits when its parent (papermill) is gone.
    """
    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _clean(job: Job) -> None:
    """A run always starts from an empty folder, without an executed notebook from an earlier attempt."""
    shutil.rmtree(job.folder, ignore_errors=True)
    job.output.unlink(missing_ok=True)
    job.folder.mkdir(parents=True)


@contextlib.contextmanager
def _kernel_environment():
    """Set :func:`kernel_environment` in this process (a kernel inherits it), restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(kernel_environment())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _output_to(log):
    """Point this process's stdout and stderr at ``log`` for a while, so the kernel inherits them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _execute_here(job: Job, kernel: str) -> int:
    """Run the notebook from this process (one worker); the notebook's and the kernel's output go to
    ``papermill.log``."""
    import papermill

    _clean(job)
    with (open(job.folder / "papermill.log", "w", encoding="utf-8") as log, _kernel_environment(),
          _output_to(log)):
        try:
            papermill.execute_notebook(job.notebook, job.output, parameters=job.parameters, kernel_name=kernel,
                                       cwd=job.folder, progress_bar=False, log_output=False, stdout_file=log,
                                       stderr_file=log)
        except Exception as err:  # the notebook's error, a dead kernel, ...: the run failed, the study goes on
            log.write(f"\n{type(err).__name__}: {err}\n")
            return 1
    return 0


def _launch(job: Job, kernel: str, gpu: str | None) -> subprocess.Popen:
    """Start the notebook in its own papermill process (several workers)."""
    _clean(job)
    command = [sys.executable, "-m", "papermill", str(job.notebook), str(job.output), "-f", str(job.params_file),
               "-k", kernel, "--cwd", str(job.folder), "--no-progress-bar", "--log-output"]
    with open(job.folder / "papermill.log", "w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        # its own session: a Ctrl-C reaches only the study process, which then stops its runs
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=kernel_environment(gpu),
                                start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _error_message(job: Job, returncode: int) -> str:
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
    lines = [line for line in (job.folder / "papermill.log").read_text(encoding="utf-8").splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or f"papermill exited with code {returncode}"


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _finish(job: Job, returncode: int, seconds: float) -> Outcome:
    """Write ``DONE`` (last, atomically) or ``FAILED`` for a run that ended."""
    missing = [name for name in job.required if not (job.folder / name).exists()]
    if returncode == 0 and not missing:
        record = {"fingerprint": job.fingerprint, "seconds": round(seconds, 1), "finished": _now()}
        write_text_atomic(job.folder / "DONE", json.dumps(record, indent=1))
        return Outcome(job, "done", seconds)
    if returncode == 0:
        error = f"the notebook finished without writing {', '.join(missing)} into {job.folder}"
    else:
        error = _error_message(job, returncode)
    record = {"error": error, "seconds": round(seconds, 1), "finished": _now(), "log": "papermill.log"}
    write_text_atomic(job.folder / "FAILED", json.dumps(record, indent=1))
    return Outcome(job, "failed", seconds, error)


class _Pool:
    """Runs jobs one after the other in this process, or as papermill processes ``workers`` at a time
    (worker slot i gets GPU i % count)."""

    def __init__(self, workers: int, kernel: str, say, on_finish, cells_to_run: int):
        self.workers, self.kernel, self.say, self.on_finish = workers, kernel, say, on_finish
        self.gpus = visible_gpus() if workers > 1 else []
        self.cells_to_run, self.cell_seconds = cells_to_run, []

    def run(self, jobs: list[Job]) -> list[Outcome]:
        return self._run_here(jobs) if self.workers == 1 else self._run_processes(jobs)

    def _run_here(self, jobs: list[Job]) -> list[Outcome]:
        outcomes = []
        for job in jobs:
            self.say(f"start  {job.name}")
            start = time.monotonic()
            returncode = _execute_here(job, self.kernel)
            outcomes.append(self._finished(job, returncode, time.monotonic() - start))
        return outcomes

    def _run_processes(self, jobs: list[Job]) -> list[Outcome]:
        pending, running, outcomes = list(jobs), {}, []
        try:
            while pending or running:
                for slot in range(self.workers):
                    if slot not in running and pending:
                        job = pending.pop(0)
                        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
                        running[slot] = (job, _launch(job, self.kernel, gpu), time.monotonic())
                        self.say(f"start  {job.name}" + (f"  (GPU {gpu})" if gpu is not None else ""))
                time.sleep(0.2)
                for slot, (job, process, start) in list(running.items()):
                    if process.poll() is not None:
                        del running[slot]
                        outcomes.append(self._finished(job, process.returncode, time.monotonic() - start))
        except KeyboardInterrupt:
            self.say(f"interrupted: stopping {', '.join(job.name for job, _, _ in running.values()) or 'nothing'}")
            _stop([process for _, process, _ in running.values()])
            raise
        return outcomes

    def _finished(self, job: Job, returncode: int, seconds: float) -> Outcome:
        outcome = _finish(job, returncode, seconds)
        self._say_finished(outcome)
        self.on_finish(outcome)
        return outcome

    def _say_finished(self, outcome: Outcome) -> None:
        line = f"{outcome.status:<6} {outcome.job.name}  {outcome.seconds / 60:.1f} min"
        if outcome.job.cell is not None:
            self.cell_seconds.append(outcome.seconds)
            left = self.cells_to_run - len(self.cell_seconds)
            eta = left * sum(self.cell_seconds) / len(self.cell_seconds) / self.workers
            line += f" | cells {len(self.cell_seconds)}/{self.cells_to_run}, ETA {eta / 60:.1f} min"
        if outcome.error:
            line += f"\n       {outcome.error}\n       log: {outcome.job.folder / 'papermill.log'}"
        self.say(line)


def _stop(processes: list[subprocess.Popen], grace: float = 10.0) -> None:
    """Terminate the runs (their kernels exit with them), kill what is left after ``grace`` seconds."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ----------------------------------------------------------------------------- the study


def run_study(config: StudyConfig, out: str | Path = PROJ_ROOT, notebooks: str | Path = NOTEBOOKS_DIR,
              workers: int = 1, only: str | None = None, dry_run: bool = False, say=None) -> StudyRun:
    """Run (or resume) a study and write its reports; see the module docstring for the layout.

    Args:
        config: the validated study (:func:`hils_kit.study.load_study`).
        out: folder that receives ``params/``, ``runs/`` and ``reports/`` (default: the project root).
        notebooks: folder with the four notebooks (default ``notebooks/``).
        workers: cells run side by side, each in its own process, pinned to one GPU when there are GPUs.
        only: glob on cell ids; other cells are not run (their finished results still count).
        dry_run: write the parameter YAMLs and list the runs without executing anything.
        say: where progress lines go (default: print to stdout).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    started = time.monotonic()
    say = say or (lambda line: print(line, flush=True))
    layout = Layout(Path(out).resolve(), config.name)
    explore, prepare, cells, analysis = plan(config, layout, Path(notebooks).resolve())
    selected = [job for job in cells if fnmatch.fnmatchcase(job.name, only)] if only else cells
    if not selected:
        raise ValueError(f"--only {only!r} matches none of the {len(cells)} cell ids, e.g. {cells[0].name}")
    for job in (explore, prepare, cells[0], analysis):
        check_parameters(job)
    write_params([explore, prepare, *cells, analysis], layout.params_dir)

    outcomes: dict[str, Outcome] = {}
    for job in (explore, prepare, *cells):
        record = job.done_record()
        if record:
            outcomes[job.name] = Outcome(job, "cached", record["seconds"])
    to_run = [job for job in selected if job.name not in outcomes]
    done_before = sum(job.name in outcomes for job in cells)
    say(f"study {config.name}: {len(cells)} cells ({len(to_run)} to run, {done_before} done before, "
        f"{len(cells) - len(to_run) - done_before} not selected), {workers} worker(s)\n"
        f"  runs: {layout.run_dir}\n  parameters: {layout.params_dir}")
    if dry_run:
        for job in (explore, prepare, *cells):
            if job.name in outcomes:
                status = "done"
            elif job.cell is None or job in selected:
                status = "to run"
            else:
                status = "not selected"
            say(f"  {status:<12} {job.name}")
        say(f"one run by hand: {sys.executable} -m papermill {selected[0].notebook} out.ipynb -f "
            f"{selected[0].params_file}")
        return StudyRun(config, list(outcomes.values()), None, time.monotonic() - started)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        pool = _Pool(workers, kernel_name(), lambda line: say(f"[{_clock(started)}] {line}"),
                     on_finish=lambda outcome: _render(outcome, say), cells_to_run=len(to_run))
        # 01 and 02 (side by side when there are workers), then the cells, which need 02's files
        for outcome in pool.run([job for job in (explore, prepare) if job.name not in outcomes]):
            outcomes[outcome.job.name] = outcome
        prepared = outcomes[prepare.name].status in ("done", "cached")
        if prepared:
            for outcome in pool.run(to_run):
                outcomes[outcome.job.name] = outcome
        for job in cells:
            if job.name not in outcomes:
                reason = "not selected by --only" if prepared else f"{prepare.name} failed"
                outcomes[job.name] = Outcome(job, "pending", error=reason)

        # 04 on the finished cells; it reruns whenever that set (or one of its cells) changed
        finished = [o.job for o in outcomes.values() if o.job.cell is not None and o.status in ("done", "cached")]
        analysis.upstream = json.dumps([(job.name, job.fingerprint) for job in finished])
        write_manifest(config, [outcomes[job.name] for job in cells], layout.run_dir / "manifest.json")
        record = analysis.done_record()
        if record:
            outcomes[analysis.name] = Outcome(analysis, "cached", record["seconds"])
        elif finished:
            outcomes[analysis.name] = pool.run([analysis])[0]
        else:
            outcomes[analysis.name] = Outcome(analysis, "pending", error="no cell has finished")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    from hils_kit.reports import write_index

    ordered = [outcomes[job.name] for job in (explore, prepare, *cells, analysis)]
    for outcome in ordered:
        if outcome.status == "cached":
            _render(outcome, say)
    run = StudyRun(config, ordered, None, time.monotonic() - started)
    run.index = write_index(run, layout.run_dir / "analysis", layout.reports_dir / "index.html")
    return run


def write_manifest(config: StudyConfig, cells: list[Outcome], path: Path) -> Path:
    """``manifest.json`` for ``04_analysis``: every cell of the study with its status, parameters and results file.

    Cell folders left from an earlier version of the study are not listed.
    """
    rows = [{"cell_id": o.job.name, "status": "done" if o.status == "cached" else o.status,
             "seconds": round(o.seconds, 1), "results": f"cells/{o.job.name}/results.json",
             "parameters": o.job.parameters} for o in cells]
    return write_text_atomic(path, json.dumps({"study": config.name, "cells": rows}, indent=1))


def _render(outcome: Outcome, say) -> None:
    """The code-free HTML report of an executed notebook, unless it is already newer than the notebook."""
    from hils_kit.reports import notebook_html

    job = outcome.job
    if not job.output.exists():
        return
    if job.report.exists() and job.report.stat().st_mtime >= job.output.stat().st_mtime:
        return
    try:
        notebook_html(job.output, job.report)
    except Exception as err:  # a report that cannot be rendered must not stop the study
        say(f"warning: no HTML report for {job.name}: {type(err).__name__}: {err}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _clock(started: float) -> str:
    return str(datetime.timedelta(seconds=int(time.monotonic() - started)))


def summary_table(run: StudyRun) -> str:
    """One line per run: name, status, minutes; then the totals."""
    width = max(len(o.job.name) for o in run.outcomes)
    lines = [f"{'run':<{width}}  {'status':<8} {'minutes':>7}"]
    for o in run.outcomes:
        if o.status == "pending":
            lines.append(f"{o.job.name:<{width}}  {o.status:<8} {'-':>7}  ({o.error})")
        else:
            lines.append(f"{o.job.name:<{width}}  {o.status:<8} {o.seconds / 60:>7.1f}")
    cells = [o for o in run.outcomes if o.job.cell is not None]
    counts = {status: sum(o.status == status for o in cells) for status in ("done", "cached", "failed", "pending")}
    lines.append(f"cells: {counts['done']} ran, {counts['cached']} done before, {counts['failed']} failed, "
                 f"{counts['pending']} not run; wall time {run.seconds / 60:.1f} min")
    return "\n".join(lines)
