"""The four real notebooks, run end to end by `hils study` on the smoke study (tiny model, small data).

Recommenders style: execute the notebooks with small parameters, then assert on the files they write.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hils_kit.cli import main
from hils_kit.orderings import STRATEGIES
from hils_kit.paths import PARAMS_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    code = main(["study", str(PARAMS_DIR / "studies" / "smoke.yaml"), "--out", str(out)])
    return out, code


def test_smoke_study_runs_every_notebook(smoke):
    out, code = smoke
    assert code == 0
    run = out / "runs" / "smoke"
    for notebook in ("01_data_exploration", "02_difficulty_labeling", "04_analysis"):
        assert (run / f"{notebook}.ipynb").is_file()
        assert (out / "reports" / "smoke" / f"{notebook}.html").is_file()
    assert json.loads((run / "exploration" / "summary.json").read_text())["categories"]["Dental"] > 0


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
    assert sorted(json.loads((c / "results.json").read_text())["cell"]["strategy"] for c in cells) == \
        sorted(s for s in STRATEGIES if s != "anti_curriculum")
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
    assert list(table.index) == ["Random Shuffle", "Curriculum", "Blocked", "Blocked Curriculum", "Interleaved",
                                 "Interleaved Curriculum"]
    assert list(table.columns) == ["tiny", "medmcqa_test", "medqa", "mmlu_medical", "Mean"]
    index = (out / "reports" / "smoke" / "index.html").read_text()
    assert "Interleaved Curriculum" in index and "6/6" in index
    assert len(list((out / "reports" / "smoke" / "cells").glob("*.html"))) == 6


def test_rerun_resumes_without_redoing_cells(smoke, capsys):
    out, _ = smoke
    dones = {p: p.stat().st_mtime for p in (out / "runs" / "smoke").rglob("DONE")}
    assert main(["study", str(PARAMS_DIR / "studies" / "smoke.yaml"), "--out", str(out)]) == 0
    assert "0 ran, 6 done before" in capsys.readouterr().out
    assert {p: p.stat().st_mtime for p in dones} == dones
