"""LoRA / QLoRA supervised fine-tuning that feeds the questions in exactly the table's row order.

The table's rows become a prompt/completion dataset (``format_prompt`` / ``format_completion``), trained
with TRL's ``SFTTrainer``: completion-only loss (the answer letter and EOS), no shuffling, a sequential
sampler, and no packing across questions: a micro-batch is one padding-free row of whole questions, each
attending only to itself (:func:`packs_rows`), or a padded batch. An
:class:`~hils_kit.order.audit.OrderRecorder` records what the model was really fed; a run whose fed order
differs from the plan raises :class:`~hils_kit.order.audit.OrderAuditError`. On CPU, each LoRA layer trains as one
autograd function with its dropout drawn from a seed (:mod:`hils_kit.train.fused_lora`: its own draws, peft's
gradients for the same masks), each question of a padding-free row is attended on its own
(:mod:`hils_kit.train.packed_attention`: the same attention), and under bf16 autocast the frozen weights are cast to
bf16 once per run instead of at every step (:mod:`hils_kit.core.bf16_weights`: the same results).

A run folder holds ``adapter/``, ``train_config.json``, ``train_log.csv``, ``train_summary.json``,
``order_planned.csv`` and ``order_fed.csv``; it is written atomically.

>>> from hils_kit.data.loaders import load_questions
>>> table = load_questions("medmcqa").head(32)
>>> result = train(table, model="smollm2", out_dir="/tmp/run32")        # doctest: +SKIP
>>> result.summary["audit_ok"], round(result.summary["final_loss"], 2)  # doctest: +SKIP
(True, 0.67)
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from importlib import util
from pathlib import Path

import pandas as pd
import torch
import transformers
from transformers import PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

from hils_kit.core.bf16_weights import bf16_linear_weights
from hils_kit.core.layout import TrainFiles
from hils_kit.core.paths import RUNS_DIR, atomic_path, output_folder
from hils_kit.core.precision import precision_record, use_bf16
from hils_kit.core.progress import headless, in_notebook
from hils_kit.core.provenance import git_revision, library_versions, torch_threads
from hils_kit.data.prompts import format_completion, format_prompt
from hils_kit.models.loading import load_model, model_path
from hils_kit.models.shapes import model_shapes
from hils_kit.order.audit import OrderAuditError, OrderRecorder, audit, map_to_rows
from hils_kit.train.fused_lora import fused_lora
from hils_kit.train.packed_attention import packed_attention
from hils_kit.train.peak_memory import peak_memory_mb, reset_peak_memory
from hils_kit.train.presets import TrainConfig, make_config, preset_for_model

# a padding-free row's bounds, which let attention take its questions one by one
# (:mod:`hils_kit.train.packed_attention`, flash attention on a GPU)
ROW_BOUNDS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", *ROW_BOUNDS)  # what the loss passes to the model
SAMPLINGS = ("sequential", "random")  # "random" is the control that shows the audit catches shuffling

# model types whose attention masks transformers builds in masking_utils, which reads the position ids of a
# padding-free row and keeps its questions apart (checked against padded batches in tests/test_training.py)
PACKED_MODEL_TYPES = frozenset(
    {"llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3", "gemma3_text", "qwen2", "qwen3", "phi3", "olmo2"}
)

# peft's model wrapper reads a deprecated attribute on every build; the warning says nothing about this run
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


class CompletionSFTTrainer(SFTTrainer):
    """An ``SFTTrainer`` whose loss projects only the completion positions through the LM head.

    With completion-only loss, two or three positions per question (the answer letter and EOS) carry a
    label. TRL's fused head scores every position off CUDA (all prompt and padding positions through the
    vocabulary projection, forward and again in backward); here the model's ``logits_to_keep`` mask keeps
    just the labelled ones. The loss is TRL's: summed token cross-entropy over ``num_items_in_batch`` (the
    labelled tokens of the whole accumulated step), and ``mean_token_accuracy``/``num_tokens`` are logged
    as before. ``feed_sampler``, when set, is an adaptive strategy's sampler (:mod:`hils_kit.train.adaptive_feed`).
    """

    feed_sampler = None

    def _get_train_sampler(self, train_dataset=None):
        if self.feed_sampler is not None:
            return self.feed_sampler
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != -100  # the logit at position p predicts the token at p + 1
        targets = labels[:, 1:][keep[:, :-1]]
        batch = {k: inputs[k] for k in MODEL_INPUTS if k in inputs}
        outputs = model(**batch, use_cache=False, logits_to_keep=keep)
        logits = outputs.logits.float()
        n_items = targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(n_items).clamp(
            min=1
        )
        mode = "train" if model.training else "eval"
        with torch.no_grad():
            self._metrics[mode]["mean_token_accuracy"].append((logits.argmax(-1) == targets).float().mean().item())
        if mode == "train":
            mask = inputs.get("attention_mask")
            self._total_train_tokens += int(inputs["input_ids"].numel() if mask is None else mask.sum())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


class LogLastStep(TrainerCallback):
    """Log the loss at the last step too, so every run has a final loss whatever ``logging_steps`` is."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps:
            control.should_log = True


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, its summary and log, and the trained model in memory."""

    out_dir: Path
    summary: dict
    log: pd.DataFrame
    model: object
    tokenizer: object


def device_name(device: str) -> str:
    """``"cuda: NVIDIA H100 ..."`` or ``"cpu (2 threads)"``."""
    if device.startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu ({torch_threads()})"


def build_dataset(table: pd.DataFrame, template: str = "paper"):
    """A prompt/completion ``datasets.Dataset`` in the table's row order, with ``row`` and ``id`` columns."""
    import datasets

    if in_notebook():
        datasets.disable_progress_bars()  # widget bars would be saved into executed notebooks
    missing = [c for c in ("id", "question", "options", "answer") if c not in table.columns]
    if missing:
        raise ValueError(f"the question table lacks column(s) {', '.join(missing)}")
    if len(table) == 0:
        raise ValueError("the question table is empty: nothing to train on")
    return datasets.Dataset.from_dict(
        {
            "prompt": [format_prompt(q, list(o), template) for q, o in zip(table["question"], table["options"])],
            "completion": [format_completion(a) for a in table["answer"]],
            "row": list(range(len(table))),
            "id": [str(i) for i in table["id"]],
        }
    )


