"""The Ray and SLURM backends: the smoke study's cells on a local Ray head and through submitit's local executor
give the same results as the local backend, and (``long``: ``make test TESTS=all`` and CI) a study resumes after
a lost Ray worker; ``make test`` checks that at small scale, a dead worker's cell marked FAILED "on Ray"."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hils_kit.cli import main
from hils_kit.core.layout import Layout
from hils_kit.core.paths import PARAMS_DIR
from hils_kit.study.config import study_from_dict
from hils_kit.study.jobs import plan
from hils_kit.study.ray_backend import ADAPTER, pack, run_cell

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "notebooks"
SMOKE = PARAMS_DIR / "studies" / "smoke.yaml"
PAIR = "tiny__*__[rc][au][nr]*__holdout__r0"  # two smoke cells: random (04 compares with it) and curriculum
FIRST, SECOND = "tiny__none__random__holdout__r0", "tiny__llm__curriculum__holdout__r0"
HILS = [sys.executable, "-c", "import sys; from hils_kit.cli import main; sys.exit(main())"]


def metrics(out: Path) -> dict:
    """The metrics in ``results.json`` of the two cells of ``PAIR``, without the timings (``seconds_per_question``)."""
    cells = out / "runs" / "smoke" / "cells"
    found = {cell.name: json.loads((cell / "results.json").read_text())["metrics"] for cell in sorted(cells.glob(PAIR))}
    assert sorted(found) == sorted([FIRST, SECOND])
    return {
        cell: {test: {k: v for k, v in values.items() if "seconds" not in k} for test, values in tests.items()}
        for cell, tests in found.items()
    }


@pytest.fixture(scope="module")
def local_run(smoke_study):
    """The smoke study on the local backend (01, 02, six cells, 04), shared with the notebook tests."""
    out, code = smoke_study
    assert code == 0
    return out


def with_first_cell_only(local: Path, target: Path) -> Path:
    """A copy of the local run in which only ``FIRST`` ran (01, 02 and that cell stay done): the backend then runs
    ``SECOND`` alone, and must leave ``FIRST`` as the local backend wrote it."""
    shutil.copytree(local, target)
    for cell in (target / "runs" / "smoke" / "cells").iterdir():
        if cell.name != FIRST:
            shutil.rmtree(cell)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray head with 2 CPUs, as on a CI machine: its address; stopped at teardown.

    With ``RAY_ADDRESS`` set, that cluster is used instead (and left running).
    """
    pytest.importorskip("ray", reason="needs the ray extra: pip install -e '.[ray]'")
    if os.environ.get("RAY_ADDRESS"):
        yield os.environ["RAY_ADDRESS"]
        return
    ray = shutil.which("ray", path=os.path.dirname(sys.executable))
    # Ray's own processes run without `make coverage`'s tracing: traced, they can miss the raylet's 30 s start-up
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_START"} | {"RAY_AUTH_MODE": "disabled"}
    port = free_port()
    command = [
        ray,
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    for attempt in range(3):  # a heavily loaded machine can miss the raylet's start-up deadline
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        if started.returncode == 0:
            break
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False)
    else:
        pytest.fail(f"ray start failed 3 times:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}")
    yield f"127.0.0.1:{port}"
    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False)


def ray_worker_of(cell_id: str) -> int | None:
    """The pid of the Ray worker process running ``cell_id`` (its process title names the task)."""
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and cell_id in title:
            return int(proc.name)
    return None


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"waited {seconds} s for {what}")


@pytest.mark.small
def test_a_ray_cell_matches_the_local_backend(local_run, ray_head, tmp_path):
    """The small variant of the next test (which ``make test TESTS=all`` runs instead): one cell on Ray."""
    out = with_first_cell_only(local_run, tmp_path / "ray")
    cells = out / "runs" / "smoke" / "cells"
    cli = [*HILS, "study", str(SMOKE), "--out", str(out), "--only", PAIR, "--backend", "ray", "--address", ray_head]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0 and "cells: 1 ran, 1 done before, 0 failed" in done.stdout, done.stdout + done.stderr
    for name in (
        "03_train_evaluate.ipynb",
        "results.json",
        "papermill.log",
        "predictions_medqa.csv",
        "train/order_fed.csv",
    ):
        assert (cells / SECOND / name).is_file(), f"{SECOND}/{name}"
    assert not (cells / SECOND / ADAPTER).exists()  # adapters stay on the worker unless --keep-adapters
    assert metrics(out) == metrics(local_run)


