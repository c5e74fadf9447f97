"""One precision rule for training, scoring and labelling: an explicit setting, then HILS_PRECISION, then auto.

The suite runs under any HILS_PRECISION (fp32, bf16, auto): tests that compare with an fp32 reference pin fp32,
tests of the bf16 path force bf16, and the tests here check that the default really follows the environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hils_kit.cli import main
from hils_kit.core import precision_timing
from hils_kit.core.precision import ENV_VAR, precision_record, resolve_precision, use_bf16, with_precision
from hils_kit.core.precision_timing import SHAPES, linear_shapes
from hils_kit.data.loaders import save_questions
from hils_kit.models.shapes import model_shapes
from hils_kit.score.evaluation import evaluate
from hils_kit.score.scoring import letter_probabilities
from hils_kit.study.config import study_from_dict
from hils_kit.train.presets import make_config
from hils_kit.train.training import sft_config
from tests.conftest import make_questions, tiny_lora_model

GFLOPS = {"fp32": {"fp32": 250.0, "bf16": 120.0}, "bf16": {"fp32": 160.0, "bf16": 360.0}}  # by the faster one
BF16_PROB_TOLERANCE = 0.02  # as tests/test_scoring.py: bf16 autocast against fp32, largest probability difference


@pytest.mark.parametrize(
    "setting, env, expected",
    [
        ("fp32", "bf16", "fp32"),  # an explicit setting beats the environment
        ("bf16", "fp32", "bf16"),
        (False, "bf16", "fp32"),  # --set bf16=false
        (True, "fp32", "bf16"),
        (None, "bf16", "bf16"),  # not set: the environment
        (None, "fp32", "fp32"),
        ("auto", "fp32", "fp32"),  # auto defers to the environment like None
        (None, " BF16 ", "bf16"),
    ],
)
def test_explicit_setting_then_environment(monkeypatch, setting, env, expected):
    monkeypatch.setenv(ENV_VAR, env)
    assert resolve_precision(setting) == expected
    assert use_bf16(setting) == (expected == "bf16")


@pytest.mark.parametrize("env", [None, "", "auto"])
@pytest.mark.parametrize("faster", ["fp32", "bf16"])
def test_auto_on_a_cpu_is_the_faster_as_measured_not_the_flag(monkeypatch, env, faster):
    """A CPU that reports avx512_bf16 may still run bf16 slower than fp32: auto follows the timing."""
    monkeypatch.delenv(ENV_VAR, raising=False) if env is None else monkeypatch.setenv(ENV_VAR, env)
    monkeypatch.setattr(
        precision_timing, "measured_speeds", lambda **_: {"faster": faster, "gflops": GFLOPS[faster], "shapes": SHAPES}
    )
    assert use_bf16(None, "cpu") == (faster == "bf16")
    assert precision_record(None) == {
        "precision": faster,
        "decided_by": "measured",
        "gflops": GFLOPS[faster],
        "shapes": SHAPES,
    }
    assert precision_record("fp32") == {"precision": "fp32", "decided_by": "setting"}
    monkeypatch.setenv(ENV_VAR, "bf16")
    assert precision_record(None) == {"precision": "bf16", "decided_by": ENV_VAR}


def test_the_timing_is_cached_per_machine_and_measured_again_when_it_changes(monkeypatch, tmp_path):
    monkeypatch.setenv("HILS_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(
        precision_timing, "time_precisions", lambda **_: calls.append(1) or {"fp32": 200.0, "bf16": 120.0}
    )
    first = precision_timing.measured_speeds()
    assert first["faster"] == "fp32" and first["gflops"] == {"fp32": 200.0, "bf16": 120.0} and len(calls) == 1
    assert precision_timing.measured_speeds()["measured"] == first["measured"] and len(calls) == 1  # cached
    machine = precision_timing.machine_key()
    monkeypatch.setattr(precision_timing, "machine_key", lambda device: {**machine, "torch": "another"})
    precision_timing.measured_speeds()
    assert len(calls) == 2  # another torch: measured again, in a file of its own
    Path(first["cache"]).write_text("{not json")
    monkeypatch.setattr(precision_timing, "machine_key", lambda device: machine)
    assert precision_timing.measured_speeds()["faster"] == "fp32" and len(calls) == 3  # damaged: measured again
    assert json.loads(Path(first["cache"]).read_text())["machine"] == machine
    monkeypatch.setattr(precision_timing, "METHOD", "an earlier way of timing bf16")
    precision_timing.measured_speeds()
    assert len(calls) == 4  # timed another way before: measured again


@pytest.mark.parametrize("faster", ["fp32", "bf16"])
def test_auto_on_a_gpu_is_measured_there_too(monkeypatch, tmp_path, faster):
    """On an H200 SmolLM2-135M trained 1.47x faster in fp32 than in bf16: a GPU's bf16 is measured, not assumed, on a
    layer's training step (method and GPU in the cache key); a GPU without bf16 computes in fp32."""
    from hils_kit.core import precision

    monkeypatch.setenv("HILS_CACHE", str(tmp_path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": True)
    monkeypatch.setattr(precision_timing, "machine_key", lambda device: {"gpu": "NVIDIA H200", "device": device})
    timed = []

    def time_precisions(shapes, device, **_):
        timed.append(device)
        return {"fp32": 300.0, "bf16": 200.0} if faster == "fp32" else {"fp32": 300.0, "bf16": 900.0}

    monkeypatch.setattr(precision_timing, "time_precisions", time_precisions)
    assert use_bf16(None, "cuda:0") == (faster == "bf16") and timed == ["cuda"]
    record = precision_record(None, "cuda")
    assert record["precision"] == faster and record["decided_by"] == "measured" and timed == ["cuda"]  # cached
    assert precision_timing.measured_speeds(device="cuda")["method"] == precision_timing.GPU_METHOD
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": False)
    assert precision_record(None, "cuda") == {"precision": "fp32", "decided_by": "gpu"} and timed == ["cuda"]


def test_a_layer_step_is_timed_in_both_precisions_with_the_kit_s_weights():
    block = precision_timing.layer_block(linear_shapes(128, 256), bf16=True)  # on a CPU: fp32 weights, cast per call
    assert block.dtype == torch.float32 and not any(p.requires_grad for p in block.parameters())
    assert len(block.layers) == 1 and block.config.num_attention_heads == 2  # heads of 64
    speeds = precision_timing.time_layer_steps(1, 0.01, linear_shapes(128, 256), "cpu")
    assert set(speeds) == {"fp32", "bf16"} and all(v > 0 for v in speeds.values())


def test_both_precisions_are_timed_on_the_same_shapes():
    speeds = precision_timing.time_precisions(rounds=1, seconds=0.01)
    assert set(speeds) == {"fp32", "bf16"} and all(v > 0 for v in speeds.values())
    tiny = precision_timing.time_precisions(rounds=1, seconds=0.01, shapes=model_shapes("tiny"))
    assert all(v > 0 for v in tiny.values())  # a 32-wide model's products, far below a GFLOP/s, still measured


def test_auto_is_measured_on_the_shapes_of_the_model_at_hand(monkeypatch, tmp_path):
    """Casting to bf16 pays for a large product, not for a small one: a model is timed on its own linear layers
    (the largest model's when several share a decision), and each set of shapes is cached on its own."""
    monkeypatch.setenv("HILS_CACHE", str(tmp_path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    timed = []

    def time_precisions(shapes, **_):
        timed.append(shapes)
        return {"fp32": 100.0, "bf16": 50.0} if shapes[0][1] < 100 else {"fp32": 100.0, "bf16": 300.0}

    monkeypatch.setattr(precision_timing, "time_precisions", time_precisions)
    tiny, _ = tiny_lora_model()  # a LoRA model, as training and scoring see it
    assert model_shapes("tiny") == model_shapes(tiny) == model_shapes(tiny.config) == linear_shapes(32, 64)
    assert model_shapes() == model_shapes("some-org/not-here") == SHAPES  # unknown: SmolLM2-135M's
    assert model_shapes("tiny", {"hidden_size": 576, "intermediate_size": 1536}) == SHAPES  # the largest
    assert model_shapes({"n_embd": 64}) == linear_shapes(64, 256)  # GPT-2's names; 4x wide when unsaid
    assert resolve_precision(None, "cpu", model_shapes("tiny")) == "fp32"
    assert resolve_precision(None, "cpu", SHAPES) == "bf16"
    assert resolve_precision(None, "cpu", model_shapes("tiny")) == "fp32" and len(timed) == 2  # both cached
    assert precision_record(None, "cpu", model_shapes("tiny"))["shapes"] == [list(s) for s in linear_shapes(32, 64)]
    from hils_kit.study.cells import study_precision

    tiny_study = {"models": ["tiny"], "preset": "tiny", "difficulty_models": ["tiny"]}
    assert study_precision(study_from_dict(tiny_study))["precision"] == "fp32"
    labeller = tmp_path / "smollm2-sized"  # a local model folder: its config.json is all that is read
    labeller.mkdir()
    (labeller / "config.json").write_text(json.dumps({"hidden_size": 576, "intermediate_size": 1536}))
    assert model_shapes(str(labeller)) == SHAPES
    assert study_precision(study_from_dict({**tiny_study, "difficulty_models": [str(labeller)]}))["precision"] == "bf16"


def test_a_bad_value_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "fp16")
    with pytest.raises(ValueError, match=r"HILS_PRECISION='fp16': use one of auto, fp32, bf16"):
        use_bf16()
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ValueError, match=r"precision 'half': use one of auto, fp32, bf16"):
        use_bf16("half")


def test_precision_becomes_the_training_setting_bf16():
    assert with_precision({"lora_r": 8}, "bf16") == {"lora_r": 8, "bf16": True}
    assert with_precision({"bf16": "true"}, "auto") == {"bf16": "true"}
    with pytest.raises(ValueError, match="give one of them"):
        with_precision({"bf16": "true"}, "fp32")


@pytest.mark.parametrize("env", ["fp32", "bf16"])
def test_training_follows_the_environment_unless_set(monkeypatch, tmp_path, env):
    monkeypatch.setenv(ENV_VAR, env)
    assert sft_config(make_config("tiny"), tmp_path, "cpu").bf16 == (env == "bf16")
    pinned = make_config("tiny", {"bf16": env != "bf16"})
    assert sft_config(pinned, tmp_path, "cpu").bf16 == (env != "bf16")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_on_a_gpu_the_precision_is_the_weights_dtype_and_every_loader_asks_for_it(monkeypatch, tmp_path, precision):
    """On a GPU fp32 must load float32 weights (bf16 weights under "fp32" would be bf16 work recorded as fp32); the
    trainer, the evaluator and the difficulty labeller pass their precision to the loader. (tests/test_gpu.py
    checks the dtypes on a real GPU.)"""
    from hils_kit.labels import difficulty
    from hils_kit.models import loading
    from hils_kit.train import training

    assert loading.weights_dtype("cuda", precision) == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert loading.weights_dtype("cpu", precision) == torch.float32  # a CPU casts the products, not the weights
    asked = []

    def fake_load(name, **kwargs):
        asked.append(kwargs["precision"])
        raise OSError(f"{name}: not loaded in this test")

    for module in (training, loading, difficulty):
        monkeypatch.setattr(module, "load_model", fake_load)
    config = make_config("tiny", {"bf16": precision == "bf16"})
    with pytest.raises(OSError, match="not loaded in this test"):
        training.build_trainer(make_questions(4), "tiny", config, tmp_path)
    with pytest.raises(OSError, match="not loaded in this test"):
        evaluate("tiny", test_sets={"x": make_questions(4)}, out_dir=tmp_path / "eval", precision=precision)
    with pytest.raises(ValueError, match="cannot load model 'tiny'"):
        difficulty.llm_difficulty(make_questions(4), ["tiny"], precision=precision)
    assert asked == [precision == "bf16", precision, precision]


def test_a_model_with_bf16_weights_is_not_scored_as_fp32():
    """fp32 over bf16 weights would be bf16 work recorded as fp32 (what a GPU did before 2026-12-04)."""
    from hils_kit.models.loading import load_model

    model, tok = load_model("tiny", dtype=torch.bfloat16, device="cpu")
    table = make_questions(4)
    with pytest.raises(ValueError, match=r"weights are bfloat16.*precision='fp32'.*precision='bf16'"):
        letter_probabilities(model, tok, table, precision="fp32")
    assert letter_probabilities(model, tok, table, precision="bf16").shape == (4, 4)


def test_default_scoring_is_what_the_environment_asks(tiny_model):
    """Under HILS_PRECISION=bf16 this scores in bf16 (emulated where not native), under fp32 in fp32."""
    model, tok = tiny_model
    table = make_questions(12)
    expected = resolve_precision(None, "cpu", model_shapes(model))  # auto: measured on the tiny model's shapes
    default = letter_probabilities(model, tok, table)
    fp32 = letter_probabilities(model, tok, table, precision="fp32")
    bf16 = letter_probabilities(model, tok, table, precision="bf16")
    assert 0 < np.nanmax(np.abs(bf16 - fp32)) <= BF16_PROB_TOLERANCE  # two precisions, really different
    assert np.array_equal(default, bf16 if expected == "bf16" else fp32, equal_nan=True)


def test_evaluate_records_the_precision_and_merges_in_both(tmp_path, monkeypatch):
    """The decision: float32 weights are merged under bf16 autocast too (the sum is taken in float32)."""
    model, tok = tiny_lora_model()
    table = make_questions(12)
    merges = []
    original = model.merge_adapter
    monkeypatch.setattr(model, "merge_adapter", lambda *a, **k: (merges.append(1), original(*a, **k))[1])
    for precision in ("fp32", "bf16"):
        metrics = evaluate((model, tok), test_sets={"synth": table}, out_dir=tmp_path / precision, precision=precision)
        assert metrics["synth"]["precision"] == {"fp32": "fp32", "bf16": "bf16 autocast"}[precision]
    assert len(merges) == 2
    default = evaluate((model, tok), test_sets={"synth": table}, out_dir=tmp_path / "default")
    expected = resolve_precision(None, "cpu", model_shapes(model))
    assert default["synth"]["precision"] == {"fp32": "fp32", "bf16": "bf16 autocast"}[expected]


def test_merged_bf16_scoring_keeps_the_adapter_update_as_unmerged_does():
    """Why merging under bf16 is allowed: both paths see the whole update, and agree within bf16's tolerance."""
    from hils_kit.models.adapter_merge import merged_adapter

    model, tok = tiny_lora_model()
    with torch.no_grad():  # a small update, 1/10 of the random adapter's, nearer a trained one
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(0.1)
    table = make_questions(16)
    reference = letter_probabilities(model, tok, table, precision="fp32")
    with model.disable_adapter():
        update = reference - letter_probabilities(model, tok, table, precision="fp32")
        base = letter_probabilities(model, tok, table, precision="bf16")
    unmerged = letter_probabilities(model, tok, table, precision="bf16")
    with merged_adapter(model):
        merged = letter_probabilities(model, tok, table, precision="bf16")
    assert np.nanmax(np.abs(update)) > 5 * np.nanmax(np.abs(unmerged - reference))  # the update is measurable
    for scores in (unmerged, merged):
        kept = np.nansum((scores - base) * update) / np.nansum(update * update)
        assert 0.9 < kept < 1.1
        assert np.nanmax(np.abs(scores - reference)) <= BF16_PROB_TOLERANCE
    assert np.nanmax(np.abs(merged - unmerged)) <= BF16_PROB_TOLERANCE


@pytest.mark.parametrize(
    "study, env, expected",
    [("fp32", None, "fp32"), ("bf16", "fp32", "bf16"), ("auto", "fp32", "fp32"), ("auto", "bf16", "bf16")],
)
def test_study_precision_reaches_every_notebook(monkeypatch, study, env, expected):
    """A study's precision, else the driver's HILS_PRECISION, travels in the parameters (to Ray and SLURM nodes)."""
    from hils_kit.study.cells import cell_parameters, expand_cells, prepare_parameters

    monkeypatch.delenv(ENV_VAR, raising=False) if env is None else monkeypatch.setenv(ENV_VAR, env)
    config = study_from_dict({"models": ["tiny"], "preset": "tiny", "precision": study})
    cell = expand_cells(config)[0]
    assert prepare_parameters(config, "p").precision == expected
    assert cell_parameters(config, cell, "p", "o").precision == expected


@pytest.mark.parametrize("faster", ["fp32", "bf16"])
def test_an_unpinned_study_decides_once_on_the_driver_by_measurement(monkeypatch, faster):
    """Every notebook gets the precision measured faster on the driver, so nodes of other kinds (Ray, SLURM) cannot
    train strategies in different precisions; the manifest records the figures. A 4-bit study leaves it to each GPU."""
    from hils_kit.study.cells import cell_parameters, expand_cells, prepare_parameters, study_precision

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(
        precision_timing, "measured_speeds", lambda **_: {"faster": faster, "gflops": GFLOPS[faster], "shapes": SHAPES}
    )
    config = study_from_dict({"models": ["tiny"], "preset": "tiny"})
    assert cell_parameters(config, expand_cells(config)[0], "p", "o").precision == faster
    assert prepare_parameters(config, "p").precision == faster
    assert study_precision(config) == {
        "precision": faster,
        "decided_by": "measured",
        "gflops": GFLOPS[faster],
        "shapes": SHAPES,
    }
    qlora = study_from_dict({"models": ["tiny"], "preset": "tiny", "train_overrides": {"quantization": "4bit"}})
    assert study_precision(qlora)["precision"] == "auto"


def test_a_study_on_a_gpu_machine_decides_on_its_gpu(monkeypatch):
    """A local study on a machine with a GPU trains there: the decision is measured on the GPU, not its CPU."""
    from hils_kit.core import precision
    from hils_kit.study.cells import study_precision

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": True)
    asked = []
    monkeypatch.setattr(
        precision_timing,
        "measured_speeds",
        lambda shapes, device: asked.append(device) or {"faster": "fp32", "gflops": GFLOPS["fp32"], "shapes": SHAPES},
    )
    assert study_precision(study_from_dict({"models": ["tiny"], "preset": "tiny"}))["precision"] == "fp32"
    assert asked == ["cuda"]


def test_a_study_s_training_setting_bf16_beats_the_environment(monkeypatch, tmp_path):
    from hils_kit.stages.cell import train_config
    from hils_kit.study.cells import cell_parameters, expand_cells

    monkeypatch.setenv(ENV_VAR, "bf16")
    config = study_from_dict({"models": ["tiny"], "preset": "tiny", "train_overrides": {"bf16": False}})
    params = cell_parameters(config, expand_cells(config)[0], "p", "o")
    assert params.precision == "fp32"
    assert sft_config(train_config(params), tmp_path, "cpu").bf16 is False  # as notebook 03 builds it


def test_study_precision_is_checked():
    with pytest.raises(ValueError, match=r"'precision' 'half' should be one of auto, fp32, bf16"):
        study_from_dict({"models": ["tiny"], "preset": "tiny", "precision": "half"})
    with pytest.raises(ValueError, match=r"'precision' bf16 and 'train.bf16': give one of them"):
        study_from_dict({"models": ["tiny"], "preset": "tiny", "precision": "bf16", "train_overrides": {"bf16": False}})


def test_train_refuses_two_precisions(tmp_path, capsys):
    ordered = save_questions(make_questions(4), tmp_path / "ordered.csv")
    run = tmp_path / "run"
    rc = main(["train", str(ordered), "--model", "tiny", "--precision", "fp32", "--set", "bf16=true", "-o", str(run)])
    assert (
        rc == 2 and "precision 'fp32' and the training setting bf16=true: give one of them" in capsys.readouterr().err
    )
    assert not run.exists()
