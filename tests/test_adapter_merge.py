"""merged_adapter(): scoring a float32 LoRA model merged gives the unmerged scores, and the weights come back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from hils_kit.models.adapter_merge import mergeable, merged_adapter
from hils_kit.score.evaluation import evaluate
from hils_kit.score.scoring import letter_probabilities
from tests.conftest import make_questions
from tests.conftest import tiny_lora_model as lora_model


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_merged_scoring_equals_unmerged_and_the_weights_come_back():
    model, tok = lora_model()
    table = make_questions(16)
    before = weights(model)
    unmerged = letter_probabilities(model, tok, table, precision="fp32")
    assert mergeable(model)
    with merged_adapter(model):
        layers = [m for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
        assert layers and all(layer.merged for layer in layers)
        merged = letter_probabilities(model, tok, table, precision="fp32")
    assert not any(layer.merged for layer in layers)
    np.testing.assert_allclose(merged, unmerged, atol=1e-5)
    assert (merged.argmax(axis=1) == unmerged.argmax(axis=1)).all()
    after = weights(model)
    assert before.keys() == after.keys()
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=1e-6, atol=1e-7, msg=name)
    changed = [n for n in before if not torch.equal(after[n], before[n])]
    assert all("base_layer" in n for n in changed)  # only the merged base weights carry rounding


def test_merging_really_changes_the_base_weights_inside_the_block():
    model, _ = lora_model()
    name, parameter = next((n, p) for n, p in model.named_parameters() if n.endswith("q_proj.base_layer.weight"))
    before = parameter.detach().clone()
    with merged_adapter(model):
        assert not torch.allclose(parameter, before)
    torch.testing.assert_close(parameter, before, rtol=1e-6, atol=1e-7, msg=name)


def test_bf16_and_plain_models_are_scored_as_they_are():
    from hils_kit.models.loading import load_model

    plain, _ = load_model("tiny")
    assert not mergeable(plain)
    model, _ = lora_model(dtype=torch.bfloat16)
    assert not mergeable(model)  # W + s·AB in bfloat16 would round part of the update away
    before = weights(model)
    with merged_adapter(model):
        assert not any(getattr(m, "merged", False) for m in model.modules())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_evaluate_scores_merged_and_hands_the_model_back_unmerged(tmp_path):
    model, tok = lora_model()
    table = make_questions(12)
    unmerged = letter_probabilities(model, tok, table, precision="fp32")
    metrics = evaluate((model, tok), test_sets={"synth": table}, out_dir=tmp_path, precision="fp32")
    scored = pd.read_csv(tmp_path / "predictions_synth.csv")[["p_A", "p_B", "p_C", "p_D"]].to_numpy()
    np.testing.assert_allclose(scored, unmerged, atol=1e-5)
    assert metrics["synth"]["n"] == 12 and metrics["synth"]["precision"] == "fp32"
    assert not any(getattr(m, "merged", False) for m in model.modules())