def test_a_cell_whose_ray_worker_died_is_marked_failed_on_ray(tmp_path, monkeypatch):
    """What the long test checks with a real SIGKILL, at unit scale: the error becomes the cell's FAILED reason."""
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install -e '.[ray]'")
    from hils_kit.study.ray_backend import RayExecutor

    config = study_from_dict({"name": "fixture", "models": ["tiny"], "preset": "tiny", "strategies": ["random"]})
    job = plan(config, Layout(tmp_path, "fixture"), FIXTURES)[2][0]
    job.folder.mkdir(parents=True)
    (job.folder / "partial.txt").write_text("written before the worker died")

    def dead(ref):
        raise ray.exceptions.WorkerCrashedError()

    monkeypatch.setattr(ray, "get", dead)
    ended = []
    executor = RayExecutor.__new__(RayExecutor)  # no cluster: only the bookkeeping of a finished task
    executor.shared_fs = False
    executor._finished(job, object(), 0.0, type("Events", (), {"ended": lambda self, *a: ended.append(a)})())
    assert ended[0][0] is job and ended[0][1] == 1 and ended[0][3].startswith("WorkerCrashedError on Ray")
    assert not (job.folder / "partial.txt").exists()  # the cell starts clean when it runs again


@pytest.mark.long
def test_ray_cells_match_the_local_backend_and_resume_after_a_lost_worker(local_run, ray_head, tmp_path):
    out = with_first_cell_only(local_run, tmp_path / "ray")
    cells = out / "runs" / "smoke" / "cells"
    first_done = (cells / FIRST / "DONE").read_text()
    cli = [
        *HILS,
        "study",
        str(SMOKE),
        "--out",
        str(out),
        "--only",
        PAIR,
        "--backend",
        "ray",
        "--address",
        ray_head,
        "--num-cpus",
        "2",
    ]  # 2 CPUs a task on a 2-CPU head: one cell at a time

    # 1. no retries; the worker of the second cell dies mid-cell: it fails, the first cell stays done
    study = subprocess.Popen([*cli, "--max-retries", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        os.kill(wait_for(lambda: ray_worker_of(SECOND), 600, f"the Ray worker of {SECOND}"), signal.SIGKILL)
        printed, _ = study.communicate(timeout=300)
    finally:
        study.kill()
    assert study.returncode == 1, printed
    assert "cells: 0 ran, 1 done before, 1 failed" in printed, printed
    failed = json.loads((cells / SECOND / "FAILED").read_text())
    assert "on Ray" in failed["error"] and not (cells / SECOND / "DONE").exists()

    # 2. rerun: the finished cell is untouched, the lost one runs again and its files come back to the driver
    rerun = subprocess.run(cli, capture_output=True, text=True, timeout=900, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "cells: 1 ran, 1 done before, 0 failed" in rerun.stdout
    assert (cells / FIRST / "DONE").read_text() == first_done
    for name in (
        "03_train_evaluate.ipynb",
        "results.json",
        "papermill.log",
        "predictions_medqa.csv",
        "train/order_fed.csv",
    ):
        assert (cells / SECOND / name).is_file(), f"{SECOND}/{name}"
    assert not (cells / SECOND / ADAPTER).exists()  # adapters stay on the worker unless --keep-adapters
    assert metrics(out) == metrics(local_run)
    index = (out / "reports" / "smoke" / "index.html").read_text()
    assert f'href="cells/{SECOND}.html"' in index


def test_slurm_cells_through_submitit_match_the_local_backend(local_run, tmp_path):
    pytest.importorskip("submitit", reason="needs the slurm extra: pip install -e '.[slurm]'")
    out = with_first_cell_only(local_run, tmp_path / "slurm")
    assert (
        main(
            [
                "study",
                str(SMOKE),
                "--out",
                str(out),
                "--only",
                PAIR,
                "--backend",
                "slurm",
                "--submitit-cluster",
                "local",
                "--time-min",
                "30",
            ]
        )
        == 0
    )
    assert metrics(out) == metrics(local_run)  # SECOND ran as a SLURM job, FIRST stayed as the local backend wrote it
    assert (out / "runs" / "smoke" / "cells" / FIRST / "DONE").read_text() == (
        local_run / "runs" / "smoke" / "cells" / FIRST / "DONE"
    ).read_text()
    assert list((out / "runs" / "smoke" / "slurm").glob("*_log.out"))  # submitit's own logs, one per job


def test_a_ray_task_runs_its_cell_in_a_folder_of_its_own_and_returns_its_files(tmp_path):
    config = study_from_dict({"name": "fixture", "models": ["tiny"], "preset": "tiny", "strategies": ["random"]})
    _, prepare, cells, _ = plan(config, Layout(tmp_path, "fixture"), FIXTURES)
    prepare.folder.mkdir(parents=True)
    for name in (
        "train_holdout.csv",
        "test_holdout__medmcqa_test.csv",
        "test_holdout__medqa.csv",
        "test_holdout__mmlu_medical.csv",
    ):
        (prepare.folder / name).write_text("id\n1\n")
    job = cells[0]
    result = run_cell(job, job.notebook.read_bytes(), pack(prepare.folder), keep_adapters=False)
    assert result["returncode"] == 0
    assert {"03_train_evaluate.ipynb", "results.json", "papermill.log"} <= set(result["files"])
    results = json.loads(result["files"]["results.json"])
    assert results["cell"]["cell_id"] == job.name
    assert not job.folder.exists()  # nothing was written into the study's own folders
    assert str(tmp_path) not in result["files"]["papermill.log"].decode()  # it ran on copies
