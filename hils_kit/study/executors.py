"""Executing notebook jobs: the small interface every backend implements, and the local backend.

An executor gets jobs (:class:`hils_kit.study.jobs.Job`) and runs each notebook so that its executed notebook, its
files and ``papermill.log`` end up in the job's folder; it reports each start and end to an :class:`Events`
listener, which writes the DONE/FAILED marker and the progress line. Executors know nothing of studies,
markers or reports. Backends: :class:`LocalExecutor` (this machine), :mod:`hils_kit.study.ray_backend`,
:mod:`hils_kit.study.slurm_backend`.

The local executor runs a notebook through ``papermill.execute_notebook`` in this process when it has one
worker, and as ``python -m hils_kit.study.papermill_run NOTEBOOK OUTPUT -f PARAMS.yaml`` processes (papermill's
command line: :mod:`hils_kit.study.papermill_run`) side by side otherwise, one GPU each, or on a machine without
GPUs an equal share of its CPU cores each (``OMP_NUM_THREADS``; the same command repeats a run by hand).

>>> papermill_command(Path("nb.ipynb"), Path("out.ipynb"), Path("p.yaml"), Path("run"), "python3")[1:4]
['-m', 'hils_kit.study.papermill_run', 'nb.ipynb']
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from hils_kit.core.progress import HEADLESS
from hils_kit.study.jobs import Job
from hils_kit.study.papermill_run import papermill_run_command, starting_again_if_the_kernel_died

KERNEL = "hils-kit"  # installed by `make setup`; "python3" (the running venv's Python) otherwise
# seconds a kernel may take to start: papermill's 60 is too short on a busy machine (cells side by side with
# a test suite beside them once failed a run with "Kernel didn't respond in 60 seconds")
KERNEL_START_TIMEOUT = 300


class Events(Protocol):
    """What an executor reports while it runs jobs."""

    def started(self, job: Job, where: str = "") -> None:
        """``job`` started; ``where`` says where (``"GPU 1"``, a node), or is empty."""

    def ended(self, job: Job, returncode: int, seconds: float, error: str = "") -> None:
        """``job`` ended after ``seconds`` with papermill's ``returncode``; its files are in its folder.

        ``error`` explains a failure outside the notebook (a lost worker, a cancelled task).
        """


class Executor(Protocol):
    """Runs notebook jobs and reports each outcome: the interface a backend implements."""

    slots: int  # how many jobs run at once (for the ETA)

    def run(self, jobs: Sequence[Job], events: Events) -> None:
        """Run every job (each from an emptied folder: :meth:`Job.reset`) and report it to ``events``.

        On KeyboardInterrupt, stop what is running, cancel what has not started, and re-raise.
        """

    def close(self) -> None:
        """Release what the executor holds (a cluster connection)."""


# ----------------------------------------------------------------------------- environment


def kernel_name() -> str:
    """``hils-kit`` when that kernelspec is installed, else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL if KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


