"""The four real notebooks, run end to end by `hils study` on the smoke study (tiny model, small data).

Recommenders style: execute the notebooks with small parameters, then assert on the files they write.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hils_kit.cli import main
from hils_kit.core.paths import PARAMS_DIR
from hils_kit.data.loaders import load_questions
from hils_kit.data.splits import sample_questions
from hils_kit.order.registry import STRATEGIES, STRATEGY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(smoke_study):
    return smoke_study


def test_smoke_study_runs_every_notebook(smoke):
    out, code = smoke
    assert code == 0
    run = out / "runs" / "smoke"
    for notebook in ("01_data_exploration", "02_difficulty_labeling", "04_analysis"):
        assert (run / f"{notebook}.ipynb").is_file()
        assert (out / "reports" / "smoke" / f"{notebook}.html").is_file()
    assert json.loads((run / "exploration" / "summary.json").read_text())["categories"]["Dental"] > 0


def test_the_runner_s_notebooks_show_the_widgets_static(smoke):
    """Headless (HILS_HEADLESS=1), 01's question browser and 02's strategy picker show a note, not a widget."""
    run = smoke[0] / "runs" / "smoke"
    for notebook in ("01_data_exploration", "02_difficulty_labeling"):
        outputs = [
            o for c in json.loads((run / f"{notebook}.ipynb").read_text())["cells"] for o in c.get("outputs", [])
        ]
        shown = [o["data"] for o in outputs if "data" in o]
        assert not any("application/vnd.jupyter.widget-view+json" in d for d in shown), notebook
        assert any("open it in JupyterLab" in "".join(d.get("text/html", "")) for d in shown), notebook


def test_the_saved_notebooks_read_as_reports(smoke):
    """What a reader of a cell page sees: no library warning that says nothing to them, no raw Python dict (the
    letter mix, the training summary, the parameters are tables), no progress line (those go to papermill.log)."""
    import re

    run = smoke[0] / "runs" / "smoke"
    progress = re.compile(r"\d+/\d+ \([\d.]+/s, ETA")
    for notebook in [*run.glob("*.ipynb"), *run.glob("cells/*/03_train_evaluate.ipynb")]:
        outputs = [o for c in json.loads(notebook.read_text())["cells"] for o in c.get("outputs", [])]
        texts = ["".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream"]
        data = [o["data"] for o in outputs if "data" in o]
        plain = ["".join(d.get("text/plain", "")) for d in data if "text/html" not in d]  # shown as plain text
        shown = "".join(texts)
        assert "gemm_4bit_forward" not in shown and not progress.search(shown), notebook
        assert not any(text.lstrip().startswith("{") for text in [*texts, *plain]), notebook
        assert "parameters: {" not in shown, notebook
    logs = "".join(p.read_text() for p in run.glob("cells/*/papermill.log"))
    assert progress.search(logs)  # the progress went to the terminal, the cell's log


def test_prepare_writes_split_questions_and_labels(smoke):
    prepare = smoke[0] / "runs" / "smoke" / "prepare"
    labels = pd.read_csv(prepare / "labels.csv")
    train = pd.read_csv(prepare / "train_holdout.csv")
    assert len(train) == 24 and set(labels["id"]) == set(train["id"])
    assert labels["difficulty_llm"].between(0, 1).all()
    split = json.loads((prepare / "split.json").read_text())
    assert set(train["id"]) <= set(split["train"]) and set(split["train"]).isdisjoint(split["test"])
    for label in ("medmcqa_test", "medqa", "mmlu_medical"):
        test = pd.read_csv(prepare / f"test_holdout__{label}.csv")
        assert len(test) == 12 and set(test["id"]).isdisjoint(train["id"])


def test_every_cell_trained_in_its_planned_order_and_was_evaluated(smoke):
    cells = sorted((smoke[0] / "runs" / "smoke" / "cells").iterdir())
    assert sorted(json.loads((c / "results.json").read_text())["cell"]["strategy"] for c in cells) == sorted(
        s for s in STRATEGIES if STRATEGY[s].in_paper
    )
    for cell in cells:
        results = json.loads((cell / "results.json").read_text())
        assert results["train"]["audit_ok"] is True and results["train"]["n_examples_fed"] == 24
        planned = pd.read_csv(cell / "train" / "order_planned.csv")
        fed = pd.read_csv(cell / "train" / "order_fed.csv")
        assert planned["id"].tolist() == fed["id"].tolist()
        assert set(results["metrics"]) == {"medmcqa_test", "medqa", "mmlu_medical"}
        for name, metrics in results["metrics"].items():
            assert metrics["n"] == 12 and 0 <= metrics["accuracy"] <= 1
            lo, hi = metrics["accuracy_ci"]
            assert lo <= metrics["accuracy"] <= hi
            predictions = pd.read_csv(cell / f"predictions_{name}.csv")
            assert len(predictions) == 12 and predictions["correct"].mean() == pytest.approx(metrics["accuracy"])
        assert (cell / "train" / "adapter" / "adapter_config.json").is_file()


def test_analysis_and_index(smoke):
    out = smoke[0]
    table = pd.read_csv(out / "runs" / "smoke" / "analysis" / "table_llm.csv", index_col=0)
    assert list(table.index) == [
        "Random Shuffle",
        "Curriculum",
        "Blocked",
        "Blocked Curriculum",
        "Interleaved",
        "Interleaved Curriculum",
    ]
    assert list(table.columns) == ["tiny", "medmcqa_test", "medqa", "mmlu_medical", "Mean"]
    index = (out / "reports" / "smoke" / "index.html").read_text()
    assert "Interleaved Curriculum" in index and "6/6" in index
    assert len(list((out / "reports" / "smoke" / "cells").glob("*.html"))) == 6
    # one run per strategy: every comparison is about these trained models, none about a strategy
    comparisons = pd.read_csv(out / "runs" / "smoke" / "analysis" / "comparisons.csv")
    assert set(comparisons["claim"]) == {"these trained models"} and comparisons["p_value"].isna().all()
    assert comparisons["p_models"].between(0, 1).all()
    assert len(comparisons) == 5 * 3 * 3  # strategies × test sets × metrics (accuracy, gold log-prob, Brier)
    findings = json.loads((out / "runs" / "smoke" / "analysis" / "artefacts.json").read_text())["findings"]
    assert any("strategy and training run are confounded" in line for line in findings)
    assert any(line.startswith("These trained models") for line in findings)


def test_hils_analyse_runs_04_again_without_training(smoke, tmp_path, capsys):
    """``hils analyse RUNS_DIR`` on a copy of the smoke run: 04 runs again with the changed parameter, the report
    and the index page are rendered again, and no cell is touched."""
    import os
    import shutil

    out = tmp_path / "out"
    shutil.copytree(smoke[0], out)
    run = out / "runs" / "smoke"
    cells = {p: p.stat().st_mtime_ns for p in (run / "cells").rglob("results.json")}
    report = out / "reports" / "smoke" / "04_analysis.html"
    os.utime(report, (1_000_000, 1_000_000))
    assert main(["analyse", str(run), "--alpha", "0.01", "--run-sd", "4"]) == 0
    assert "report:" in capsys.readouterr().out
    assert yaml.safe_load((out / "params" / "smoke" / "analysis.yaml").read_text())["alpha"] == 0.01
    assert report.stat().st_mtime > 1_000_000
    power = pd.read_csv(run / "analysis" / "power.csv")
    assert set(power["power_from"]) == {"assumed run sd 4 points (one run per strategy)"}
    assert {p: p.stat().st_mtime_ns for p in (run / "cells").rglob("results.json")} == cells
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["steps"] if s["name"] == "04_analysis"] == ["done"]
    assert main(["analyse", str(run), "--baseline", "blocked"]) == 2  # --baseline goes with --predictions


def test_a_study_of_one_strategy_gets_a_report_and_its_runs_are_independent(smoke, tmp_path, capsys):
    """The smoke study with Curriculum only and two runs as the authors ran them (``variant: paper``), on a copy
    of the smoke run: 01, 02 and run 0 (the strict order, as in the smoke study) are reused; run 1 (a tiered order
    with the authors' seed 42, training seed 43) and 04 run. 04 reports what one strategy can: accuracies with
    intervals, the spread between the runs, the learning curves, and one line saying that comparisons need a
    second strategy."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(smoke[0], out)
    study = yaml.safe_load((PARAMS_DIR / "studies" / "smoke.yaml").read_text())
    one = {**study, "strategies": ["curriculum"], "variant": "paper", "replicates": 2}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(one))
    assert main(["study", str(tmp_path / "smoke.yaml"), "--out", str(out)]) == 0
    assert "cells: 1 ran, 1 done before, 0 failed" in capsys.readouterr().out
    analysis = out / "runs" / "smoke" / "analysis"
    index = json.loads((analysis / "artefacts.json").read_text())
    kinds = {artefact["kind"] for artefact in index["artefacts"]}
    assert {"table", "spread", "learning_curves", "audit"} <= kinds
    assert not kinds & {"best_gains", "gains_plot", "power", "wins", "comparisons"}
    line = "One strategy (Curriculum): comparisons (gains, wins, paired tests, power) need a second strategy."
    assert line in index["findings"] and not any(f.startswith("Letter prior") for f in index["findings"])
    spread = pd.read_csv(analysis / "spread_llm.csv")
    assert spread["dataset"].tolist() == ["medmcqa_test", "medqa", "mmlu_medical"] and set(spread["runs"]) == {2}
    assert (spread["ci_low"] <= spread["accuracy"]).all() and (spread["accuracy"] <= spread["ci_high"]).all()
    assert (spread["run_min"] <= spread["run_max"]).all() and spread["run_sd"].notna().all()
    assert line in (out / "reports" / "smoke" / "index.html").read_text()

    # the two runs are independent: the authors' strict order then a tiered one, training seeds 42 and 43
    folder = [out / "runs" / "smoke" / "cells" / f"tiny__llm__curriculum__holdout__r{r}" for r in (0, 1)]
    runs = [json.loads((f / "results.json").read_text())["cell"] for f in folder]
    assert [(c["variant"], c["order_seed"], c["train_seed"]) for c in runs] == [("strict", 0, 42), ("tiers", 42, 43)]
    adapters = [
        hashlib.md5((f / "train" / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest() for f in folder
    ]
    assert adapters[0] != adapters[1]
    orders = [pd.read_csv(f / "train" / "order_fed.csv")["id"] for f in folder]
    assert sorted(orders[0]) == sorted(orders[1]) and list(orders[0]) != list(orders[1])


def test_rerun_resumes_without_redoing_cells(smoke, capsys):
    out, _ = smoke
    dones = {p: p.stat().st_mtime for p in (out / "runs" / "smoke").rglob("DONE")}
    assert main(["study", str(PARAMS_DIR / "studies" / "smoke.yaml"), "--out", str(out)]) == 0
    assert "0 ran, 6 done before" in capsys.readouterr().out
    assert {p: p.stat().st_mtime for p in dones} == dones


# -- the paper's design: k-fold pooled over folds, human and LLM labels, real replicates ----------------------------


def write_lek_standin(path, n: int = 24) -> None:
    """A LEK-format file (prompt, A-D, Answer, Category, %A-%D) of ``n`` MedMCQA questions with made-up examinee
    shares: the paper's data is not redistributable, and this checks the pipeline's shape, not its results."""
    table = sample_questions(load_questions("medmcqa"), n, seed=0)
    rows = []
    for i, row in table.reset_index(drop=True).iterrows():
        right = 50 + (i * 7) % 45
        shares = {letter: (100 - right) / 3 for letter in "ABCD"}
        shares[row["answer"]] = right
        rows.append(
            {
                "prompt": row["question"],
                **dict(zip("ABCD", row["options"])),
                "Answer": row["answer"],
                "Category": row["category"],
                **{f"%{k}": round(v, 2) for k, v in shares.items()},
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture(scope="module")
def paper_design(tmp_path_factory):
    """paper.yaml on the tiny model: a LEK-format file in 2 folds + full-data models, human and LLM difficulty,
    Random Shuffle and Curriculum, one run per cell: 9 cells (the authors' second run, a tiered order, runs in
    the one-strategy test on the smoke study)."""
    tmp = tmp_path_factory.mktemp("paper")
    write_lek_standin(tmp / "lek.csv")
    paper = yaml.safe_load((PARAMS_DIR / "studies" / "paper.yaml").read_text())
    study = {
        **paper,
        "name": "paper_tiny",
        "models": ["tiny"],
        "preset": "tiny",
        "train_data": str(tmp / "lek.csv"),
        "split": {"kind": "kfold", "k": 2, "seed": 0, "include_full": True},
        "test_sets": ["medqa"],
        "test_limit": 6,
        "difficulty_models": ["tiny"],
        "difficulty_file": None,
        "strategies": ["random", "curriculum"],
        "replicates": 1,
    }
    (tmp / "paper_tiny.yaml").write_text(yaml.safe_dump(study))
    code = main(["study", str(tmp / "paper_tiny.yaml"), "--out", str(tmp / "out"), "--workers", "2"])
    return tmp / "out", code


def test_paper_design_runs_through_every_notebook_and_pools_the_folds(paper_design):
    out, code = paper_design
    assert code == 0
    run = out / "runs" / "paper_tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    # (2 folds + full) x (random + curriculum by human and by LLM difficulty)
    assert len(manifest["cells"]) == 9 and {c["status"] for c in manifest["cells"]} == {"done"}
    assert (out / "reports" / "paper_tiny" / "index.html").is_file()
    for scenario in ("human", "llm"):
        table = pd.read_csv(run / "analysis" / f"table_{scenario}.csv", index_col=0)
        assert list(table.columns) == ["tiny", "lek", "medqa", "Mean"]  # pooled own test set, then the external one
        assert list(table.index) == ["Random Shuffle", "Curriculum"]
    deltas = pd.read_csv(run / "analysis" / "label_sources.csv", index_col=0)
    assert list(deltas.index) == ["Curriculum"]
    folds = [
        json.loads((run / "cells" / f"tiny__llm__curriculum__fold{f}__r0" / "results.json").read_text()) for f in (0, 1)
    ]
    correct = sum(r["metrics"]["lek"]["accuracy"] * r["metrics"]["lek"]["n"] for r in folds)
    pooled = 100 * correct / sum(r["metrics"]["lek"]["n"] for r in folds)
    table = pd.read_csv(run / "analysis" / "table_llm.csv", index_col=0)
    assert table.loc["Curriculum", "lek"] == pytest.approx(pooled, abs=0.01)
    full = json.loads((run / "cells" / "tiny__llm__curriculum__full__r0" / "results.json").read_text())
    assert list(full["metrics"]) == ["medqa"]  # the full-data models are tested on the external set only


def test_kfold_smoke_study_lists_its_cells(capsys):
    assert main(["study", str(PARAMS_DIR / "studies" / "smoke_kfold.yaml"), "--dry-run"]) == 0
    assert "study smoke_kfold: 12 cells" in capsys.readouterr().out


def test_paper_study_dry_run_lists_its_grid_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    (tmp_path / "data").mkdir()
    write_lek_standin(tmp_path / "data" / "lek.csv")
    pd.DataFrame({"Index": range(24), "llm_difficulty": np.linspace(0.1, 0.9, 24)}).to_csv(
        tmp_path / "data" / "llm_difficulty_lek.csv", index=False
    )
    cache = tmp_path / "hub"
    for repo in yaml.safe_load((PARAMS_DIR / "studies" / "paper.yaml").read_text())["models"]:
        snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "0" / "config.json"
        snapshot.parent.mkdir(parents=True)
        snapshot.write_text("{}")
        (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
        (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["study", "paper", "--dry-run", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    # 4 models x (4 folds + full) x (3 difficulty-free + 3 curricula x 2 label sources) x 5 runs
    assert "study paper: 900 cells" in printed
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def check_adaptive_study(run: Path, strategies: list[str], questions: int) -> dict:
    """What every study with adaptive strategies shows: each cell fed what its schedule decided (the decisions
    with their step, score and reason), spaced repetition within its budget, the matched Random Shuffle fed as many
    examples, and the report's forgetting and equal-compute sections. Returns the artefact kinds."""
    for strategy in strategies:
        cell = next((run / "cells").glob(f"tiny__*__{strategy}__holdout__r0"))
        summary = json.loads((cell / "train" / "train_summary.json").read_text())
        planned = pd.read_csv(cell / "train" / "order_planned.csv", dtype={"id": str})
        assert summary["audit_ok"], strategy
        assert (cell / "train" / "trajectories.csv").is_file()
        if STRATEGY[strategy].adaptive:
            assert {"step", "score", "reason"} <= set(planned.columns) and summary["adaptive"]["rescorings"] > 1
        if strategy in ("spaced_repetition", "random_matched"):
            assert summary["n_examples_fed"] == questions + questions // 4  # a quarter more
    index = json.loads((run / "analysis" / "artefacts.json").read_text())
    kinds = {artefact["kind"] for artefact in index["artefacts"]}
    assert {"forgetting", "forgetting_plot", "matched", "audit"} <= kinds
    matched = pd.read_csv(run / "analysis" / "matched.csv")
    assert set(matched["baseline"]) == {"random_matched"}
    return kinds


@pytest.mark.small
def test_a_study_adds_spaced_repetition_with_its_equal_compute_twin(smoke, tmp_path, capsys):
    """The small variant of the next test: the smoke run (copied) gets Spaced Repetition, which adds its
    equal-compute Random Shuffle; 01, 02 and the Random Shuffle cell are reused."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(smoke[0], out)
    study = yaml.safe_load((PARAMS_DIR / "studies" / "smoke.yaml").read_text())
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump({**study, "strategies": ["random", "spaced_repetition"]}))
    assert main(["study", str(tmp_path / "smoke.yaml"), "--out", str(out)]) == 0
    assert "cells: 2 ran, 1 done before, 0 failed" in capsys.readouterr().out
    check_adaptive_study(out / "runs" / "smoke", ["spaced_repetition", "random_matched"], questions=24)
    assert "Forgetting" in (out / "reports" / "smoke" / "04_analysis.html").read_text()


@pytest.mark.long
def test_the_adaptive_smoke_study_runs_to_the_report(smoke, tmp_path, capsys):
    """params/studies/smoke_adaptive.yaml: Random Shuffle, Curriculum, Self-Paced, Competence and Spaced
    Repetition with placebo twins (and the matched Random Shuffle), end to end to the report. Its data and labels
    are the smoke study's: run under the smoke study's name on a copy of its run, 01 and 02 are reused and every
    cell (each with the adaptive settings) runs."""
    import shutil

    shutil.copytree(smoke[0], tmp_path / "out")
    study = yaml.safe_load((PARAMS_DIR / "studies" / "smoke_adaptive.yaml").read_text())
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump({**study, "name": "smoke"}))
    assert main(["study", str(tmp_path / "smoke.yaml"), "--out", str(tmp_path / "out"), "--workers", "2"]) == 0
    printed = "".join(capsys.readouterr())
    assert "cells: 10 ran, 0 done before, 0 failed" in printed and "start  02_difficulty_labeling" not in printed
    run = tmp_path / "out" / "runs" / "smoke"
    smoke_only = ("blocked", "blocked_curriculum", "interleaved", "interleaved_curriculum")  # the copied cells
    strategies = [s for s in (p.name.split("__")[2] for p in (run / "cells").iterdir()) if s not in smoke_only]
    kinds = check_adaptive_study(run, strategies, questions=24)
    assert "placebo" in kinds and len(strategies) == 10
    placebo = pd.read_csv(run / "analysis" / "placebo.csv")
    assert set(placebo["strategy"]) == {"curriculum", "self_paced", "competence", "spaced_repetition"}
    assert (tmp_path / "out" / "reports" / "smoke" / "index.html").is_file()


def test_an_earlier_study_s_runs_are_the_respondents_of_an_irt_fit(smoke, tmp_path):
    """Scenario irt with irt_respondents: the smoke study's six trained runs answered the same 12 MedQA test
    questions; as training questions of a new study, they get IRT difficulties fitted to those answers."""
    from hils_kit.analyse.predictions import run_answers
    from hils_kit.labels.irt import difficulty_percentile, fit_irt
    from hils_kit.stages.prepare import label_questions

    run = smoke[0] / "runs" / "smoke"
    answers = run_answers(run)
    assert answers.shape[1] == 6 and set(answers.stack().unique()) <= {0, 1}
    answered = [q for q in answers.dropna().index if q.startswith("medqa:")]
    table = load_questions("medqa").set_index("id").loc[answered].reset_index()
    assert len(table) == 12
    labels = label_questions(table, ["irt"], tmp_path / "prepare", [], irt_respondents=str(run))
    expected = difficulty_percentile(fit_irt(answers.loc[answered].astype(int)))
    assert labels["difficulty_irt"].tolist() == pytest.approx(expected.tolist())
    more = load_questions("medqa").head(3)  # not among the questions the runs answered
    with pytest.raises(ValueError, match=r"3 of 3 training questions were not answered by every one of its 6 runs"):
        label_questions(more, ["irt"], tmp_path / "other", [], irt_respondents=str(run))
