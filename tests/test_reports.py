"""HTML reports: code-free notebook pages and the study index, both renderable offline."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from hils_kit.core.layout import Layout
from hils_kit.study.config import study_from_dict
from hils_kit.study.jobs import Outcome, plan, write_manifest
from hils_kit.study.reports import notebook_html, write_index

PNG = base64.b64decode(  # one pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
CHROMIUM = shutil.which("chromium")


def executed_notebook(path):
    """An executed notebook with text, an image and a progress widget (as tqdm leaves in a notebook)."""
    nb = new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    nb.cells = [
        new_markdown_cell("# Train and evaluate\nThe effective parameters come first."),
        new_code_cell("print('accuracy', 41 + 1)", outputs=[new_output("stream", name="stdout", text="accuracy 42\n")]),
        new_code_cell(
            "plot()",
            outputs=[
                new_output("display_data", data={"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"})
            ],
        ),
        new_code_cell(
            "bar()",
            outputs=[
                new_output(
                    "display_data",
                    data={
                        "application/vnd.jupyter.widget-view+json": {
                            "model_id": "abc",
                            "version_major": 2,
                            "version_minor": 0,
                        },
                        "text/plain": "progress 100%",
                    },
                )
            ],
        ),
    ]
    nbformat.write(nb, path)
    return path


def test_notebook_html_keeps_outputs_drops_code_and_needs_no_network(tmp_path):
    target = notebook_html(executed_notebook(tmp_path / "03.ipynb"), tmp_path / "reports" / "03.html")
    page = target.read_text()
    assert "accuracy 42" in page and "Train and evaluate" in page
    assert "41 + 1" not in page and "plot()" not in page  # no code cells
    assert "data:image/png;base64," in page
    assert "progress 100%" in page  # the widget's text fallback
    assert "<script src" not in page and "unpkg.com" not in page and "widget-state" not in page
    assert not re.search(r"""(src|href)=["']https?:""", page)
    assert [p.name for p in target.parent.iterdir()] == ["03.html"]  # no temporary files left


@pytest.fixture
def index(tmp_path):
    """An index for a study where one cell finished, one failed, and 04 wrote a table and a figure."""
    config = study_from_dict(
        {
            "name": "demo",
            "description": "Two cells & a <failure>.",
            "models": ["tiny"],
            "strategies": ["random", "curriculum"],
        }
    )
    layout = Layout(tmp_path, "demo")
    explore, prepare, cells, analysis = plan(config, layout, tmp_path / "notebooks")
    for job in (explore, cells[0]):
        job.output.parent.mkdir(parents=True, exist_ok=True)
        notebook_html(executed_notebook(job.output), job.report)
    outcomes = [
        Outcome(explore, "done", 30),
        Outcome(prepare, "cached", 90),
        Outcome(cells[0], "done", 600),
        Outcome(cells[1], "failed", 60, "RuntimeError: CUDA out of memory <bad>"),
        Outcome(analysis, "done", 20),
    ]
    analysis_dir = layout.run_dir / "analysis"
    analysis_dir.mkdir(parents=True)
    (analysis_dir / "table_llm.csv").write_text("strategy,medqa,mmlu_medical\nrandom,31.25,40\ncurriculum,35,38.5\n")
    (analysis_dir / "gains_llm.png").write_bytes(PNG)
    (analysis_dir / "artefacts.json").write_text(
        json.dumps(
            {  # what 04_analysis lists, in its order
                "findings": ["medqa (tiny, 12 questions): only differences of 20 points or more were detectable."],
                "artefacts": [
                    {
                        "kind": "table",
                        "scenario": "llm",
                        "title": "Accuracy (%) by strategy, llm labels",
                        "file": "table_llm.csv",
                    },
                    {"kind": "gains_plot", "scenario": "llm", "title": "accuracy by strategy", "file": "gains_llm.png"},
                    {"kind": "wins", "scenario": "", "title": "not written", "file": "wins.csv"},
                ],
            }
        )
    )
    manifest = write_manifest(config, outcomes, layout.manifest, 812.0)
    return write_index(manifest, layout.reports_dir / "index.html"), cells


def test_index_has_summary_results_failures_and_links(index):
    path, cells = index
    page = path.read_text()
    assert "<h1>Study: demo</h1>" in page and "Two cells &amp; a &lt;failure&gt;." in page
    assert "<b>1/2</b><span>cells done</span>" in page and "<b>13.5 min</b><span>this run</span>" in page
    assert "Failed runs (1)" in page and "CUDA out of memory &lt;bad&gt;" in page
    assert f'<a href="../../runs/demo/cells/{cells[1].name}/papermill.log">log</a>' in page
    assert '<th>random</th><td class="num">31.2</td><td class="num best">40.0</td>' in page
    assert '<th>curriculum</th><td class="num best">35.0</td>' in page
    assert 'src="data:image/png;base64,' in page and "accuracy by strategy" in page
    assert page.index("only differences of 20 points") < page.index("Accuracy (%) by strategy")  # findings first
    assert "not written" not in page  # an artefact listed but missing is skipped
    assert f'href="cells/{cells[0].name}.html"' in page and 'href="01_data_exploration.html"' in page
    assert "<script" not in page and not re.search(r"""(src|href)=["']https?:""", page)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
def test_index_renders_in_headless_chromium(index, tmp_path):
    path, _ = index
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert '<td class="num best">35.0</td>' in dom
    assert "Failed runs (1)" in dom