def kernel_environment(gpu: str | None = None, threads: int | None = None) -> dict:
    """The environment of notebook runs: offline hub (unless ``HF_HUB_OFFLINE`` is set), no progress widgets,
    headless (the kit's interactive widgets show a static view: :func:`hils_kit.core.progress.headless`), pinned to
    ``gpu`` and limited to ``threads`` CPU threads (unless ``OMP_NUM_THREADS`` is set) when given."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HILS_PROGRESS="log")
    env[HEADLESS] = "1"
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    return env


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """CPU threads for each of ``workers`` runs side by side: an equal share of the cores, at least one.

    Torch would otherwise start one thread per core in every run, and ``workers`` runs would fight over them.

    >>> threads_per_worker(1) == cpu_cores()
    True
    """
    return max(1, cpu_cores() // workers)


def visible_gpus() -> list[str]:
    """Ids to put in ``CUDA_VISIBLE_DEVICES``, one per GPU this process can see."""
    import torch

    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",")[:count] if visible else [str(i) for i in range(count)]


def cell_gpus(job: Job) -> int:
    """GPUs a cell needs: 1 when its preset and overrides need CUDA (4-bit quantization, the paper's presets),
    0 for the others (CPU presets) and for the study steps.

    >>> from hils_kit.study.jobs import Job
    >>> cell_gpus(Job("c", Path("n"), Path("o"), Path("f"), {"preset": "llama2-7b", "train_overrides": {}},
    ...               Path("p"), Path("r")))
    1
    """
    from hils_kit.train.presets import make_config

    if "preset" not in job.parameters:
        return 0
    config = make_config(job.parameters["preset"], job.parameters.get("train_overrides") or {})
    return 0 if config.quantization == "none" else 1


# ----------------------------------------------------------------------------- process plumbing


def papermill_command(notebook: Path, output: Path, params_file: Path, folder: Path, kernel: str) -> list[str]:
    """The papermill command line of one run."""
    return [
        *papermill_run_command(),
        str(notebook),
        str(output),
        "-f",
        str(params_file),
        "-k",
        kernel,
        "--cwd",
        str(folder),
        "--no-progress-bar",
        "--log-output",
        "--start-timeout",
        str(KERNEL_START_TIMEOUT),
    ]


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): kill it when its parent dies, even by SIGKILL.

    Its kernel follows within a second: ipykernel exits when its parent (papermill) is gone.
    """
    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def launch(command: list[str], log: Path, gpu: str | None = None, threads: int | None = None) -> subprocess.Popen:
    """Start a papermill process writing to ``log`` (the command line comes first); it dies with this process."""
    with open(log, "w", encoding="utf-8") as stream:
        stream.write(" ".join(command) + "\n")
        stream.flush()
        # its own session: a Ctrl-C reaches only the study process, which then stops its runs
        return subprocess.Popen(
            command,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=kernel_environment(gpu, threads),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def stop(processes: list[subprocess.Popen], grace: float = 10.0) -> None:
    """Terminate the runs (their kernels exit with them), kill what is left after ``grace`` seconds."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


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


def execute_here(job: Job, kernel: str) -> int:
    """Run the notebook from this process; the notebook's and the kernel's output go to ``papermill.log``."""
    import papermill

    job.reset()
    with open(job.log, "w", encoding="utf-8") as log, _kernel_environment(), _output_to(log):
        try:
            starting_again_if_the_kernel_died(
                lambda: papermill.execute_notebook(
                    job.notebook,
                    job.output,
                    parameters=job.parameters,
                    kernel_name=kernel,
                    start_timeout=KERNEL_START_TIMEOUT,
                    cwd=job.folder,
                    progress_bar=False,
                    log_output=False,
                    stdout_file=log,
                    stderr_file=log,
                ),
                log=log,
            )
        except Exception as err:  # the notebook's error, a dead kernel, ...: the run failed, the study goes on
            log.write(f"\n{type(err).__name__}: {err}\n")
            return 1
    return 0


# ----------------------------------------------------------------------------- the local backend


class LocalExecutor:
    """Runs jobs on this machine: one after the other in this process (``workers=1``), or as papermill
    processes ``workers`` at a time, worker slot i pinned to GPU i % count when there are GPUs. Without GPUs,
    each cell gets :func:`threads_per_worker` CPU threads (two cells side by side on two cores, one thread each,
    finish about 15 % sooner than one after the other on both: training gains, and each kernel's start-up
    overlaps the other's work); the study steps keep them all, since 02 is the only one of them that computes
    (01 and 04 load no model) and it runs beside 01."""

    def __init__(self, workers: int = 1, kernel: str | None = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.slots = workers
        self.kernel = kernel or kernel_name()
        self.gpus = visible_gpus() if workers > 1 else []
        self.threads = threads_per_worker(workers) if workers > 1 and not self.gpus else None

    def run(self, jobs: Sequence[Job], events: Events) -> None:
        if self.slots == 1:
            for job in jobs:
                events.started(job)
                start = time.monotonic()
                returncode = execute_here(job, self.kernel)
                events.ended(job, returncode, time.monotonic() - start)
        else:
            self._run_processes(list(jobs), events)

    def _run_processes(self, pending: list[Job], events: Events) -> None:
        running: dict[int, tuple[Job, subprocess.Popen, float]] = {}
        try:
            while pending or running:
                for slot in range(self.slots):
                    if slot not in running and pending:
                        job = pending.pop(0)
                        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
                        job.reset()
                        command = papermill_command(job.notebook, job.output, job.params_file, job.folder, self.kernel)
                        threads = self.threads if job.cell is not None else None
                        running[slot] = (job, launch(command, job.log, gpu, threads), time.monotonic())
                        events.started(job, f"GPU {gpu}" if gpu is not None else self._cpu_share(threads))
                time.sleep(0.2)
                for slot, (job, process, start) in list(running.items()):
                    if process.poll() is not None:
                        del running[slot]
                        events.ended(job, process.returncode, time.monotonic() - start)
        except KeyboardInterrupt:
            stop([process for _, process, _ in running.values()])
            raise

    @staticmethod
    def _cpu_share(threads: int | None) -> str:
        """Where a run goes on a machine without GPUs: its CPU threads, or nothing when it has them all."""
        threads = os.environ.get("OMP_NUM_THREADS", threads)
        return f"OMP_NUM_THREADS={threads}" if threads else ""

    def close(self) -> None:
        """Nothing to release."""
