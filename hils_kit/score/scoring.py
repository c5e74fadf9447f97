"""Letter scoring: one forward pass per question, softmax over the option letters only.

The tokens every prompt starts with (the paper's instruction, about 31 of MedMCQA's 86 tokens per prompt)
are run once per call and their key/value cache is shared by every batch. On a CPU a batch's prompts, without that
prefix, then go end to end in one row, each attending the prefix and itself (:mod:`hils_kit.score.prefix_attention`:
no padding, every linear layer one large product); elsewhere (a GPU, another attention implementation, a prompt
longer than a sliding window) they are left-padded into length-sorted batches with position ids that ignore the
padding. Batches are longest first, and the results come back in the table's order. Only each prompt's last
position's logits are computed. The probability of each letter is the softmax of the logits of `` A`` … restricted
to the question's own letters, which is exactly the paper's rule (lowest loss of ``prompt + letter`` among the
options) in one pass instead of one per option.

:func:`per_option_losses` is the paper's own method (one sequence per option, mean cross-entropy over the
whole sequence), kept as the reference that tests and ``benchmarks/bench_scoring.py`` compare against.

>>> from hils_kit.models.loading import load_model
>>> from hils_kit.data.loaders import load_questions
>>> model, tok = load_model("tiny")                                        # doctest: +SKIP
>>> table = load_questions("medmcqa").head(8)                              # doctest: +SKIP
>>> probs = letter_probabilities(model, tok, table)                        # doctest: +SKIP
>>> probs.shape                                                            # doctest: +SKIP
(8, 4)
>>> (predict(probs) == predict(-per_option_losses(model, tok, table))).all()  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pandas as pd

from hils_kit.core.allocator import keep_freed_memory
from hils_kit.core.bf16_weights import bf16_model_weights
from hils_kit.core.precision import use_bf16
from hils_kit.core.progress import progress_bar
from hils_kit.data.prompts import format_completion, letter_token_ids, prompts_of
from hils_kit.data.questions import LETTERS
from hils_kit.models.shapes import model_shapes
from hils_kit.score.prefix_attention import SharedPrefix, fits, prefix_attention


@contextlib.contextmanager
def eval_mode(model):
    """Score with dropout off (a model fresh from training is in train mode), then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


MIN_SHARED_TOKENS = 4  # a shorter common prefix is not worth its cache
# questions per forward pass: on a CPU they share one row, where 32 MedMCQA questions (about 1,800 tokens) scored
# SmolLM2 1.15x faster in fp32 than 8 and 1.3x in bf16; 64 no faster (2-core Xeon with AMX, 2026-12-04)
BATCH_SIZE = 32


