"""Training settings: the :class:`TrainConfig` dataclass and named presets (the paper's models and CPU sizes).

A preset is a model plus the settings that differ from the defaults; overrides (from ``--set key=value``,
a YAML params file or papermill) are validated against the dataclass and coerced to each field's type, so
YAML's ``1e-4`` (a string to PyYAML) is accepted as a float.

>>> config = make_config("llama2-7b", {"learning_rate": "1e-4"})
>>> config.learning_rate, config.per_device_train_batch_size, config.quantization
(0.0001, 4, '4bit')
>>> PRESETS["llama2-7b"]["model"]
'meta-llama/Llama-2-7b-chat-hf'
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field

from hils_kit.core.params import convert
from hils_kit.data.prompts import TEMPLATES

QUANTIZATIONS = ("none", "4bit")


@dataclass
class TrainConfig:
    """One SFT run's settings. Defaults follow the paper (Yang et al. 2024, App. B) where it gives them."""

    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "questions per forward micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    num_train_epochs: int = field(
        default=1,
        metadata={"help": "passes over the ordered set; the paper uses 1, more epochs repeat the whole order"},
    )
    max_length: int = field(
        default=512,
        metadata={
            "help": "tokens per example; a question whose answer would be cut off is an error, never a silent drop"
        },
    )
    lr_scheduler_type: str = field(default="linear", metadata={"help": "learning-rate schedule (transformers name)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA branch"})
    lora_target: str = field(
        default="all-linear",
        metadata={
            "help": "modules that get LoRA: 'all-linear' (every linear layer except the output head) "
            "or comma-separated names such as 'q_proj,v_proj'"
        },
    )
    quantization: str = field(
        default="none",
        metadata={
            "help": "'none' or '4bit' (QLoRA: NF4, double quantization, bf16 compute; CUDA or CPU, needs bitsandbytes)"
        },
    )
    optim: str = field(
        default="adamw_torch",
        metadata={"help": "optimizer (transformers name, e.g. 'paged_adamw_8bit' as in the paper's code)"},
    )
    seed: int = field(default=42, metadata={"help": "seed for LoRA init, dropout and everything else"})
    template: str = field(default="paper", metadata={"help": f"prompt template: {', '.join(TEMPLATES)}"})
    logging_steps: int = field(default=1, metadata={"help": "log loss and learning rate every N steps"})
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "true: bf16 autocast (mixed precision), false: fp32; null: HILS_PRECISION, else bf16 where "
            "the device computes it natively (hils_kit.core.precision)"
        },
    )
    activation_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in the backward pass (less memory, slower); for large models on GPU"},
    )
    padding_free: bool = field(
        default=True,
        metadata={
            "help": "feed a micro-batch as one row, its questions back to back (positions restart per question, "
            "attention stays inside it): the padded batch's loss without computing padding; models whose "
            "attention cannot keep packed questions apart get padded batches"
        },
    )

    def __post_init__(self):
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization '{self.quantization}': use one of {', '.join(QUANTIZATIONS)}")
        if self.template not in TEMPLATES:
            raise ValueError(f"template '{self.template}': use one of {', '.join(TEMPLATES)}")
        for name in (
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "num_train_epochs",
            "max_length",
            "lora_r",
            "logging_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


_PAPER = {"quantization": "4bit", "lora_r": 16, "lora_alpha": 64, "lora_dropout": 0.1, "logging_steps": 10}

PRESETS: dict[str, dict] = {
    # the paper's four models with their Table 2 learning rate, batch size and gradient accumulation (QLoRA)
    "tinyllama-1.1b": {
        "model": "TinyLlama/TinyLlama-1.1B-Chat-v0.4",
        **_PAPER,
        "learning_rate": 5e-4,
        "per_device_train_batch_size": 16,
        "gradient_accumulation_steps": 1,
    },
    "llama2-7b": {
        "model": "meta-llama/Llama-2-7b-chat-hf",
        **_PAPER,
        "learning_rate": 5e-5,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
    },
    "llama2-13b": {
        "model": "meta-llama/Llama-2-13b-chat-hf",
        **_PAPER,
        "learning_rate": 1e-4,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
    },
    "mistral-7b": {
        "model": "mistralai/Mistral-7B-v0.1",
        **_PAPER,
        "learning_rate": 1e-4,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
    },
    # the embedded SmolLM2-135M on a CPU: plain LoRA (bf16 autocast where native, else fp32), a rate that
    # moves it within ~100 questions
    "smollm2-cpu": {
        "model": "smollm2",
        "learning_rate": 3e-4,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
    },
    # the tiny random Llama of the tests
    "tiny": {
        "model": "tiny",
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
    },
}


def preset_model(preset: str) -> str:
    """The model a preset was made for."""
    return _preset(preset)["model"]


def preset_for_model(model: str) -> str | None:
    """The first preset made for ``model``, or ``None``."""
    return next((name for name, p in PRESETS.items() if p["model"].lower() == model.lower()), None)


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (one of {', '.join(PRESETS)})")
    return PRESETS[name]


def make_config(preset: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a preset's settings plus ``overrides``, validated and type-coerced.

    Raises ``ValueError`` for an unknown preset, an unknown key (listing the valid ones) or a bad value.
    """
    hints = typing.get_type_hints(TrainConfig)
    values = {k: v for k, v in _preset(preset).items() if k != "model"} if preset else {}
    for key, value in (overrides or {}).items():
        if key not in hints:
            raise ValueError(f"unknown training setting '{key}' (valid: {', '.join(hints)})")
        try:
            values[key] = convert(value, hints[key], key)
        except TypeError as err:
            raise ValueError(f"training setting {err}") from None
    return TrainConfig(**values)


def describe_settings() -> str:
    """One line per :class:`TrainConfig` field: name, default and help (for ``--help`` texts)."""
    return "\n".join(f"{f.name} (default {f.default!r}): {f.metadata['help']}" for f in dataclasses.fields(TrainConfig))
