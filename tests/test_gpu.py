"""On a CUDA GPU (skipped without one): fp32 and bf16 mean there what the kit records, in training and scoring.

Self-contained (``python -m pytest --noconftest tests/test_gpu.py`` runs it on a GPU machine that lacks the notebook
packages). On a GPU, bf16 loads the weights in bf16 and fp32 in float32 (:func:`hils_kit.models.loading.weights_dtype`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def questions(n: int = 16) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"q{i:03d}" for i in range(n)],
            "question": [f"Q{i:03d}: which option is number {i % 4 + 1}?" for i in range(n)],
            "options": [[f"option {k + 1} of {i}" for k in range(4)] for i in range(n)],
            "answer": ["ABCD"[i % 4] for i in range(n)],
            "category": [("Anatomy", "Surgery")[i % 2] for i in range(n)],
            "dataset": "synthetic",
        }
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_the_gpu_computes_in_the_precision_it_records(tmp_path, precision):
    from hils_kit.train.presets import make_config
    from hils_kit.train.training import build_trainer, train

    config = make_config("tiny", {"bf16": precision == "bf16"})
    trainer = build_trainer(questions(), "tiny", config, tmp_path / "probe", "cuda")
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad and p.is_floating_point()]
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    assert {p.dtype for p in frozen} == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert {p.dtype for p in trainable} == {torch.float32}  # LoRA's own weights stay fp32 in both
    assert trainer.args.bf16 == (precision == "bf16") and trainer.model.device.type == "cuda"
    del trainer

    summary = train(questions(), model="tiny", config=config, out_dir=tmp_path / "run", device="cuda").summary
    assert summary["precision"] == ("bf16 autocast" if precision == "bf16" else "fp32")
    assert summary["audit_ok"] and np.isfinite(summary["final_loss"])
    assert summary["device"].startswith("cuda")


def test_scoring_on_the_gpu_matches_the_cpu_in_fp32_and_is_near_it_in_bf16():
    from hils_kit.models.loading import load_model
    from hils_kit.score.scoring import letter_probabilities

    table = questions(24)
    cpu_model, tok = load_model("tiny", device="cpu", precision="fp32")
    reference = letter_probabilities(cpu_model, tok, table, precision="fp32")
    gpu_fp32, _ = load_model("tiny", device="cuda", precision="fp32")
    gpu_bf16, _ = load_model("tiny", device="cuda", precision="bf16")
    assert gpu_fp32.dtype == torch.float32 and gpu_bf16.dtype == torch.bfloat16
    np.testing.assert_allclose(letter_probabilities(gpu_fp32, tok, table, precision="fp32"), reference, atol=1e-4)
    np.testing.assert_allclose(letter_probabilities(gpu_bf16, tok, table, precision="bf16"), reference, atol=0.05)