def _quantization(config: TrainConfig, device: str):
    """The QLoRA ``BitsAndBytesConfig`` for ``quantization="4bit"`` (on CUDA or CPU), else ``None``."""
    if config.quantization == "none":
        return None
    if util.find_spec("bitsandbytes") is None:
        raise ValueError(
            f"quantization '{config.quantization}' (QLoRA) needs the bitsandbytes package "
            "(CPU and CUDA kernels): pip install 'bitsandbytes>=0.50', or use quantization=none "
            "(--set quantization=none) to train with plain LoRA"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _lora(config: TrainConfig):
    from peft import LoraConfig

    target = (
        config.lora_target
        if config.lora_target == "all-linear"
        else [name.strip() for name in config.lora_target.split(",") if name.strip()]
    )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        bias="none",
        task_type="CAUSAL_LM",
    )


def sft_config(
    config: TrainConfig,
    output_dir: str | Path,
    device: str,
    sampling: str = "sequential",
    padding_free: bool = False,
    shapes: tuple | None = None,
) -> SFTConfig:
    """The ``SFTConfig`` of a run: every setting that could reorder, drop or merge examples pinned off.

    TRL truncates nothing (``max_length=None``): :func:`check_prepared` refuses over-long questions instead.
    ``padding_free`` joins a micro-batch's questions into one row (``position_ids`` restart per question).
    ``shapes``: the model's matrix shapes, which ``auto`` precision is measured on
    (:func:`hils_kit.core.precision_timing.model_shapes`).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling '{sampling}': use one of {', '.join(SAMPLINGS)}")
    on_cuda = device.startswith("cuda")
    bf16 = use_bf16(config.bf16, device, shapes)
    return SFTConfig(
        output_dir=str(output_dir),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_length=None,
        padding_free=padding_free,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim=config.optim,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        bf16=bf16,
        use_cpu=not on_cuda,
        activation_checkpointing=config.activation_checkpointing,
        packing=False,
        shuffle_dataset=False,
        completion_only_loss=True,
        dataloader_num_workers=0,
        report_to="none",
        save_strategy="no",
        disable_tqdm=in_notebook() and headless(),  # a bar in JupyterLab, none in the notebooks a study saves
        train_sampling_strategy=sampling,
    )


def packs_rows(config: TrainConfig, model) -> bool:
    """Whether a run feeds padding-free rows: ``config.padding_free`` and a model type in ``PACKED_MODEL_TYPES``."""
    return config.padding_free and getattr(model.config, "model_type", None) in PACKED_MODEL_TYPES


def build_trainer(
    table: pd.DataFrame,
    model: str,
    config: TrainConfig | None,
    output_dir: str | Path,
    device: str | None = None,
    sampling: str = "sequential",
    callbacks: list | None = None,
    feed_sampler=None,
) -> SFTTrainer:
    """Load ``model`` with LoRA (QLoRA for ``quantization="4bit"``) and build its trainer on ``table``, fed in row
    order or by ``feed_sampler`` (an adaptive strategy's, :mod:`hils_kit.train.adaptive_feed`).

    The trainer's prepared dataset (``trainer.train_dataset``) is checked to hold every row in order, and a
    question longer than ``max_length`` tokens raises ``ValueError`` naming its id before any training step.
    """
    config = config or make_config(preset_for_model(model))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bnb = _quantization(config, device)
    transformers.set_seed(config.seed)  # seeds random, numpy and torch (CPU and CUDA) before LoRA init
    dataset = build_dataset(table, config.template)
    net, tokenizer = load_model(
        model,
        device=device,
        quantization_config=bnb,
        dtype=torch.bfloat16 if bnb is not None else None,
        precision=config.bf16,
    )
    if bnb is not None:
        from peft import prepare_model_for_kbit_training

        net = prepare_model_for_kbit_training(net, use_gradient_checkpointing=config.activation_checkpointing)
    trainer = CompletionSFTTrainer(
        model=net,
        args=sft_config(config, output_dir, device, sampling, packs_rows(config, net), model_shapes(net)),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_lora(config),
        callbacks=[LogLastStep(), *(callbacks or [])],
    )
    trainer.feed_sampler = feed_sampler
    if trainer.args.disable_tqdm:  # run headless: the losses go to train_log.csv and a plot, not the output
        trainer.remove_callback(PrinterCallback)
    check_prepared(trainer.train_dataset, dataset, config.max_length)
    return trainer


def check_prepared(prepared, dataset, max_length: int) -> None:
    """Raise ``ValueError`` naming the questions longer than ``max_length`` tokens (their answer would be cut
    off), or if TRL's preparation dropped rows or changed their order."""
    rows = list(prepared["row"])
    if rows != list(range(len(dataset))):
        raise ValueError("the trainer's prepared dataset does not hold the table's rows in order")
    long = [qid for qid, ids in zip(prepared["id"], prepared["input_ids"]) if len(ids) > max_length]
    if long:
        shown = ", ".join(long[:20]) + (f" and {len(long) - 20} more" if len(long) > 20 else "")
        raise ValueError(
            f"{len(long)} question(s) would lose their answer to truncation at max_length={max_length} "
            f"tokens: {shown}; raise max_length (--set max_length=N) or drop these questions"
        )


def order_tables(table: pd.DataFrame, epochs: int, recorder: OrderRecorder, dataset_input_ids) -> tuple:
    """``(planned, fed)`` tables: the planned id order over ``epochs``, and what ``recorder`` saw fed.

    ``dataset_input_ids`` are the prepared dataset's token rows, in the table's row order.
    """
    ids = [str(i) for i in table["id"]]
    planned = pd.DataFrame(
        {
            "position": range(len(ids) * epochs),
            "epoch": [e + 1 for e in range(epochs) for _ in ids],
            "row": list(range(len(ids))) * epochs,
            "id": ids * epochs,
        }
    )
    if "category" in table:
        planned["category"] = list(table["category"]) * epochs
    rows = map_to_rows(recorder.sequences, dataset_input_ids)
    fed = pd.DataFrame(
        {
            "position": range(len(rows)),
            "step": recorder.steps,
            "micro_batch": recorder.micro_batches,
            "row": pd.array(rows, dtype="Int64"),
            "id": [None if r is None else ids[r] for r in rows],
            "n_tokens": [len(seq) for seq in recorder.sequences],
        }
    )
    return planned, fed


@contextlib.contextmanager
def lean_training(trainer):
    """What :func:`train` runs ``trainer.train()`` within: fused LoRA layers, attention per question in padding-free
    rows and, under bf16 autocast, the frozen weights cast to bf16 once (:mod:`hils_kit.train.fused_lora`,
    :mod:`hils_kit.train.packed_attention`, :mod:`hils_kit.core.bf16_weights`)."""
    frozen = bf16_linear_weights(trainer.model) if trainer.args.bf16 else contextlib.nullcontext()
    with fused_lora(trainer.model), packed_attention(trainer.model), frozen:
        yield trainer


def _train_log(log_history: list[dict]) -> pd.DataFrame:
    columns = ["step", "epoch", "loss", "learning_rate", "grad_norm", "mean_token_accuracy"]
    rows = [{c: entry.get(c) for c in columns} for entry in log_history if "loss" in entry]
    return pd.DataFrame(rows, columns=columns)


def train(
    table: pd.DataFrame,
    model: str = "smollm2",
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    device: str | None = None,
    sampling: str = "sequential",
    allow_order_mismatch: bool = False,
    overwrite: bool = False,
    callbacks: list | None = None,
    feed=None,
) -> TrainResult:
    """Fine-tune ``model`` on ``table`` in its row order and write the run folder ``out_dir``.

    Args:
        table: the ordered question table (duplicated rows are trained as often as they appear).
        model: a model name of :func:`hils_kit.models.loading.load_model` (``smollm2``, ``tiny``, a folder, a hub id).
        config: the settings; default: the preset made for ``model`` (see :mod:`hils_kit.train.presets`).
        out_dir: the run folder, written atomically; default ``runs/train-<time>``. A folder the kit made
            is replaced whole; any other non-empty folder is refused before training (see ``overwrite``).
        device: ``cuda`` or ``cpu``; default CUDA when available.
        sampling: ``sequential``; ``random`` only to show that the order audit catches shuffling.
        allow_order_mismatch: keep going when the fed order differs from the plan instead of raising
            :class:`OrderAuditError` (the run folder is written and flagged ``audit_ok: false`` either way).
        overwrite: write into an existing folder the kit did not make, replacing only the files a run writes.
        callbacks: further ``TrainerCallback`` objects, e.g. a :class:`hils_kit.train.probe.ProbeCallback`.
        feed: an :class:`hils_kit.train.adaptive_feed.AdaptiveFeed` over ``table``'s rows: an adaptive strategy
            decides the order during training; its decisions are the plan the fed order is audited against
            (``order_planned.csv`` holds them, with the step, score and reason of each).
    """
    config = config or make_config(preset_for_model(model))
    if feed is not None and config.num_train_epochs != 1:
        raise ValueError(
            f"an adaptive strategy decides one epoch's examples (and its budget) during training; "
            f"num_train_epochs={config.num_train_epochs} does not apply (use 1)"
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = output_folder(
        out_dir or RUNS_DIR / f"train-{datetime.now():%Y%m%d-%H%M%S}",
        "out_dir",
        overwrite,
        overwrite_flag="overwrite=True",
    )
    recorder = OrderRecorder()
    with atomic_path(out_dir, overwrite=overwrite) as tmp:
        tmp.mkdir()
        files = TrainFiles(tmp)
        extra = [feed.callback] if feed is not None else []
        trainer = build_trainer(
            table,
            model,
            config,
            tmp,
            device,
            sampling,
            callbacks=[recorder, *extra, *(callbacks or [])],
            feed_sampler=feed.sampler if feed is not None else None,
        )
        was_reset = reset_peak_memory(device)
        start = time.perf_counter()
        try:
            with lean_training(trainer):
                output = trainer.train()
        finally:
            recorder.close()
        seconds = time.perf_counter() - start
        trainer.model.eval()
        trainer.model.save_pretrained(files.adapter)

        planned, fed = order_tables(table, config.num_train_epochs, recorder, trainer.train_dataset["input_ids"])
        if feed is not None:  # the plan is what the schedule decided, question for question
            planned = feed.schedule.decisions_table(planned["id"].tolist())
            if "category" in table:
                planned["category"] = table["category"].to_numpy()[planned["row"]]
        planned.to_csv(files.order_planned, index=False)
        fed.to_csv(files.order_fed, index=False)
        result = audit(planned["id"].tolist(), fed["id"].tolist())

        log = _train_log(trainer.state.log_history)
        log.to_csv(files.log, index=False)
        steps = trainer.state.global_step
        peak_mb, peak_kind = peak_memory_mb(device, was_reset)
        summary = {
            "model": model,
            "device": device_name(device),
            "n_questions": len(table),
            "n_examples_fed": len(fed),
            "epochs": config.num_train_epochs,
            "steps": steps,
            "micro_batches": recorder.n_forward,
            "batching": "padding-free" if trainer.args.padding_free else "padded",
            "train_seconds": round(seconds, 3),
            "seconds_per_step": round(seconds / max(steps, 1), 4),
            "tokens_seen": recorder.n_tokens,
            "tokens_per_second": round(recorder.n_tokens / seconds, 1),
            "examples_per_second": round(len(fed) / seconds, 3),
            "peak_memory_mb": round(peak_mb, 1),
            "peak_memory_kind": peak_kind,
            "precision": (
                "4-bit NF4 weights, bf16 compute"
                if config.quantization == "4bit"
                else "bf16 autocast"
                if trainer.args.bf16
                else "fp32"
            ),
            # who chose it, and the figures measured on the model's shapes
            "precision_decision": precision_record(config.bf16, device, model_shapes(trainer.model)),
            "final_loss": float(log["loss"].iloc[-1]) if len(log) else None,
            "mean_loss": float(output.training_loss),
            "audit_ok": result["match"],
            "order_audit": result,
            "adaptive": feed.record(seconds) if feed is not None else None,
        }
        files.summary.write_text(json.dumps(summary, indent=2), encoding="utf-8")
        run_config = {
            "model": model,
            "model_path": model_path(model),
            "config": config.to_dict(),
            "sampling": sampling,
            "sampler": type(trainer._get_train_sampler()).__name__,
            "device": device_name(device),
            "n_questions": len(table),
            "versions": library_versions(),
            "git": git_revision(),
            "created": datetime.now().isoformat(timespec="seconds"),
        }
        files.config.write_text(json.dumps(run_config, indent=2), encoding="utf-8")
    if not result["match"] and not allow_order_mismatch:
        raise OrderAuditError(
            f"the fed order differs from the plan at position {result['first_mismatch']}: planned "
            f"{result['planned_at']}, fed {result['fed_at']} ({result['n_same_position']}/{result['n_planned']} "
            f"positions agree); the run is kept in {out_dir} with audit_ok false"
        )
    return TrainResult(
        out_dir=out_dir, summary=summary, log=log, model=trainer.model, tokenizer=trainer.processing_class
    )
