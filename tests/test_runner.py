"""The study runner, with the fixture notebooks in tests/notebooks (each papermill run takes a few seconds)."""

from __future__ import annotations

import ast
import datetime
import json
import re
import shlex
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from hils_kit.analyse.collect import collect_results
from hils_kit.cli import main
from hils_kit.core.layout import Layout
from hils_kit.study import executors
from hils_kit.study.config import study_from_dict
from hils_kit.study.jobs import check_parameters, plan
from hils_kit.study.loading import load_study
from hils_kit.study.papermill_run import KERNEL_DIED_AT_START
from hils_kit.study.runner import run_study

FIXTURES = Path(__file__).parent / "notebooks"
STUDY = """\
name: fixture
description: Three cells of fixture notebooks.
models: [tiny]
preset: tiny
scenarios: [llm]
strategies: [random, curriculum, blocked]
train_limit: 8
test_limit: 4
"""
RANDOM, CURRICULUM, BLOCKED = (
    "tiny__none__random__holdout__r0",
    "tiny__llm__curriculum__holdout__r0",
    "tiny__none__blocked__holdout__r0",
)


def fingerprints(config, out):
    explore, prepare, cells, analysis = plan(config, Layout(out, config.name), FIXTURES)
    return {job.name: job.fingerprint for job in (explore, prepare, *cells)}


def test_fingerprints_follow_parameters_and_inputs_but_not_the_output_folder(tmp_path):
    base = study_from_dict(yaml.safe_load(STUDY))
    before = fingerprints(base, tmp_path / "a")
    assert fingerprints(base, tmp_path / "b") == before  # moving the study keeps its DONE markers valid
    more_rounds = fingerprints(study_from_dict({**yaml.safe_load(STUDY), "rounds": 5}), tmp_path / "a")
    changed = {name for name in before if more_rounds[name] != before[name]}
    assert changed == {RANDOM, CURRICULUM, BLOCKED}  # every cell passes rounds; 01 and 02 do not
    more_data = fingerprints(study_from_dict({**yaml.safe_load(STUDY), "train_limit": 16}), tmp_path / "a")
    changed = {name for name in before if more_data[name] != before[name]}
    assert changed == {"02_difficulty_labeling", RANDOM, CURRICULUM, BLOCKED}  # cells use 02's output


def test_done_marker_counts_only_for_the_same_parameters(tmp_path):
    config = study_from_dict(yaml.safe_load(STUDY))
    _, _, cells, _ = plan(config, Layout(tmp_path, "fixture"), FIXTURES)
    job = cells[0]
    job.folder.mkdir(parents=True)
    (job.folder / "DONE").write_text(json.dumps({"fingerprint": job.fingerprint, "seconds": 3.0}))
    assert job.done_record()["seconds"] == 3.0
    job.parameters["rounds"] = 4
    assert job.done_record() is None


def test_a_notebook_must_declare_every_parameter_the_runner_passes(tmp_path):
    config = study_from_dict(yaml.safe_load(STUDY))
    _, _, cells, _ = plan(config, Layout(tmp_path, "fixture"), tmp_path)
    nb = nbformat.read(FIXTURES / "03_train_evaluate.ipynb", as_version=4)
    params = next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))
    params.source = "\n".join(line for line in params.source.splitlines() if not line.startswith("order_seed"))
    nbformat.write(nb, tmp_path / "03_train_evaluate.ipynb")
    with pytest.raises(
        ValueError,
        match=r"03_train_evaluate.ipynb: the cell tagged 'parameters' does not declare "
        r"order_seed \(",
    ):
        check_parameters(cells[0])
    with pytest.raises(FileNotFoundError, match="notebook not found"):
        check_parameters(plan(config, Layout(tmp_path, "fixture"), tmp_path / "nowhere")[0])


def test_dry_run_lists_the_runs_and_writes_nothing(tmp_path):
    config = study_from_dict(yaml.safe_load(STUDY))
    lines = []
    run = run_study(config, out=tmp_path, notebooks=FIXTURES, dry_run=True, say=lines.append)
    assert list(tmp_path.iterdir()) == [] and run.index is None
    assert any(line.strip() == f"to run       {BLOCKED}" for line in lines)
    command = next(line for line in lines if line.startswith("one run by hand: ")).removeprefix("one run by hand: ")
    assert " -m papermill " in command and f"cell_id: {RANDOM}" in command
    inline = yaml.safe_load(shlex.split(command)[-1])  # the parameters travel inline: no file is needed
    assert (inline["strategy"], inline["out_dir"]) == ("random", str(tmp_path / "runs" / "fixture" / "cells" / RANDOM))
    with pytest.raises(ValueError, match="matches none of the 3 cell ids"):
        run_study(config, out=tmp_path, notebooks=FIXTURES, only="*nothing*", dry_run=True, say=lines.append)


