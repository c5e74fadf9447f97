"""Order-exact LoRA SFT on the tiny model: the fed order, the loss mask, the run folder and the errors."""

from __future__ import annotations

import contextlib
import json

import pandas as pd
import pytest
import torch

from hils_kit.cli import main
from hils_kit.core.paths import MARKER, mark_folder
from hils_kit.data.loaders import save_questions
from hils_kit.models.loading import load_model
from hils_kit.order.audit import OrderAuditError
from hils_kit.train import training
from hils_kit.train.presets import PRESETS, make_config
from hils_kit.train.training import build_trainer, train
from tests.conftest import make_questions, seeded_peft_dropout

RUN_FILES = {
    "adapter",
    "train_config.json",
    "train_log.csv",
    "train_summary.json",
    "order_planned.csv",
    "order_fed.csv",
    MARKER,
}


def ordered_table() -> pd.DataFrame:
    """20 rows: ids in reverse, with q007 repeated, so the order is neither the id order nor unique."""
    reversed_ids = make_questions(19).iloc[::-1].reset_index(drop=True)
    return pd.concat(
        [reversed_ids.iloc[:5], reversed_ids[reversed_ids["id"] == "q007"], reversed_ids.iloc[5:]], ignore_index=True
    )


def tiny_config(**overrides):
    return make_config(
        "tiny", {"per_device_train_batch_size": 3, "gradient_accumulation_steps": 2, "bf16": False, **overrides}
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(ordered_table(), model="tiny", config=tiny_config(), out_dir=tmp_path_factory.mktemp("r") / "run")


def test_fed_order_equals_the_planned_order(run):
    table = ordered_table()
    fed = pd.read_csv(run.out_dir / "order_fed.csv")
    assert run.summary["audit_ok"] and run.summary["order_audit"]["n_fed"] == 20
    assert fed["id"].tolist() == table["id"].tolist()
    assert fed["row"].tolist() == list(range(20))  # the repeated q007 maps to both of its positions
    assert fed["step"].tolist() == [1] * 6 + [2] * 6 + [3] * 6 + [4] * 2  # batch 3 x accumulation 2
    assert fed["micro_batch"].tolist() == [k // 3 for k in range(20)]
    assert run.summary["steps"] == 4 and run.summary["micro_batches"] == 7


def test_run_folder_holds_every_file(run):
    assert {p.name for p in run.out_dir.iterdir()} == RUN_FILES
    assert (run.out_dir / "adapter" / "adapter_config.json").exists()
    assert [p.name for p in run.out_dir.parent.iterdir()] == ["run"]  # no temp folder left beside it
    config = json.loads((run.out_dir / "train_config.json").read_text())
    assert config["model"] == "tiny" and config["sampler"] == "SequentialSampler"
    assert config["config"]["per_device_train_batch_size"] == 3 and config["versions"]["trl"]
    log = pd.read_csv(run.out_dir / "train_log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4] and log["loss"].notna().all()
    assert log["learning_rate"].is_monotonic_decreasing  # linear decay, no warm-up
    summary = json.loads((run.out_dir / "train_summary.json").read_text())
    assert summary["tokens_seen"] > 0 and summary["tokens_per_second"] > 0 and summary["peak_memory_mb"] > 0
    assert summary["final_loss"] == pytest.approx(log["loss"].iloc[-1])
    planned = pd.read_csv(run.out_dir / "order_planned.csv")
    assert planned["id"].tolist() == ordered_table()["id"].tolist()


def test_lora_weights_change_and_the_saved_adapter_reloads(run):
    lora_b = {n: p for n, p in run.model.named_parameters() if "lora_B" in n}
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b.values())  # lora_B starts at zero
    reloaded, tok = load_model("tiny", adapter=run.out_dir / "adapter")
    ids = tok("Question: which nerve? Answer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(run.model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(load_model("tiny")[0](input_ids=ids).logits, reloaded(input_ids=ids).logits)


def test_completion_only_loss_masks_the_prompt(tmp_path):
    table = ordered_table()
    trainer = build_trainer(table, "tiny", tiny_config(), tmp_path)
    tok = trainer.processing_class
    for row, answer in zip(trainer.train_dataset, table["answer"]):
        letter = tok(f" {answer}", add_special_tokens=False)["input_ids"]
        trained = [label for label in row["labels"] if label != -100]
        assert trained == letter + [tok.eos_token_id]
        assert row["labels"][: -len(trained)] == [-100] * (len(row["labels"]) - len(trained))


def test_random_sampler_fails_the_audit(tmp_path):
    with pytest.raises(OrderAuditError, match="differs from the plan"):
        train(ordered_table(), model="tiny", config=tiny_config(), out_dir=tmp_path / "run", sampling="random")
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["audit_ok"] is False and summary["order_audit"]["n_fed"] == 20  # shuffled, nothing lost
    fed = pd.read_csv(tmp_path / "run" / "order_fed.csv")
    assert sorted(fed["id"]) == sorted(ordered_table()["id"]) and fed["id"].tolist() != ordered_table()["id"].tolist()


def test_truncation_is_an_error_naming_the_question(tmp_path):
    table = make_questions(6)
    table.loc[2, "question"] = "which nerve " * 200
    with pytest.raises(ValueError, match=r"1 question\(s\) would lose their answer .* q002"):
        train(table, model="tiny", config=make_config("tiny", {"max_length": 200}), out_dir=tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_failure_during_training_leaves_the_old_folder_untouched(monkeypatch, tmp_path):
    out = mark_folder(tmp_path / "run", "an earlier run")
    (out / "old.txt").write_text("previous run")

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(training.SFTTrainer, "train", boom)
    with pytest.raises(RuntimeError, match="boom"):
        train(make_questions(6), model="tiny", config=make_config("tiny"), out_dir=out)
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and sorted(p.name for p in out.iterdir()) == [
        MARKER,
        "old.txt",
    ]


def test_config_errors_and_coercion():
    with pytest.raises(ValueError, match="unknown preset 'gpt5'.*smollm2-cpu"):
        make_config("gpt5")
    with pytest.raises(ValueError, match="unknown training setting 'lr'.*learning_rate"):
        make_config("tiny", {"lr": 1e-4})
    with pytest.raises(ValueError, match="'lora_r' should be an integer, got str 'four'"):
        make_config(None, {"lora_r": "four"})
    config = make_config("mistral-7b", {"learning_rate": "2e-4", "bf16": "false", "num_train_epochs": "1"})
    assert (config.learning_rate, config.bf16, config.gradient_accumulation_steps) == (2e-4, False, 2)
    assert PRESETS["tinyllama-1.1b"]["model"] == "TinyLlama/TinyLlama-1.1B-Chat-v0.4"


def test_4bit_without_bitsandbytes_is_a_clear_error(monkeypatch, tmp_path):
    real = training.util.find_spec
    monkeypatch.setattr(training.util, "find_spec", lambda name: None if name == "bitsandbytes" else real(name))
    with pytest.raises(ValueError, match="needs the bitsandbytes package.*quantization=none"):
        train(
            make_questions(4),
            model="tiny",
            config=make_config("tiny", {"quantization": "4bit"}),
            out_dir=tmp_path / "run",
        )
    assert list(tmp_path.iterdir()) == []


def test_qlora_4bit_trains_through_the_cli_and_its_adapter_evaluates(tmp_path, capsys):
    save_questions(make_questions(8), tmp_path / "train.csv")
    out = tmp_path / "run"
    assert (
        main(["train", str(tmp_path / "train.csv"), "--model", "tiny", "--set", "quantization=4bit", "-o", str(out)])
        == 0
    )
    assert "order audit: fed order equals the plan (8/8 positions)" in capsys.readouterr().out
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["audit_ok"] and summary["precision"] == "4-bit NF4 weights, bf16 compute"
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == PRESETS["tiny"]["lora_r"]
    save_questions(make_questions(6, seed=5), tmp_path / "test.csv")
    assert (
        main(
            [
                "evaluate",
                "--model",
                "tiny",
                "--adapter",
                str(out / "adapter"),
                "--data",
                str(tmp_path / "test.csv"),
                "-o",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    assert (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.parametrize("preset", ["tinyllama-1.1b", "llama2-7b", "llama2-13b", "mistral-7b"])
def test_tiny_model_trains_under_each_paper_preset(preset, tmp_path):
    # the paper's settings (LR, batch, accumulation, QLoRA, rank/alpha/dropout, logging) run here before any GPU
    config = make_config(preset)
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    result = train(make_questions(per_step + 2), model="tiny", config=config, out_dir=tmp_path / "run")
    assert result.summary["audit_ok"] and result.summary["steps"] == 2
    assert result.summary["precision"] == "4-bit NF4 weights, bf16 compute"
    assert result.log["step"].tolist() == [2]  # logging every 10 steps; the last one is always logged
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())["config"]
    assert saved == config.to_dict() and saved["learning_rate"] == PRESETS[preset]["learning_rate"]


def test_bf16_autocast_keeps_the_order_and_the_loss_curve(run, tmp_path):
    bf16 = train(ordered_table(), model="tiny", config=tiny_config(bf16=True), out_dir=tmp_path / "run")
    assert bf16.summary["precision"] == "bf16 autocast" and run.summary["precision"] == "fp32"
    assert bf16.summary["audit_ok"]
    assert pd.read_csv(tmp_path / "run" / "order_fed.csv")["id"].tolist() == ordered_table()["id"].tolist()
    # the loss curve stays within 1 % of fp32's at every step (README: "Precision")
    assert bf16.log["loss"].to_numpy() == pytest.approx(run.log["loss"].to_numpy(), rel=0.01)


def test_training_fuses_lora_layers_and_learns_what_peft_s_layers_learn(monkeypatch, tmp_path):
    """``train`` runs inside :func:`hils_kit.train.fused_lora.fused_lora`; with peft's own LoRA modules instead
    (their dropout drawing the kit's masks), the same seed gives the same losses and adapter, and the model comes
    back with peft's modules."""
    config, real, swapped = tiny_config(lora_dropout=0.1), training.fused_lora, []

    @contextlib.contextmanager
    def counted(model):
        with real(model):
            swapped.append(sum(type(m).__name__ == "FusedLoraLinear" for m in model.modules()))
            yield model

    monkeypatch.setattr(training, "fused_lora", counted)
    fused = train(ordered_table(), model="tiny", config=config, out_dir=tmp_path / "fused")
    monkeypatch.setattr(training, "fused_lora", seeded_peft_dropout)
    stock = train(ordered_table(), model="tiny", config=config, out_dir=tmp_path / "stock")
    assert swapped == [7 * fused.model.config.num_hidden_layers]  # every LoRA module of the tiny model
    assert fused.summary["audit_ok"] and stock.summary["audit_ok"]
    assert fused.log["loss"].to_numpy() == pytest.approx(stock.log["loss"].to_numpy(), rel=1e-6)
    fused_weights, stock_weights = fused.model.state_dict(), stock.model.state_dict()
    lora = [name for name in fused_weights if "lora_" in name]
    # the same sums in another order: fp32 rounding, which Adam's normalised steps carry into lora_B's small values
    assert lora and all(torch.allclose(fused_weights[n], stock_weights[n], rtol=1e-5, atol=1e-6) for n in lora)
    assert [type(m) for m in fused.model.modules()] == [type(m) for m in stock.model.modules()]
    assert any(isinstance(m, torch.nn.Dropout) for m in fused.model.modules())


def test_padding_free_rows_train_as_the_padded_batches_would(run, tmp_path):
    """Packed questions attend only to themselves: the same losses and gradient norms as padded batches, the
    same audited order, and no padding computed (the run's questions have different lengths)."""
    no_dropout = {"lora_dropout": 0.0}
    packed = train(ordered_table(), model="tiny", config=tiny_config(**no_dropout), out_dir=tmp_path / "packed")
    padded = train(
        ordered_table(),
        model="tiny",
        config=tiny_config(padding_free=False, **no_dropout),
        out_dir=tmp_path / "padded",
    )
    assert (packed.summary["batching"], padded.summary["batching"], run.summary["batching"]) == (
        "padding-free",
        "padded",
        "padding-free",
    )
    for result in (packed, padded):
        assert result.summary["audit_ok"]
        assert pd.read_csv(result.out_dir / "order_fed.csv")["id"].tolist() == ordered_table()["id"].tolist()
    assert packed.summary["tokens_seen"] == padded.summary["tokens_seen"]
    for column in ("loss", "grad_norm"):
        assert packed.log[column].to_numpy() == pytest.approx(padded.log[column].to_numpy(), rel=1e-4)


def test_cli_trains_in_file_order(tmp_path, capsys):
    table = make_questions(8).iloc[::-1]
    save_questions(table, tmp_path / "ordered.csv")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(tmp_path / "ordered.csv"),
                "--model",
                "tiny",
                "--set",
                "per_device_train_batch_size=3",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "order audit: fed order equals the plan (8/8 positions)" in printed and "tokens/s" in printed
    assert pd.read_csv(out / "order_fed.csv")["id"].tolist() == table["id"].tolist()
    assert main(["train", str(tmp_path / "ordered.csv"), "--model", "tiny", "--set", "bogus=1", "-o", str(out)]) == 2
    assert "unknown training setting 'bogus'" in capsys.readouterr().err


def test_learning_curve_probe_scores_held_out_questions_during_training(tmp_path):
    from hils_kit.core.layout import CURVE_FILE
    from hils_kit.train.probe import probe_callbacks, save_curve

    probe = probe_callbacks({"held_out": make_questions(10, seed=3)}, 6, every=2, max_share=99)
    result = train(
        make_questions(16), model="tiny", config=make_config("tiny"), out_dir=tmp_path / "run", callbacks=probe
    )
    curve = save_curve(probe, tmp_path / "run")
    assert curve["step"].tolist() == [0, 2, 4] and curve["examples_seen"].tolist() == [0, 8, 16]
    assert (curve["gold_logprob"] < 0).all() and curve["p_gold"].between(0, 1).all()
    assert (tmp_path / "run" / CURVE_FILE).is_file() and result.summary["audit_ok"]  # the order is unchanged
    assert probe_callbacks({"held_out": make_questions(4)}, 0) == []
