"""Run a study: the four notebooks through papermill, resumable, on a chosen backend, then the HTML reports.

Steps: ``01_data_exploration`` and ``02_difficulty_labeling`` once, ``03_train_evaluate`` once per cell,
``04_analysis`` once, then one code-free HTML report per executed notebook and an index page (the layout is
in :mod:`hils_kit.study.jobs`). 01, 02 and 04 run on this machine; the cells run on the backend's executor
(:mod:`hils_kit.study.executors`: this machine by default, or a Ray cluster, or SLURM).

Each notebook run gets the parameters in its YAML, its own folder as working directory and its output in
``papermill.log``. A run that finished writes ``DONE`` last, holding a fingerprint of its parameters and of the
data it used; a rerun skips runs whose ``DONE`` matches and redoes the rest from an emptied folder, so an
interrupted study (Ctrl-C, SIGTERM, SIGKILL) resumes where it stopped and a changed study reruns only what
changed. A failed run keeps its executed notebook and gets ``FAILED`` (with the error); the other runs, 04 and
the reports go on.

>>> from hils_kit.study.loading import load_study
>>> run = run_study(load_study("params/studies/default.yaml"), workers=2)     # doctest: +SKIP
>>> run.ok, run.index                                                          # doctest: +SKIP
(True, PosixPath('.../reports/default/index.html'))
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from hils_kit.core.layout import Layout
from hils_kit.core.paths import NOTEBOOKS_DIR, PROJ_ROOT
from hils_kit.study.cells import seed_plan
from hils_kit.study.config import StudyConfig
from hils_kit.study.executors import Executor, LocalExecutor, kernel_name
from hils_kit.study.jobs import Job, Outcome, check_parameters, finish, plan, write_manifest, write_params
from hils_kit.study.reports import notebook_html, write_index


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


class Progress:
    """The :class:`~hils_kit.study.executors.Events` of a study: writes each marker, prints a line per start and end
    (with the cells' ETA), renders the HTML report of each executed notebook, and keeps the outcomes."""

    def __init__(self, say, cells_to_run: int):
        self.started_at = time.monotonic()
        self.say, self.cells_to_run = say, cells_to_run
        self.executor: Executor | None = None
        self.cell_seconds: list[float] = []
        self.outcomes: dict[str, Outcome] = {}

    def line(self, text: str) -> None:
        self.say(f"[{datetime.timedelta(seconds=int(time.monotonic() - self.started_at))}] {text}")

    def started(self, job: Job, where: str = "") -> None:
        self.line(f"start  {job.name}" + (f"  ({where})" if where else ""))

    def ended(self, job: Job, returncode: int, seconds: float, error: str = "") -> None:
        outcome = finish(job, returncode, seconds, error)
        self.outcomes[job.name] = outcome
        line = f"{outcome.status:<6} {job.name}  {seconds / 60:.1f} min"
        if job.cell is not None:
            self.cell_seconds.append(seconds)
            left = self.cells_to_run - len(self.cell_seconds)
            eta = left * sum(self.cell_seconds) / len(self.cell_seconds) / self.executor.slots
            line += f" | cells {len(self.cell_seconds)}/{self.cells_to_run}, ETA {eta / 60:.1f} min"
        if outcome.error:
            line += f"\n       {outcome.error}\n       log: {job.log}"
        self.line(line)
        render(outcome, self.say)

    def run(self, executor: Executor, jobs: list[Job]) -> list[Outcome]:
        """Run ``jobs`` on ``executor``; the outcomes in the order of ``jobs``."""
        self.executor = executor
        executor.run(jobs, self)
        return [self.outcomes[job.name] for job in jobs]


def render(outcome: Outcome, say) -> None:
    """The code-free HTML report of an executed notebook, unless it is already newer than the notebook."""
    job = outcome.job
    if not job.output.exists():
        return
    if job.report.exists() and job.report.stat().st_mtime >= job.output.stat().st_mtime:
        return
    try:
        notebook_html(job.output, job.report)
    except Exception as err:  # a report that cannot be rendered must not stop the study
        say(f"warning: no HTML report for {job.name}: {type(err).__name__}: {err}")


def hand_command(job: Job) -> str:
    """A shell command that runs ``job``'s notebook by hand, parameters inline (nothing needs to be written).

    >>> from hils_kit.study.jobs import Job
    >>> job = Job("x", Path("nb.ipynb"), Path("o.ipynb"), Path("f"), {"seed": 0, "model": "tiny"}, Path("p"),
    ...           Path("r"))
    >>> hand_command(job).split(" -m ")[1]
    "papermill nb.ipynb out.ipynb -y '{seed: 0, model: tiny}'"
    """
    inline = yaml.safe_dump(job.parameters, default_flow_style=True, sort_keys=False, width=1 << 20).strip()
    return f"{sys.executable} -m papermill {job.notebook} out.ipynb -y {shlex.quote(inline)}"


def run_study(
    config: StudyConfig,
    out: str | Path = PROJ_ROOT,
    notebooks: str | Path = NOTEBOOKS_DIR,
    workers: int = 1,
    only: str | None = None,
    dry_run: bool = False,
    say=None,
    backend: Executor | None = None,
) -> StudyRun:
    """Run (or resume) a study and write its reports; see the module docstring and :mod:`hils_kit.study.jobs`.

    Args:
        config: the validated study (:func:`hils_kit.study.loading.load_study`).
        out: folder that receives ``params/``, ``runs/`` and ``reports/`` (default: the project root).
        notebooks: folder with the four notebooks (default ``notebooks/``).
        workers: notebooks run side by side on this machine, each in its own process, pinned to one GPU when
            there are GPUs, else each cell on an equal share of the CPU cores (01 and 02 always; the cells too
            unless ``backend`` is given).
        only: glob on cell ids; other cells are not run (their finished results still count).
        dry_run: list the runs and a papermill command for one of them; write and execute nothing.
        say: where progress lines go (default: print to stdout).
        backend: the executor of the cells (default: the local one with ``workers``); it is closed at the end.
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

    outcomes: dict[str, Outcome] = {}
    for job in (explore, prepare, *cells):
        record = job.done_record()
        if record:
            outcomes[job.name] = Outcome(job, "cached", record["seconds"])
    to_run = [job for job in selected if job.name not in outcomes]
    done_before = sum(job.name in outcomes for job in cells)
    say(
        f"study {config.name}: {len(cells)} cells ({len(to_run)} to run, {done_before} done before, "
        f"{len(cells) - len(to_run) - done_before} not selected), {workers} worker(s)"
        + (f", cells on {type(backend).__name__}" if backend else "")
        + f"\n  runs: {layout.run_dir}\n  parameters: {layout.params_dir}"
    )
    for line in seed_plan(config):
        say(f"  {line}")
    if dry_run:
        for job in (explore, prepare, *cells):
            if job.name in outcomes:
                status = "done"
            elif job.cell is None or job in selected:
                status = "to run"
            else:
                status = "not selected"
            say(f"  {status:<12} {job.name}")
        say(f"one run by hand: {hand_command(selected[0])}")
        if backend:
            backend.close()
        return StudyRun(config, list(outcomes.values()), None, time.monotonic() - started)

    write_params([explore, prepare, *cells, analysis], layout.params_dir)
    local = LocalExecutor(workers, kernel_name())
    cell_executor = backend or local
    progress = Progress(say, cells_to_run=len(to_run))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        # 01 and 02 (side by side when there are workers), then the cells, which need 02's files
        for outcome in progress.run(local, [job for job in (explore, prepare) if job.name not in outcomes]):
            outcomes[outcome.job.name] = outcome
        prepared = outcomes[prepare.name].status in ("done", "cached")
        if prepared and to_run:
            for outcome in progress.run(cell_executor, to_run):
                outcomes[outcome.job.name] = outcome
        for job in cells:
            if job.name not in outcomes:
                reason = "not selected by --only" if prepared else f"{prepare.name} failed"
                outcomes[job.name] = Outcome(job, "pending", error=reason)

        # 04 on the finished cells; it reruns whenever that set (or one of its cells) changed
        finished = [o.job for o in outcomes.values() if o.job.cell is not None and o.status in ("done", "cached")]
        analysis.upstream = json.dumps([(job.name, job.fingerprint) for job in finished])
        record = analysis.done_record()
        if record:
            outcomes[analysis.name] = Outcome(analysis, "cached", record["seconds"])
        elif finished:
            outcomes[analysis.name] = Outcome(analysis, "pending", error="running")
            write_manifest(
                config,
                _ordered(outcomes, explore, prepare, cells, analysis),
                layout.manifest,
                time.monotonic() - started,
            )
            outcomes[analysis.name] = progress.run(local, [analysis])[0]
        else:
            outcomes[analysis.name] = Outcome(analysis, "pending", error="no cell has finished")
    except KeyboardInterrupt:
        say("interrupted: finished runs are marked DONE; the others run again on the next call")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        cell_executor.close()

    ordered = _ordered(outcomes, explore, prepare, cells, analysis)
    for outcome in ordered:
        if outcome.status == "cached":
            render(outcome, say)
    run = StudyRun(config, ordered, None, time.monotonic() - started)
    write_manifest(config, ordered, layout.manifest, run.seconds)
    run.index = write_index(layout.manifest, layout.reports_dir / "index.html")
    return run


def _ordered(outcomes: dict[str, Outcome], explore: Job, prepare: Job, cells: list[Job], analysis: Job):
    return [outcomes[job.name] for job in (explore, prepare, *cells, analysis)]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


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
    lines.append(
        f"cells: {counts['done']} ran, {counts['cached']} done before, {counts['failed']} failed, "
        f"{counts['pending']} not run; wall time {run.seconds / 60:.1f} min"
    )
    return "\n".join(lines)
