"""The SLURM backend, through submitit: the cells of a study go out as one job array per GPU count.

Each array task runs one cell's notebook with papermill, in place: a SLURM cluster shares its filesystem (and
submitit needs that for its own files), so the cell writes into ``runs/<study>/cells/<cell_id>/`` directly
and the driver, which stays running and polls, writes the DONE/FAILED markers. Partition, time limit, GPUs,
CPUs and memory come from the study's ``cluster:`` block (:class:`hils_kit.study.config.ClusterConfig`) or the
flags of the same name; a cell gets 1 GPU when its preset needs CUDA unless ``gpus_per_cell`` says otherwise.
submitit's own logs go to ``runs/<study>/slurm/``. ``submitit_cluster="local"`` runs the same jobs as local
processes (tests, a dry rehearsal without SLURM).

>>> slurm_parameters(ClusterConfig(partition="gpu", time_min=90), gpus=1)["slurm_partition"]
'gpu'
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from hils_kit.study.config import ClusterConfig
from hils_kit.study.executors import Events, cell_gpus, kernel_name, launch, papermill_command
from hils_kit.study.jobs import Job

SUBMITIT_CLUSTERS = ("slurm", "local")  # submitit executors: "local" runs the jobs as local processes


def require_slurm(submitit_cluster: str) -> None:
    """Refuse (``ValueError``) the ``slurm`` submitit cluster on a machine without SLURM (no ``srun`` on PATH)."""
    if submitit_cluster == "slurm" and shutil.which("srun") is None:
        raise ValueError(
            "--backend slurm: no SLURM found on this machine (`srun` is not on PATH); "
            "--submitit-cluster local rehearses the same jobs as local processes"
        )


def run_cell_in_place(job: Job) -> tuple[int, float]:
    """The SLURM task: run one cell's notebook in its own folder; papermill's return code and the seconds."""
    start = time.monotonic()
    job.reset()
    command = papermill_command(job.notebook, job.output, job.params_file, job.folder, kernel_name())
    return launch(command, job.log).wait(), time.monotonic() - start


def slurm_parameters(cluster: ClusterConfig, gpus: int) -> dict:
    """submitit's ``update_parameters`` for cells that need ``gpus`` GPUs (``slurm_*`` keys apply on SLURM only)."""
    for key in ("time_min", "cpus_per_cell"):
        if getattr(cluster, key) < 1:
            raise ValueError(f"cluster.{key} should be at least 1, got {getattr(cluster, key)}")
    parameters = {
        "name": "hils-cell",
        "timeout_min": cluster.time_min,
        "cpus_per_task": cluster.cpus_per_cell,
        "gpus_per_node": cluster.gpus_per_cell if cluster.gpus_per_cell is not None else gpus,
        "mem_gb": cluster.mem_gb,
        "slurm_partition": cluster.partition,
        "slurm_additional_parameters": dict(cluster.additional) or None,
    }
    if cluster.array_parallelism:
        parameters["slurm_array_parallelism"] = cluster.array_parallelism
    return {key: value for key, value in parameters.items() if value is not None}


class SlurmExecutor:
    """Submits cells to SLURM with submitit and polls them until each ends."""

    def __init__(
        self, cluster: ClusterConfig, folder: str | Path, submitit_cluster: str = "slurm", poll_seconds: float = 1.0
    ):
        try:
            import submitit
        except ImportError:
            raise ValueError("--backend slurm needs submitit: pip install -e '.[slurm]'") from None

        if submitit_cluster not in SUBMITIT_CLUSTERS:
            raise ValueError(f"submitit cluster {submitit_cluster!r}: use one of {', '.join(SUBMITIT_CLUSTERS)}")
        require_slurm(submitit_cluster)
        self.cluster, self.poll_seconds = cluster, poll_seconds
        self.executor = submitit.AutoExecutor(folder=Path(folder), cluster=submitit_cluster)
        self.slots = cluster.array_parallelism or 1

    def run(self, jobs: Sequence[Job], events: Events) -> None:
        from submitit.core.utils import UncompletedJobError

        self.slots = self.cluster.array_parallelism or len(jobs)
        groups: dict[int, list[Job]] = {}
        for job in jobs:
            groups.setdefault(cell_gpus(job), []).append(job)
        pending = {}
        try:
            for gpus, group in groups.items():
                self.executor.update_parameters(**slurm_parameters(self.cluster, gpus))
                with self.executor.batch():
                    submitted = [self.executor.submit(run_cell_in_place, job) for job in group]
                for job, task in zip(group, submitted):
                    pending[job.name] = (job, task, time.monotonic())
                    events.started(job, f"SLURM job {task.job_id}")
            while pending:
                time.sleep(self.poll_seconds)
                for name, (job, task, submitted) in list(pending.items()):
                    if not task.done():
                        continue
                    del pending[name]
                    try:
                        returncode, seconds = task.result()
                    except UncompletedJobError as err:  # killed, timed out, preempted, node failure
                        events.ended(
                            job,
                            1,
                            time.monotonic() - submitted,
                            f"SLURM job {task.job_id} did not complete: {str(err).splitlines()[0]}",
                        )
                    else:
                        events.ended(job, returncode, seconds)
        except KeyboardInterrupt:
            for _, task, _ in pending.values():
                task.cancel(check=False)
            raise

    def close(self) -> None:
        """Nothing to release: jobs that ended are collected, the others were cancelled."""
