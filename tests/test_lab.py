"""JupyterLab as a person uses it: headless Chromium (Debian's) driven by Playwright opens JupyterLab, each notebook
starts with the kit's kernel (no kernel dialog), runs all its cells without an error, and its widgets respond.

- 01 and 02 on the tiny model, 04 on a copy of the finished smoke study, each prepared as the README says
  (``papermill --prepare-only``, parameters injected).
- 01: the question browser follows the category dropdown and the slider.
- 02: scoring shows a progress bar; the strategy picker redraws for another strategy and another seed.
- 04: the study explorer redraws for another test set, metric and strategy.

Screenshots go to ``$HILS_TEST_ARTEFACTS`` (CI keeps them), else to the test's temporary folder. The small variant
in ``make test``: the widgets driven from Python (``tests/test_widgets.py``, ``tests/test_explorer.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hils_kit.core.paths import NOTEBOOKS_DIR
from tests.conftest import browser_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.long]

TOKEN = "hils-lab-test"
KERNEL = "HILS Kit (.venv)"
RUN_SECONDS = 240  # the longest a notebook may take to run all its cells


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(notebook: str, target: Path, **parameters) -> str:
    """``notebooks/<notebook>`` with ``parameters`` injected (``papermill --prepare-only``) as ``target``."""
    import papermill

    papermill.execute_notebook(
        NOTEBOOKS_DIR / f"{notebook}.ipynb", target, parameters=parameters, prepare_only=True, kernel_name="hils-kit"
    )
    return target.name


@pytest.fixture(scope="module")
def lab(smoke_study, tmp_path_factory):
    """``(url, folder)`` of a JupyterLab server on localhost (with a token) over a folder holding the prepared
    notebooks, with the environment of a person's session: not headless, progress shown."""
    folder = tmp_path_factory.mktemp("lab")
    shutil.copytree(smoke_study[0] / "runs" / "smoke", folder / "smoke")
    prepare(
        "01_data_exploration", folder / "01.ipynb", tokenizer_model="tiny", compare_with=["medqa"], out_dir="explore"
    )
    prepare(
        "02_difficulty_labeling",
        folder / "02.ipynb",
        difficulty_models=["tiny"],
        train_limit=24,
        test_limit=12,
        debias=False,
        prepare_dir="prepare",
    )
    prepare("04_analysis", folder / "04.ipynb", run_dir="smoke", out_dir="smoke/analysis", difficulty_models=["tiny"])
    config = folder / ".jupyter"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(  # no "official Jupyter news?" toast over the page
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HILS_HEADLESS", "HILS_PROGRESS")}
    env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTERLAB_WORKSPACES_DIR=str(folder / ".workspaces"))
    port = free_port()
    command = [
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}"),
        *(f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0"),
        "--MappingKernelManager.default_kernel_name=hils-kit",
    ]
    log = open(folder / "jupyter.log", "w")
    server = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=1)
                break
            except OSError:
                assert server.poll() is None, (folder / "jupyter.log").read_text()
                time.sleep(0.5)
        yield url, folder
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    playwright = browser_or_skip()
    with playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield chromium.new_page(viewport={"width": 1280, "height": 800})
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("HILS_TEST_ARTEFACTS") or tmp_path_factory.mktemp("shots")) / "lab"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in view


def run_all(page, lab, name: str) -> dict:
    """Open ``name`` in a fresh workspace, check that it starts with the kit's kernel, run all its cells, wait
    until they finished, save it and return the saved notebook."""
    url, folder = lab
    page.goto(f"{url}/lab/tree/{name}?reset&token={TOKEN}")
    page.wait_for_selector(f"text={KERNEL} | Idle", timeout=120_000)  # the kit's kernel, no dialog
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        prompts = page.eval_on_selector_all(
            f"{NOTEBOOK} .jp-CodeCell .jp-InputPrompt", "cells => cells.map(c => c.textContent.trim())"
        )
        finished = prompts and all(p not in ("[*]:", "[ ]:") for p in prompts)
        if finished and page.query_selector(f"text={KERNEL} | Idle"):
            break
        assert time.monotonic() < deadline, f"{name}: cells still running after {RUN_SECONDS} s: {prompts}"
        time.sleep(0.5)
    page.keyboard.press("Control+s")
    saved = saved_after_run(folder / name)
    errors = [o for c in saved["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    return saved


def saved_after_run(path: Path, seconds: float = 30) -> dict:
    """The notebook at ``path`` once the server has written it with every code cell run. The server writes a
    save in place (the file is empty or partial meanwhile), and the page may show it saved before it is on disk."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            saved = json.loads(path.read_text())
            if all(c.get("execution_count") for c in saved["cells"] if c["cell_type"] == "code"):
                return saved
        except json.JSONDecodeError:
            pass
        assert time.monotonic() < deadline, f"{path.name}: not saved with its cells run within {seconds} s"
        time.sleep(0.2)


def widget(page, has: str):
    """The last widget box in the notebook in view that holds ``has``, scrolled into view."""
    box = page.locator(f"{NOTEBOOK} .jp-OutputArea-output .widget-vbox:has({has})").last
    box.scroll_into_view_if_needed()
    return box


def changes(read, act) -> bool:
    """Whether what ``read()`` returns changes (within 20 s) after ``act()``."""
    before = read()
    act()
    deadline = time.monotonic() + 20
    while read() == before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_01_runs_in_jupyterlab_and_its_question_browser_responds(page, lab, shots):
    run_all(page, lab, "01.ipynb")
    browser = widget(page, ".widget-slider")
    shown = browser.locator(".widget-html-content").inner_text
    assert "medmcqa:" in shown()
    assert changes(shown, lambda: browser.locator("select").select_option(label="Dental"))
    assert "· Dental" in shown()
    first = shown()
    browser.locator(".noUi-handle").focus()
    assert changes(shown, lambda: page.keyboard.press("ArrowRight"))
    assert "· Dental" in shown() and shown() != first
    page.screenshot(path=shots / "01_question_browser.png")


def test_02_runs_in_jupyterlab_shows_progress_and_its_strategy_picker_responds(page, lab, shots):
    run_all(page, lab, "02.ipynb")
    bars = page.locator(f"{NOTEBOOK} .widget-hprogress")
    assert bars.count() >= 1  # the LLM difficulty's scoring, as a tqdm widget
    picker = widget(page, ".widget-dropdown")
    figure = lambda: picker.locator("img").first.get_attribute("src")  # noqa: E731
    assert changes(figure, lambda: picker.locator("select").select_option("blocked"))
    seed = picker.locator(".widget-text input")
    assert changes(figure, lambda: (seed.fill("3"), seed.press("Enter")))
    page.screenshot(path=shots / "02_strategy_picker.png")


def test_04_runs_on_a_finished_study_and_its_explorer_responds(page, lab, shots):
    run_all(page, lab, "04.ipynb")
    explorer = widget(page, ".widget-output")
    shown = explorer.locator(".widget-output").inner_text
    assert "Random Shuffle" in shown()
    selects = explorer.locator("select")  # scenario, test set, metric, strategy A, strategy B
    assert changes(shown, lambda: selects.nth(1).select_option(index=1))  # another test set
    assert changes(shown, lambda: selects.nth(2).select_option(index=1))  # another metric
    assert changes(shown, lambda: selects.nth(3).select_option(label="Blocked"))  # another strategy A
    page.screenshot(path=shots / "04_study_explorer.png")
