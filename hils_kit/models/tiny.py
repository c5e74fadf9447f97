"""A tiny Llama with a locally trained tokenizer, built in seconds, for tests and smoke runs.

Its weights are random (seeded), so it knows nothing; it exercises every code path of the kit exactly
like a real model: same template, single-token answer letters, LoRA, SFTTrainer, scoring.

>>> from hils_kit.models.tiny import build_tiny_model
>>> path = build_tiny_model("/tmp/tiny-doc")                      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from hils_kit.core.paths import atomic_path
from hils_kit.data.prompts import format_completion, format_prompt
from hils_kit.data.questions import LETTERS

_WORDS = (
    "patient presents with pain fever cough drug dose treatment diagnosis most likely which following "
    "nerve artery muscle bone heart lung liver kidney brain blood cell infection antibiotic surgery "
    "year old man woman child history examination shows increased decreased normal acute chronic "
    "the of and a an in is to for on by at from not all none above both true false best next step"
).split()


def _corpus() -> list[str]:
    """Training text for the tokenizer: prompts in the kit's templates, with every answer letter."""
    texts = []
    for i, word in enumerate(_WORDS):
        options = [_WORDS[(i + k * 7) % len(_WORDS)] for k in range(1 + i % 5 + 1)]
        for template in ("paper", "plain"):
            prompt = format_prompt(f"Which {word} is {_WORDS[(i * 3) % len(_WORDS)]}?", options, template)
            texts.append(prompt + format_completion(LETTERS[i % len(options)]))
    texts += [f"Answer:{format_completion(letter)}" for letter in LETTERS] * 20
    return texts


def build_tiny_model(target: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Train a byte-level BPE tokenizer and write a random tiny ``LlamaForCausalLM`` to ``target``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target = Path(target)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<pad>",
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target
