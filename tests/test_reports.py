"""HTML reports: code-free notebook pages and the study index, both renderable offline."""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from hils_kit.analyse.answers import answers
from hils_kit.analyse.table_views import MAX_COLUMNS
from hils_kit.core.layout import Layout
from hils_kit.study.config import study_from_dict
from hils_kit.study.jobs import Outcome, plan, write_manifest
from hils_kit.study.reports import notebook_html, write_index
from tests.conftest import browser_or_skip

PNG = base64.b64decode(  # one pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


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
    assert '<th scope="row">random</th><td class="num">31.2</td><td class="num best">40.0</td>' in page
    assert '<th scope="row">curriculum</th><td class="num best">35.0</td>' in page
    assert 'src="data:image/png;base64,' in page and "accuracy by strategy" in page
    assert page.index("only differences of 20 points") < page.index("Accuracy (%) by strategy")  # findings first
    assert "<summary>Details: what this study can and cannot tell</summary>" in page  # collapsed
    assert "No comparison with Random Shuffle was written" in page  # no comparisons.csv: said in one line
    assert "not written" not in page  # an artefact listed but missing is skipped
    assert f'href="cells/{cells[0].name}.html"' in page and 'href="01_data_exploration.html"' in page
    assert "<script" not in page and not re.search(r"""(src|href)=["']https?:""", page)


# ----------------------------------------------------------------------------- a wide study: what must fit the page

DATASETS = ["medqa", "mmlu_medical", "medmcqa_test", "pubmedqa", "headqa", "mmlu_anatomy"]
STRATEGIES = ["random", "curriculum", "blocked", "blocked_curriculum", "interleaved", "interleaved_curriculum"]
ONE_RUN = "interleaved_curriculum"  # its rows compare trained models only
NAN = math.nan


def _comparison(dataset: str, strategy: str, metric: str = "accuracy") -> dict:
    """A row of comparisons.csv (its 21 columns, as 04_analysis writes them): Curriculum beats Random Shuffle on
    medqa, nothing else differs."""
    won, once = (dataset, strategy) == ("medqa", "curriculum"), strategy == ONE_RUN
    return {
        **dict(scenario="llm", model="smollm2", dataset=dataset, strategy=strategy, metric=metric),
        "claim": "these trained models" if once else "strategies",
        "estimate": 6.1 if won else 1.3,
        "ci_low": NAN if once else 2.0 if won else -3.1,
        "ci_high": NAN if once else 10.2 if won else 5.7,
        **dict(se=NAN if once else 1.9, df=NAN if once else 4.0),
        "p_value": NAN if once else 0.0004 if won else 0.41,
        "p_holm": 0.012 if won else 1.0,
        "p_bh": 0.012 if won else 0.82,
        "p_models": 0.63 if once else NAN,
        **dict(runs=1 if once else 3, baseline_runs=3, n_questions=500, family_size=6 if once else 25),
        **dict(unit="accuracy points" if metric == "accuracy" else "nats", also_in=""),
    }


def _power(dataset: str, strategy: str, i: int) -> dict:
    """A row of power.csv (its 16 columns)."""
    once = strategy == ONE_RUN
    source = "assumed run sd 3 points (one run per strategy)" if once else "measured (runs of this comparison)"
    return {
        **dict(scenario="llm", model="smollm2", dataset=dataset, strategy=strategy, metric="accuracy"),
        **dict(claim="these trained models" if once else "strategies", runs=1 if once else 3, baseline_runs=3),
        **dict(n_questions=500, family_size=6 if once else 25),
        **dict(mde=NAN if once else 14.2 + i / 2, mde_models=9.8 if once else NAN, target=2.0),
        **dict(runs_needed=160.0 + i, questions_needed=math.inf if once else 9947.0 + i),
        "power_from": source,
    }


def wide_study(root: Path) -> Path:
    """A study whose tables are too wide for a screen as they stand: 18 cells with long ids (one failed), six
    test sets, every strategy compared, 16-column power.csv, 11-column audit and letter-prior tables. Returns its
    manifest."""
    config = study_from_dict({"name": "wide", "models": ["smollm2"], "strategies": STRATEGIES, "replicates": 3})
    layout = Layout(root, "wide")
    explore, prepare, cells, analysis = plan(config, layout, root / "notebooks")
    failed = cells[-1]
    error = f"RuntimeError: CUDA out of memory in {failed.output.parent}/{'x' * 200}"
    outcomes = [Outcome(explore, "done", 30), Outcome(prepare, "done", 90)]
    outcomes += [Outcome(c, "failed", 60, error) if c is failed else Outcome(c, "done", 600) for c in cells]
    outcomes.append(Outcome(analysis, "done", 20))
    folder = layout.run_dir / "analysis"
    folder.mkdir(parents=True)
    names = ["Random Shuffle", "Curriculum", "Blocked", "Blocked Curriculum", "Interleaved", "Interleaved Curriculum"]
    table = pd.DataFrame({"strategy": names, "smollm2": 40.0} | {d: 40.0 + i for i, d in enumerate(DATASETS)})
    table.assign(Mean=42.5).to_csv(folder / "table_llm.csv", index=False)
    compared = [s for s in STRATEGIES if s != "random"]
    rows = [_comparison(d, s) for d in DATASETS for s in compared] + [_comparison("medqa", "blocked", "gold log-prob")]
    pd.DataFrame(rows).to_csv(folder / "comparisons.csv", index=False)
    pd.DataFrame([_power(d, s, i) for i, d in enumerate(DATASETS) for s in compared]).to_csv(
        folder / "power.csv", index=False
    )
    ids = [c.name for c in cells]
    audit = {
        **dict(cell_id=ids, train_audit_ok=True, train_n_examples_fed=3000),
        "train_train_seconds": [812.25 + 10 * i for i in range(len(ids))],
        "train_final_loss": [0.61234 + i / 100 for i in range(len(ids))],
        **dict(probe_share_of_training=0.031, rescoring_share_of_training=0.12),
        **dict(reviews=250, placebo_scores_max_abs_rank_r=0.04, placebo_difficulty_rank_r=0.01),
        "placebo_category_kappa": 0.002,
    }
    pd.DataFrame(audit).to_csv(folder / "audit.csv", index=False)
    letters = {
        **dict(cell_id=ids, strategy=[c.name.split("__")[2] for c in cells], model="smollm2", dataset="medqa"),
        **dict(replicate=[int(c.name[-1]) for c in cells], accuracy=0.4123, letter_prior_accuracy=0.25),
        **dict(majority_baseline=0.29, top_predicted="C", top_predicted_share=0.41, tail_top_letter="A"),
    }
    pd.DataFrame(letters).to_csv(folder / "letter_prior.csv", index=False)
    pd.DataFrame({"wins": [1.5, 4.5], "share": [0.25, 0.75]}, index=["Random Shuffle", "Curriculum"]).to_csv(
        folder / "wins.csv"
    )
    (folder / "gains_llm.png").write_bytes(PNG)
    listed = [
        ("table", "llm", "Accuracy (%) by strategy, llm labels", "table_llm.csv"),
        ("gains_plot", "llm", "Mean gain over Random Shuffle with 95% interval, llm labels", "gains_llm.png"),
        ("power", "", "What the study could detect", "power.csv"),
        ("wins", "", "How often each strategy is best", "wins.csv"),
        ("comparisons", "", "Each strategy against Random Shuffle, the training run as the unit", "comparisons.csv"),
        ("letter_prior", "", "Letter prior", "letter_prior.csv"),
        ("audit", "", "Training order audit", "audit.csv"),
    ]
    index = {
        "findings": ["medqa, smollm2 (3 runs per strategy, 500 questions): the run-unit test detects ..."],
        "artefacts": [dict(zip(("kind", "scenario", "title", "file"), entry)) for entry in listed],
    }
    (folder / "artefacts.json").write_text(json.dumps(index))
    return write_manifest(config, outcomes, layout.manifest, 4000.0)


@pytest.fixture
def wide(tmp_path):
    """The index page of :func:`wide_study` and its text."""
    manifest = wide_study(tmp_path)
    path = write_index(manifest, tmp_path / "reports" / "wide" / "index.html")
    return path, path.read_text()


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_index_opens_with_one_verdict_per_test_set(wide):
    _, page = wide
    assert page.index('class="cards"') < page.index('class="answers"') < page.index("<details>")
    assert page.index("<details>") < page.index("Failed runs (1)") < page.index("<h2>Results</h2>")
    section = page[page.index('class="answers"') : page.index("</section>")]
    verdicts = [_text(li) for li in re.findall(r"<li>(.*?)</li>", section)]
    assert [v.split(" ")[0] for v in verdicts] == DATASETS  # one sentence per test set, in order
    assert all(v.endswith(".") and ". " not in v for v in verdicts)  # each one sentence
    assert verdicts[0] == (
        "medqa (500 questions, 1–3 runs per strategy): Curriculum beats Random Shuffle by 6.1 points (Holm p 0.012); "
        "the others do not differ from it; Interleaved Curriculum ran once, so only its trained model can be "
        "compared: it does not differ from the Random Shuffle model (McNemar, Holm); differences under 9.8 to 14.2 "
        "points (by strategy) could not be detected."
    )
    assert verdicts[1].startswith("mmlu_medical (500 questions, 1–3 runs per strategy): no strategy differs from")
    # the table behind them: gain (95 % interval) and Holm p per strategy and test set, what each could detect
    section = section.replace("\N{NO-BREAK SPACE}", " ")  # a value and its interval, a p and its label stay together
    assert '<td class="num best">+6.1 (2.0 to 10.2), Holm p 0.012</td>' in section
    assert '<td class="num">+1.3 (-3.1 to 5.7), Holm p 1</td>' in section
    assert '<td class="num">+1.3, trained models Holm p 1</td>' in section
    assert "a claim about these trained models, not about the strategies" in section
    assert '<th scope="row">smallest detectable (80 % power)</th><td class="num">9.8–14.2 points</td>' in section
    assert section.count("<table>") == 2  # five test sets a table: the strategy and five values fit the screen
    assert 'href="../../runs/wide/analysis/comparisons.csv"' in section
    assert 'href="../../runs/wide/analysis/power.csv"' in section


def test_answers_say_in_one_line_why_there_are_none(tmp_path):
    assert answers(tmp_path, ["curriculum"]).verdicts == [
        "One strategy ran (Curriculum): there is nothing to compare with Random Shuffle."
    ]
    assert answers(tmp_path, ["curriculum", "blocked"]).verdicts == [
        "No Random Shuffle cells (Curriculum, Blocked): no strategy could be compared with it."
    ]


def test_one_run_per_strategy_speaks_only_of_the_trained_models(tmp_path):
    one_run = dict(claim="these trained models", runs=1, baseline_runs=1, ci_low=NAN, ci_high=NAN, p_value=NAN)
    rows = [{**_comparison("medqa", s), **one_run, "p_holm": p} for s, p in (("curriculum", 0.03), ("blocked", 1.0))]
    pd.DataFrame(rows).to_csv(tmp_path / "comparisons.csv", index=False)
    found = answers(tmp_path, ["random", "curriculum", "blocked"])
    assert found.verdicts == [  # no power.csv: nothing said about what was detectable
        "medqa (500 questions, 1 run per strategy): strategy and training run are confounded, so nothing can be "
        "said about strategies; of the 2 trained models, 1 differs from the Random Shuffle model (McNemar, Holm)."
    ]
    (view,) = found.views
    cells = [text.replace("\N{NO-BREAK SPACE}", " ") for text in view.table["medqa"]]
    assert view.table["strategy"].tolist() == ["Curriculum", "Blocked"]
    assert cells == ["+6.1, trained models Holm p 0.03", "+1.3, trained models Holm p 1"]
    assert view.classes["medqa"].tolist() == ["num best", "num"]


def test_tables_are_for_people(wide):
    path, page = wide
    tables = re.findall(r"<table>(.*?)</table>", page, re.S)
    assert len(tables) >= 10
    for table in tables:
        caption = re.search(r"<caption>(.*?)</caption>", table, re.S)
        assert caption and _text(caption.group(1)).strip(), table[:200]  # explained once, in a caption
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
            assert len(re.findall(r"<t[hd][ >]", row)) <= MAX_COLUMNS, row
        headers = [_text(h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
        assert not [h for h in headers if re.fullmatch(r"\d+", h)]  # no pandas index 0, 1, 2
    listed = json.loads((path.parents[2] / "runs" / "wide" / "analysis" / "artefacts.json").read_text())
    for entry in listed["artefacts"]:
        if entry["file"].endswith(".csv"):
            assert f'full table: <a href="../../runs/wide/analysis/{entry["file"]}">{entry["file"]}</a>' in page
    # units in the headers, numbers rounded, one-value columns in the caption
    assert '<th scope="col" class="num">MDE (points)</th>' in page and '<td class="num">14.2</td>' in page
    assert '<td class="num">812.2</td>' in page and "812.25" not in page and "order as planned: yes" in page
    assert '<td class="num">0.612</td>' in page and "0.61234" not in page
    assert '<th scope="col" class="num">accuracy (%)</th>' in page and '<td class="num">41.2</td>' in page
    assert '<th scope="row">Curriculum</th><td class="num">4.50</td><td class="num">75.0</td>' in page  # wins
    # the accuracy table is split rather than cut: every test set stays
    assert page.count("Accuracy (%) by strategy, llm labels (continued)") == 1
    for dataset in DATASETS:  # a header may break after an underscore
        assert f'<th scope="col" class="num">{dataset.replace("_", "_<wbr>")}</th>' in page
    # every figure has alt text and a caption
    figures = re.findall(r"<figure>(.*?)</figure>", page, re.S)
    assert len(figures) == page.count("<img") == 1
    for figure in figures:
        assert re.search(r'<img [^>]*alt="[^"]+"', figure) and re.search(r"<figcaption>[^<]+</figcaption>", figure)


def test_index_has_a_print_stylesheet(wide):
    _, page = wide
    css = page[page.index("@media print") :]
    assert "break-inside: avoid" in css and "max-width: none" in css and "background: none" in css


def test_index_fits_a_1280_px_screen_in_chromium(wide, tmp_path):
    """At 1280 × 800 the page does not scroll sideways, without hiding what overflows: every table, figure and
    error box ends inside the page's column. A full-page screenshot is kept as ``index.png``."""
    sync_playwright = browser_or_skip()
    path, _ = wide
    artefacts = Path(os.environ.get("HILS_TEST_ARTEFACTS") or tmp_path)
    artefacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(path.as_uri())
        measured = page.evaluate(
            """() => {
                const root = document.documentElement, body = document.body;
                const edge = document.querySelector("main").getBoundingClientRect().right;
                const out = [...document.querySelectorAll("table, figure, img, pre, section, details, p")]
                    .filter(e => e.getBoundingClientRect().right > edge + 0.5).map(e => e.outerHTML.slice(0, 80));
                return {root: [root.scrollWidth, root.clientWidth], body: [body.scrollWidth, body.clientWidth],
                        overflow: [getComputedStyle(root).overflowX, getComputedStyle(body).overflowX],
                        out: out, text: body.innerText};
            }"""
        )
        page.screenshot(path=str(artefacts / "index.png"), full_page=True)
        browser.close()
    assert measured["root"][0] <= measured["root"][1], measured["root"]  # scrollWidth <= clientWidth
    assert measured["body"][0] <= measured["body"][1], measured["body"]
    assert not {"hidden", "clip"} & set(measured["overflow"]), measured["overflow"]
    assert measured["out"] == []  # the wide tables really fit
    text = measured["text"].replace("\N{NO-BREAK SPACE}", " ")
    assert "Failed runs (1)" in text and "+6.1 (2.0 to 10.2), Holm p 0.012" in text
    assert (artefacts / "index.png").stat().st_size > 10_000