def papermill_times(notebook: Path) -> tuple[datetime.datetime, datetime.datetime]:
    meta = nbformat.read(notebook, as_version=4).metadata.papermill
    return datetime.datetime.fromisoformat(meta.start_time), datetime.datetime.fromisoformat(meta.end_time)


def printed_gpu(notebook: Path) -> str:
    """What the fixture printed as its ``CUDA_VISIBLE_DEVICES``."""
    text = "".join(
        out.get("text", "") for cell in nbformat.read(notebook, as_version=4).cells for out in cell.get("outputs", [])
    )
    return re.search(r"CUDA_VISIBLE_DEVICES: (\S+)", text).group(1)


def test_visible_gpus_respect_an_existing_cuda_visible_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert executors.visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert executors.visible_gpus() == ["3", "5"]


def test_workers_without_gpus_share_the_cpu_cores(monkeypatch, tmp_path):
    monkeypatch.setattr(executors, "visible_gpus", lambda: [])
    monkeypatch.setattr(executors, "cpu_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [executors.LocalExecutor(n, "python3").threads for n in (1, 2, 3, 8)] == [None, 2, 1, 1]
    probe = [sys.executable, "-c", "import os; print('threads', os.environ.get('OMP_NUM_THREADS'))"]
    log = tmp_path / "papermill.log"
    assert executors.launch(probe, log, None, 2).wait() == 0
    assert log.read_text().splitlines()[-1] == "threads 2"  # what the run's torch reads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting wins
    assert executors.launch(probe, log, None, 2).wait() == 0
    assert log.read_text().splitlines()[-1] == "threads 3"
    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0", "1"])
    assert executors.LocalExecutor(2, "python3").threads is None  # one GPU each; the CPU is not the limit


@pytest.mark.slow
def test_study_resumes_runs_in_parallel_survives_a_failure_and_skips_finished_work(tmp_path, monkeypatch, capsys):
    study_file = tmp_path / "fixture.yaml"
    study_file.write_text(STUDY)
    out = tmp_path / "out"
    cli = ["study", str(study_file), "--out", str(out), "--notebooks", str(FIXTURES)]
    run_dir, reports = out / "runs" / "fixture", out / "reports" / "fixture"
    cells = run_dir / "cells"

    # 1. a study stopped after its first cell (simulated with --only): 01, 02, one cell and 04 ran
    assert main([*cli, "--only", "*random*"]) == 0
    for folder in ("exploration", "prepare", f"cells/{RANDOM}", "analysis"):
        assert (run_dir / folder / "DONE").exists()
    assert json.loads((cells / RANDOM / "results.json").read_text())["cell"]["strategy"] == "random"
    assert not (cells / CURRICULUM).exists()
    printed = capsys.readouterr().out
    assert "not selected by --only" in printed and f"report: {reports / 'index.html'}" in printed
    done_first = (cells / RANDOM / "DONE").read_text()

    # 2. resume with two workers (one GPU each): only the missing cells run, side by side; blocked fails on purpose
    monkeypatch.setenv("HILS_FIXTURE_FAIL", "blocked")
    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0", "1"])
    run = run_study(load_study(study_file), out=out, notebooks=FIXTURES, workers=2, say=lambda line: None)
    assert {o.job.name: o.status for o in run.outcomes} == {
        "01_data_exploration": "cached",
        "02_difficulty_labeling": "cached",
        RANDOM: "cached",
        CURRICULUM: "done",
        BLOCKED: "failed",
        "04_analysis": "done",
    }
    assert not run.ok and (cells / RANDOM / "DONE").read_text() == done_first
    failed = json.loads((cells / BLOCKED / "FAILED").read_text())
    assert failed["error"] == f"RuntimeError: fixture failure in {BLOCKED}"
    assert not (cells / BLOCKED / "DONE").exists() and (cells / BLOCKED / "03_train_evaluate.ipynb").exists()
    (start_a, end_a), (start_b, end_b) = (
        papermill_times(cells / c / "03_train_evaluate.ipynb") for c in (CURRICULUM, BLOCKED)
    )
    assert start_a < end_b and start_b < end_a  # the two cells overlapped
    assert [printed_gpu(cells / c / "03_train_evaluate.ipynb") for c in (CURRICULUM, BLOCKED)] == ["0", "1"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {c["cell_id"]: c["status"] for c in manifest["cells"]} == {
        RANDOM: "done",
        CURRICULUM: "done",
        BLOCKED: "failed",
    }
    table = (run_dir / "analysis" / "table_llm.csv").read_text().splitlines()
    assert table == ["strategy,medmcqa_test,medqa,mmlu_medical", "curriculum,35.0,35.0,35.0", "random,30.0,30.0,30.0"]
    long = collect_results(run_dir)  # the layout of results.json that hils_kit.analyse.collect reads
    assert sorted(long["cell_id"].unique()) == [CURRICULUM, RANDOM]
    index = run.index.read_text()
    assert "Failed runs (1)" in index and f"fixture failure in {BLOCKED}" in index
    assert '<th scope="row">curriculum</th>' in index and '<th scope="row">random</th>' in index
    for name in (
        "01_data_exploration",
        "02_difficulty_labeling",
        "04_analysis",
        f"cells/{RANDOM}",
        f"cells/{CURRICULUM}",
        f"cells/{BLOCKED}",
    ):
        assert (reports / f"{name}.html").exists()
        assert f'href="{name}.html"' in index

    # 3. rerun: finished work is skipped, only the failed cell is retried (and fails again: exit code 1)
    markers = {path: path.read_text() for path in run_dir.rglob("DONE")}
    assert main(cli) == 1
    assert {path: path.read_text() for path in run_dir.rglob("DONE")} == markers
    summary = capsys.readouterr().out.split("\n\nrun ")[1]
    assert re.search(rf"{BLOCKED} +failed", summary) and "cells: 0 ran, 2 done before, 1 failed, 0 not run" in summary
    assert summary.count("cached") == 5


def kit_imports() -> dict[str, set[str]]:
    """Each hils_kit module and the hils_kit modules it imports, function-level imports included."""
    graph = {}
    for path in Path(executors.__file__).parents[1].rglob("*.py"):
        module = ".".join(path.relative_to(Path(executors.__file__).parents[2]).with_suffix("").parts)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hils_kit"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("hils_kit")}
        graph[module.removesuffix(".__init__")] = imported
    return graph


@pytest.mark.parametrize(
    ("errors", "returncode", "calls"),
    [
        ([RuntimeError(KERNEL_DIED_AT_START)], 0, 2),  # the kernel died while starting: started again
        ([RuntimeError(KERNEL_DIED_AT_START)] * 2, 1, 2),  # twice: the run failed
        ([ValueError("a cell raised")], 1, 1),  # the notebook's own error: not run again
    ],
)
def test_a_run_whose_kernel_died_while_starting_is_started_again_once(monkeypatch, tmp_path, errors, returncode, calls):
    """With the TCP transport two kernels starting at once can race for a port; such a kernel ran nothing."""
    import papermill

    from hils_kit.study.executors import execute_here
    from hils_kit.study.jobs import Job

    made = []

    def execute_notebook(*args, **kwargs):
        made.append(1)
        if len(made) <= len(errors):
            raise errors[len(made) - 1]

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    job = Job(
        "c", tmp_path / "n.ipynb", tmp_path / "run" / "o.ipynb", tmp_path / "run", {}, tmp_path / "p", tmp_path / "r"
    )
    assert execute_here(job, "python3") == returncode and len(made) == calls
    assert ("starting the run again" in job.log.read_text()) == (calls == 2)


def test_no_module_of_the_kit_imports_itself_back():
    graph = kit_imports()
    assert not graph["hils_kit.study.reports"] & {
        "hils_kit.study.runner",
        "hils_kit.study.executors",
    }  # reports read the manifest

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for module in graph.get(start, ()):
            if module == goal or (module not in seen and reaches(module, goal, seen | {module})):
                return True
        return False

    assert [module for module in graph if reaches(module, module, set())] == []


def test_a_report_is_rendered_only_for_a_new_executed_notebook(tmp_path):
    import os

    from hils_kit.study.jobs import Job, Outcome
    from hils_kit.study.runner import render

    output, report = tmp_path / "run.ipynb", tmp_path / "run.html"
    output.write_text("{}")
    report.write_text("the report of an earlier call")
    os.utime(output, (1_000_000, 1_000_000))  # the executed notebook is older than its report
    job = Job("run", FIXTURES / "01_data_exploration.ipynb", output, tmp_path, {}, tmp_path / "p.yaml", report)
    render(Outcome(job, "cached"), say=lambda line: pytest.fail(f"rendered: {line}"))
    assert report.read_text() == "the report of an earlier call"
    output.unlink()  # a run that failed before papermill wrote its notebook has nothing to render
    report.unlink()
    render(Outcome(job, "failed"), say=lambda line: pytest.fail(f"rendered: {line}"))
    assert not report.exists()
