"""The Ray backend: each cell is one Ray Core task that runs its notebook with papermill on a worker.

A task asks for ``num_gpus`` from the cell's preset (1 for presets that need CUDA, 0 for CPU ones; Ray pins
``CUDA_VISIBLE_DEVICES``) and ``num_cpus`` as configured. A notebook error is not retried (it is
deterministic: ``retry_exceptions=False``); a lost worker is, ``max_retries`` times. The DONE/FAILED markers
stay the only resume record: the driver writes them when a task comes back.

No shared filesystem is assumed: the driver sends 02's ``prepare/`` folder once (one object in Ray's store),
the worker runs the cell in a temporary folder (so the executed notebook and ``results.json`` record the
worker's paths), and the task returns the cell folder's files (executed notebook, ``results.json``,
predictions, order audit, logs; the adapter only with ``keep_adapters``), which the driver writes under
``runs/<study>/cells/<cell_id>/``. With ``shared_fs`` the workers read and write the study's own folders.
Workers need the kit installed (and the models in their cache); they do not need the notebooks.

>>> files = pack(Path("hils_kit/cli"), skip=("__pycache__",))
>>> "study.py" in files and isinstance(files["study.py"], bytes)
True
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hils_kit.core.layout import LOG_NAME
from hils_kit.study.executors import Events, cell_gpus, kernel_name, launch, papermill_command
from hils_kit.study.jobs import Job

ADAPTER = "train/adapter"  # in a cell folder: the trained LoRA adapter, returned only when asked
CONNECT_TIMEOUT = 30.0  # seconds to wait for a Ray head to answer (--connect-timeout)


def ray_head(address: str | None, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """The Ray head to join: ``address``, else ``$RAY_ADDRESS``, else None (a local instance is started).

    A ``host:port`` (or ``ray://host:port``) head must accept a connection within ``timeout`` seconds, else
    ``ValueError`` names the address and what to do; Ray itself would retry for many minutes.

    >>> ray_head("auto")
    'auto'
    """
    if timeout <= 0:
        raise ValueError(f"--connect-timeout must be positive, got {timeout:g}")
    given = address or os.environ.get("RAY_ADDRESS") or None
    host, _, port = (given or "").removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):  # None, "auto", "local": Ray resolves these itself
        return given
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except TimeoutError:
        why = f"no answer within {timeout:g} s (--connect-timeout)"
    except OSError as err:
        why = err.strerror or type(err).__name__
    else:
        return given
    start = f"ray start --head --{'ray-client-server-' if given.startswith('ray://') else ''}port {port}"
    drop = "drop --address" if address else "unset RAY_ADDRESS"
    raise ValueError(
        f"--backend ray: no Ray head at {given}" + ("" if address else " ($RAY_ADDRESS)") + f": {why}; "
        f"start one there with `{start}`, or {drop} to run a local Ray instance for this study"
    )


def pack(folder: Path, skip: Sequence[str] = ()) -> dict[str, bytes]:
    """The files under ``folder`` by their relative POSIX path, leaving out those under any path in ``skip``."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not any(relative == s or relative.startswith(s + "/") for s in skip):
            files[relative] = path.read_bytes()
    return files


def unpack(files: dict[str, bytes], folder: Path) -> None:
    """Write ``files`` (from :func:`pack`) under ``folder``."""
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_cell(job: Job, notebook: bytes, prepare: dict[str, bytes] | None, keep_adapters: bool) -> dict:
    """The Ray task: run one cell's notebook on this worker and return what the driver needs.

    With ``prepare`` (no shared filesystem) the cell runs in a temporary folder fed with those files and the
    cell folder's files come back as ``files``; without it the cell runs in place. A crash of this process
    kills the papermill process too (it dies with its parent).
    """
    start = time.monotonic()
    kernel = kernel_name()
    if prepare is None:
        job.reset()
        command = papermill_command(job.notebook, job.output, job.params_file, job.folder, kernel)
        returncode = launch(command, job.log).wait()
        return {"returncode": returncode, "seconds": time.monotonic() - start, "node": socket.gethostname()}
    import yaml

    root = Path(tempfile.mkdtemp(prefix=f"hils-{job.name}-"))
    try:
        unpack(prepare, root / "prepare")
        folder = root / "cell"
        folder.mkdir()
        (root / job.notebook.name).write_bytes(notebook)
        parameters = {**job.parameters, "prepare_dir": str(root / "prepare"), "out_dir": str(folder)}
        (root / "parameters.yaml").write_text(yaml.safe_dump(parameters, sort_keys=False), encoding="utf-8")
        command = papermill_command(
            root / job.notebook.name, folder / job.output.name, root / "parameters.yaml", folder, kernel
        )
        returncode = launch(command, folder / LOG_NAME).wait()
        files = pack(folder, skip=() if keep_adapters else (ADAPTER,))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"returncode": returncode, "seconds": time.monotonic() - start, "node": socket.gethostname(), "files": files}