def _cache_argument() -> str:
    """The forward argument (and output field) of the key/value cache: transformers renamed ``past_key_values``."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def shared_prefix(encoded: list[list[int]]) -> int:
    """How many leading tokens all ``encoded`` sequences share, leaving at least one token of each to score.

    >>> shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 3]])
    2
    """
    if len(encoded) < 2:
        return 0
    first, limit = encoded[0], min(len(e) for e in encoded) - 1
    n = 0
    while n < limit and all(e[n] == first[n] for e in encoded):
        n += 1
    return n


def batch_plan(encoded: list[list[int]], batch_size: int, window: int | None = None) -> tuple[int, list[tuple]]:
    """How :func:`letter_probabilities` batches ``encoded`` prompts: ``(shared, batches)``, the length of the prefix
    all share and, longest first, each batch's ``(rows, skip)``: its rows of ``encoded`` and how many leading tokens
    it takes from the shared prefix's cache (0 when the prefix is too short to pay, or when a sliding-``window``
    model could not see it).

    >>> batch_plan([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7], [1, 2, 3, 4, 5, 8, 9]], 2)
    (4, [([2, 0], 4), ([1], 4)])
    """
    order = np.argsort([-len(e) for e in encoded], kind="stable")
    shared, batches = shared_prefix(encoded), []
    for start in range(0, len(order), batch_size):
        rows = [int(i) for i in order[start : start + batch_size]]
        longest = max(len(encoded[i]) for i in rows)
        fits = window is None or longest + shared <= window
        batches.append((rows, shared if shared >= MIN_SHARED_TOKENS and fits else 0))
    return shared, batches


def scoring_plan(model, encoded: list[list[int]], batch_size: int) -> tuple[int, list[tuple], bool]:
    """``(prefix, batches, packed)``: the shared prefix's length when it is long enough to pay (else 0),
    :func:`batch_plan`'s batches for ``model``, and whether each batch's prompts go end to end in one row after
    that prefix (:func:`hils_kit.score.prefix_attention.fits`; otherwise each batch is left-padded after its ``skip``)."""
    shared, batches = batch_plan(encoded, batch_size, getattr(model.config, "sliding_window", None))
    prefix = shared if shared >= MIN_SHARED_TOKENS else 0
    return prefix, batches, fits(model, prefix, [len(e) - prefix for e in encoded])


def pass_tokens(model, encoded: list[list[int]], batch_size: int) -> list[int]:
    """The token positions of each forward pass :func:`letter_probabilities` makes, padding included (the shared
    prefix's pass last): the rows of its matrix products.

    >>> from types import SimpleNamespace as NS
    >>> model = NS(config=NS(_attn_implementation="eager"), parameters=lambda: iter([NS(device=NS(type="cpu"))]))
    >>> pass_tokens(model, [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7], [1, 2, 3, 4, 5, 8, 9]], 2)
    [6, 1, 4]
    """
    prefix, batches, packed = scoring_plan(model, encoded, batch_size)
    if packed:
        return [sum(len(encoded[i]) - prefix for i in idx) for idx, _ in batches] + ([prefix] if prefix else [])
    rows = [len(idx) * (max(len(encoded[i]) for i in idx) - skip) for idx, skip in batches]
    return rows + ([prefix] if any(skip for _, skip in batches) else [])


def letter_probabilities(
    model,
    tokenizer,
    table: pd.DataFrame,
    template: str = "paper",
    batch_size: int = BATCH_SIZE,
    desc: str = "scoring",
    precision: str | bool | None = None,
) -> np.ndarray:
    """Probabilities over the option letters, shape ``(len(table), max options)``; NaN past a row's options.

    ``batch_size``: questions per forward pass. ``precision``: ``"fp32"``, ``"bf16"`` (an fp32 model scored under
    bf16 autocast) or ``None``/``"auto"`` (``HILS_PRECISION``, else the faster for this model on this device;
    :mod:`hils_kit.core.precision`); under bf16 a CPU model's weights are cast once per call
    (:func:`hils_kit.core.bf16_weights.bf16_model_weights`: the model computes as if loaded in bf16). A model with
    bf16 weights (not quantised) is refused in fp32. bf16 probabilities differ from fp32 by up to a few hundredths
    (``tests/test_scoring.py`` holds the tolerance).
    """
    import torch

    n_opts = np.array([len(o) for o in table["options"]])
    width = int(n_opts.max())
    letter_ids = torch.tensor(letter_token_ids(tokenizer, width, template))
    encoded = tokenizer(prompts_of(table, template), add_special_tokens=True)["input_ids"]
    device = next(model.parameters()).device
    bf16 = use_bf16(precision, device.type, model_shapes(model))
    quantized = getattr(getattr(model, "config", None), "quantization_config", None) is not None
    if not bf16 and not quantized and any(p.dtype == torch.bfloat16 for p in model.parameters()):
        raise ValueError(
            "the model's weights are bfloat16, so scoring it in fp32 would be bf16 work recorded as fp32: load it in "
            "float32 (load_model(..., precision='fp32')) or score it with precision='bf16'"
        )
    keep_freed_memory()  # activations reuse the pages of the last pass (hils_kit.core.allocator)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    weights = bf16_model_weights(model) if bf16 else contextlib.nullcontext()
    prefix, batches, packed = scoring_plan(model, encoded, batch_size)
    logits_out = np.zeros((len(encoded), width), dtype=np.float64)
    with (
        torch.inference_mode(),
        eval_mode(model),
        autocast,
        weights,
        progress_bar(total=len(encoded), desc=desc) as bar,
    ):
        passes = (
            _packed_passes(model, encoded, batches, prefix)
            if packed
            else _padded_passes(model, tokenizer, encoded, batches)
        )
        for idx, last in passes:
            logits_out[idx] = last.float().cpu()[:, letter_ids].double().numpy()
            bar.update(len(idx))
    valid = np.arange(width)[None, :] < n_opts[:, None]
    logits_out = np.where(valid, logits_out, -np.inf)
    logits_out -= logits_out.max(axis=1, keepdims=True)
    probs = np.exp(logits_out)
    probs /= probs.sum(axis=1, keepdims=True)
    return np.where(valid, probs, np.nan)


def _prefix_cache(model, tokens: list[int]):
    """The key/value cache of one forward pass over ``tokens``."""
    import torch

    device = next(model.parameters()).device
    # the last position by index, not logits_to_keep=1 (a strided slice: the head as a batched product over a copy of
    # its weight, 75 ms in bf16 for SmolLM2 against 1 ms)
    last = torch.tensor([len(tokens) - 1], device=device)
    out = model(input_ids=torch.tensor([tokens], device=device), use_cache=True, logits_to_keep=last)
    return getattr(out, _cache_argument())


def _packed_passes(model, encoded: list[list[int]], batches: list[tuple], skip: int):
    """Each batch's prompts after the first ``skip`` tokens (their shared prefix) end to end in one row, attended per
    prompt over the prefix's cache (:mod:`hils_kit.score.prefix_attention`): ``(rows, logits at each prompt's end)``."""
    import torch

    device = next(model.parameters()).device
    prefix = SharedPrefix.of(_prefix_cache(model, encoded[0][:skip])) if skip else SharedPrefix()
    with prefix_attention(model):
        for idx, _ in batches:
            spans = [len(encoded[i]) - skip for i in idx]
            ids = torch.tensor([[t for i in idx for t in encoded[i][skip:]]], device=device)
            positions = torch.cat([torch.arange(skip, skip + n) for n in spans])[None].to(device)
            ends = torch.tensor(np.cumsum(spans) - 1, device=device)
            out = model(
                input_ids=ids,
                position_ids=positions,
                logits_to_keep=ends,
                use_cache=False,
                hils_prefix=prefix,
                hils_spans=spans,
            )
            yield idx, out.logits[0]


def _padded_passes(model, tokenizer, encoded: list[list[int]], batches: list[tuple]):
    """Each batch's prompts left-padded to one length, after the shared prefix's cache where a batch's ``skip`` says
    so: ``(rows, logits at the last position)``."""
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cache_arg = _cache_argument()
    prefix_cache = None
    for idx, skip in batches:
        longest = max(len(encoded[i]) for i in idx)
        if skip and prefix_cache is None:
            prefix_cache = _prefix_cache(model, encoded[0][:skip])  # every batch that skips, skips the same
        ids = torch.full((len(idx), longest - skip), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), longest - skip), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = encoded[i][skip:]
            ids[row, ids.shape[1] - len(seq) :] = torch.tensor(seq)
            mask[row, ids.shape[1] - len(seq) :] = 1
        positions = skip + (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {}
        if skip:  # [shared prefix][padding][rest of the prompt]: the padding is masked out
            past = copy.deepcopy(prefix_cache)
            past.batch_repeat_interleave(len(idx))
            mask = torch.cat([torch.ones((len(idx), skip), dtype=torch.long), mask], dim=1)
            extra = {cache_arg: past, "use_cache": True}
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            # the last position as an index: its hidden state is then gathered into a contiguous tensor, and the
            # LM head is one matrix product (a strided slice took a batched product over copies of the head's
            # weight when the weight takes no gradient: 0.6 s a batch in bf16 for SmolLM2)
            logits_to_keep=torch.tensor([ids.shape[1] - 1], device=device),
            **extra,
        )
        yield idx, out.logits[:, -1, :]


def predict(scores: np.ndarray) -> np.ndarray:
    """The letter with the highest score in each row (NaN entries ignored); pass ``-losses`` for losses.

    >>> predict(np.array([[0.1, 0.7, 0.2, np.nan], [0.4, 0.3, 0.2, 0.1]])).tolist()
    ['B', 'A']
    """
    scores = np.asarray(scores, dtype=float)
    filled = np.where(np.isnan(scores), -np.inf, scores)
    return np.array(list(LETTERS))[filled.argmax(axis=1)]


def per_option_losses(
    model,
    tokenizer,
    table: pd.DataFrame,
    template: str = "paper",
    batch_size: int = 8,
    desc: str = "per-option scoring",
) -> np.ndarray:
    """The paper's scorer: mean token cross-entropy of ``prompt + letter`` for every option of every question.

    As in the paper's ``inference.py``: each option letter is appended to the prompt, every
    (question, option) sequence is its own row (``batch_size`` questions × their options per forward pass,
    right-padded, padding labels masked), and the loss is the mean cross-entropy of all next tokens of the
    sequence. The lowest loss is the prediction. Shape ``(len(table), max options)``; NaN past a row's options.
    Tokenization is the kit's (the same as :func:`letter_probabilities`), so the two are comparable; the
    paper's code added a BOS token for 5-option sets but not for MedMCQA's 4 options.
    """
    import torch
    import torch.nn.functional as F

    n_opts = [len(o) for o in table["options"]]
    prompts = prompts_of(table, template)
    losses = np.full((len(table), max(n_opts)), np.nan)
    device = next(model.parameters()).device
    with torch.inference_mode(), eval_mode(model), progress_bar(total=len(table), desc=desc) as bar:
        for start in range(0, len(table), batch_size):
            pairs = [(i, k) for i in range(start, min(start + batch_size, len(table))) for k in range(n_opts[i])]
            texts = [prompts[i] + format_completion(LETTERS[k]) for i, k in pairs]
            batch = tokenizer(texts, padding=True, padding_side="right", return_tensors="pt").to(device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)[:, 1:]
            token_ce = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), labels, reduction="none")
            mean_ce = token_ce.double().sum(1) / (labels != -100).sum(1)
            rows, cols = zip(*pairs)
            losses[list(rows), list(cols)] = mean_ce.cpu().numpy()
            bar.update(len(set(rows)))
    return losses


def probabilities_from_losses(
    losses: np.ndarray, tokenizer, table: pd.DataFrame, template: str = "paper"
) -> np.ndarray:
    """Normalised letter probabilities implied by :func:`per_option_losses`, comparable to :func:`letter_probabilities`.

    A mean loss times the number of tokens predicted is the sequence's total loss; its prompt part is the
    same for every option, so ``softmax(-(tokens predicted) × mean loss)`` over the options is
    ``P(letter | prompt)`` restricted to the options.
    """
    predicted = np.array(
        [len(tokenizer(p + format_completion("A"))["input_ids"]) - 1 for p in prompts_of(table, template)], dtype=float
    )
    logp = -losses * predicted[:, None]
    logp = logp - np.nanmax(logp, axis=1, keepdims=True)
    probs = np.exp(logp)
    return probs / np.nansum(probs, axis=1, keepdims=True)
