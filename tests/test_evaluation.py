"""evaluate(), resolve_test_sets() and `hils evaluate` on the tiny model and small question files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hils_kit.cli import main
from hils_kit.data.loaders import save_questions
from hils_kit.score.evaluation import evaluate, read_ids, resolve_test_sets
from tests.conftest import make_questions

SCORES = ["p_gold", "gold_logprob", "gold_logprob_debiased", "brier"]
COLUMNS = ["id", "category", "answer", "pred", "correct", *SCORES, "p_A", "p_B", "p_C", "p_D"]


@pytest.fixture
def question_file(tmp_path):
    return save_questions(make_questions(24), tmp_path / "synth.csv")


def test_unknown_data_set_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'medmcq'.*medmcqa, medqa, mmlu_medical"):
        resolve_test_sets(["medmcq"])


def test_limit_is_a_seeded_stratified_sample():
    sets = resolve_test_sets(["medmcqa"], limit=100, seed=0)
    table = sets["medmcqa"]
    assert len(table) == 100
    assert table["category"].nunique() >= 15  # spread over the 21 subjects, not the first rows
    assert resolve_test_sets("medmcqa", limit=100, seed=0)["medmcqa"]["id"].tolist() == table["id"].tolist()
    assert resolve_test_sets("medmcqa", limit=100, seed=1)["medmcqa"]["id"].tolist() != table["id"].tolist()


def test_exclude_ids_from_list_split_json_and_text(question_file, tmp_path):
    all_ids = make_questions(24)["id"].tolist()
    (tmp_path / "split.json").write_text(json.dumps({"train": all_ids[:20], "test": all_ids[20:]}))
    (tmp_path / "ids.txt").write_text("\n".join(all_ids[:20]) + "\n")
    assert read_ids(tmp_path / "ids.txt") == all_ids[:20]
    save_questions(make_questions(24).head(20), tmp_path / "train.csv")
    assert read_ids(tmp_path / "train.csv") == all_ids[:20]
    (tmp_path / "no_id.csv").write_text("x\n1\n")
    with pytest.raises(ValueError, match="no_id.csv: a CSV of ids needs an 'id' column"):
        read_ids(tmp_path / "no_id.csv")
    for exclude in (all_ids[:20], tmp_path / "split.json", str(tmp_path / "ids.txt"), tmp_path / "train.csv"):
        table = resolve_test_sets([str(question_file)], exclude_ids=exclude)["synth"]
        assert table["id"].tolist() == all_ids[20:]
    with pytest.raises(ValueError, match="no questions left"):
        resolve_test_sets([str(question_file)], exclude_ids=all_ids)


def test_evaluate_loaded_model_writes_predictions_and_metrics(tiny_model, question_file, tmp_path):
    sets = resolve_test_sets([str(question_file), "medqa"], limit=10)
    metrics = evaluate(tiny_model, test_sets=sets, out_dir=tmp_path / "out")
    assert set(metrics) == {"synth", "medqa"}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics
    synth = pd.read_csv(tmp_path / "out" / "predictions_synth.csv")
    assert synth.columns.tolist() == COLUMNS
    assert len(synth) == 10 and (synth["correct"] == (synth["answer"] == synth["pred"])).all()
    assert np.allclose(synth[COLUMNS[9:]].sum(axis=1), 1.0)
    gold_p = synth.apply(lambda row: row[f"p_{row['answer']}"], axis=1)
    assert np.allclose(synth["p_gold"], gold_p) and np.allclose(np.exp(synth["gold_logprob"]), gold_p)
    assert metrics["synth"]["mean_gold_logprob"] == pytest.approx(synth["gold_logprob"].mean())
    medqa = pd.read_csv(tmp_path / "out" / "predictions_medqa.csv")
    assert medqa.columns.tolist() == COLUMNS + ["p_E"]
    assert metrics["synth"]["accuracy"] == pytest.approx(synth["correct"].mean())
    assert metrics["synth"]["n"] == 10 and metrics["synth"]["seconds_per_question"] > 0


def test_evaluate_with_adapter(question_file, tmp_path):
    from peft import LoraConfig, get_peft_model

    from hils_kit.models.loading import load_model

    for name, init in (("zero", True), ("random", False)):  # LoRA's default init leaves the model unchanged
        base, _ = load_model("tiny")
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=init)
        get_peft_model(base, config).save_pretrained(tmp_path / name)
    sets = resolve_test_sets([str(question_file)])
    zero_shot = evaluate("tiny", test_sets=sets, out_dir=tmp_path / "none")
    with_zero = evaluate("tiny", adapter=tmp_path / "zero", test_sets=sets, out_dir=tmp_path / "zero_out")
    evaluate("tiny", adapter=tmp_path / "random", test_sets=sets, out_dir=tmp_path / "random_out")
    probs = {
        d: pd.read_csv(tmp_path / d / "predictions_synth.csv")[COLUMNS[5:]].to_numpy()
        for d in ("none", "zero_out", "random_out")
    }
    assert np.allclose(probs["zero_out"], probs["none"], atol=1e-6)
    assert with_zero["synth"]["accuracy"] == zero_shot["synth"]["accuracy"]
    assert not np.allclose(probs["random_out"], probs["none"], atol=1e-6)  # the adapter is really applied
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        evaluate("tiny", adapter=tmp_path, test_sets=sets, out_dir=tmp_path / "b")


def test_cli_end_to_end(question_file, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--model",
            "tiny",
            "--data",
            str(question_file),
            "--data",
            "mmlu_medical",
            "--limit",
            "8",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "accuracy [95% CI]" in printed and "synth" in printed and "mmlu_medical" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        ".hils-kit",
        "metrics.json",
        "predictions_mmlu_medical.csv",
        "predictions_synth.csv",
    ]
    assert json.loads((out / "metrics.json").read_text())["synth"]["n"] == 8


def test_cli_unknown_data_set_exits_2(tmp_path, capsys):
    assert main(["evaluate", "--model", "tiny", "--data", "nosuchset", "-o", str(tmp_path / "x")]) == 2
    assert "unknown data set 'nosuchset'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