class RayExecutor:
    """Runs cells as Ray tasks on an existing cluster (``address`` or ``RAY_ADDRESS``, checked by
    :func:`ray_head`) or on a Ray instance it starts on this machine and stops in :meth:`close`."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        max_retries: int = 3,
        shared_fs: bool = False,
        keep_adapters: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
    ):
        address = ray_head(address, connect_timeout)
        try:
            import ray
        except ImportError:
            raise ValueError("--backend ray needs Ray: pip install -e '.[ray]'") from None
        if num_cpus < 0 or max_retries < 0:
            raise ValueError(f"--num-cpus ({num_cpus}) and --max-retries ({max_retries}) must not be negative")
        self.num_cpus, self.max_retries = num_cpus, max_retries
        self.shared_fs, self.keep_adapters = shared_fs, keep_adapters
        if address is None:  # a local instance with this machine's CPUs and GPUs, stopped by close()
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # only this user's processes can reach it
        ray.init(address=address, log_to_driver=False, include_dashboard=False, configure_logging=False)
        self.where = address or "a local Ray instance"
        resources = ray.cluster_resources()
        self.gpus, self.cpus = int(resources.get("GPU", 0)), resources.get("CPU", 0)
        self.slots = 1

    def run(self, jobs: Sequence[Job], events: Events) -> None:
        import ray

        gpus = {job.name: cell_gpus(job) for job in jobs}
        needy = [name for name, n in gpus.items() if n]
        if needy and not self.gpus:
            raise ValueError(
                f"{len(needy)} cell(s) need a GPU (e.g. {needy[0]}: a 4-bit preset), but the Ray "
                f"cluster at {self.where} has none"
            )
        # cells that run at once (for the ETA): one per GPU, or as many as the CPUs hold
        cpu_slots = int(self.cpus // self.num_cpus) if self.num_cpus else len(jobs)
        self.slots = self.gpus if needy else max(1, cpu_slots)
        task = ray.remote(run_cell)
        prepare = None
        if not self.shared_fs:
            folder = Path(jobs[0].parameters["prepare_dir"])
            prepare = ray.put(pack(folder, skip=(LOG_NAME,)))
        notebooks = {path: ray.put(path.read_bytes()) for path in {job.notebook for job in jobs}}
        pending = {}  # task reference -> (job, when submitted)
        for job in jobs:
            ref = task.options(
                num_gpus=gpus[job.name],
                num_cpus=self.num_cpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
                name=f"hils:{job.name}",
            ).remote(job, notebooks[job.notebook], prepare, self.keep_adapters)
            pending[ref] = (job, time.monotonic())
            events.started(job, "Ray task" + (", 1 GPU" if gpus[job.name] else ""))
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    job, submitted = pending.pop(ref)
                    self._finished(job, ref, submitted, events)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _finished(self, job: Job, ref, submitted: float, events: Events) -> None:
        import ray

        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as err:  # the worker died (after its retries), the task was cancelled, ...
            if not self.shared_fs:
                job.reset()
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            events.ended(job, 1, time.monotonic() - submitted, f"{type(err).__name__} on Ray: {first_line}")
            return
        if "files" in result:
            job.reset()
            unpack(result["files"], job.folder)
        events.ended(job, result["returncode"], result["seconds"])

    def close(self) -> None:
        """Disconnect from the cluster; a local instance started by :meth:`__init__` stops with it."""
        import ray

        ray.shutdown()
