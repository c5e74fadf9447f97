"""The prompt template and the single-token answer letters."""

from __future__ import annotations

import pytest

from hils_kit.data.prompts import format_completion, format_prompt, letter_token_ids


def test_paper_template_four_and_five_options():
    four = format_prompt("Q?", ["a", "b", "c", "d"])
    five = format_prompt("Q?", ["a", "b", "c", "d", "e"])
    assert "Answer should be one among [A, B, C, D]." in four and "D) d\n\nAnswer:" in four
    assert "[A, B, C, D, E]" in five and five.endswith("E) e\n\nAnswer:")
    assert format_completion("C") == " C"


def test_unknown_template():
    with pytest.raises(ValueError, match="unknown template"):
        format_prompt("q", ["a", "b"], template="nope")


def test_letters_are_single_tokens_for_the_tiny_tokenizer(tiny_model):
    _, tok = tiny_model
    ids = letter_token_ids(tok, 5)
    assert len(set(ids)) == 5 and all(len(tok.decode([i]).strip()) == 1 for i in ids)


def test_letters_split_by_a_tokenizer_are_refused():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ :?,.()[]\nĠĊ")))}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    raw.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="a", pad_token="a")
    with pytest.raises(ValueError, match="answer letter 'A' is not a single token"):
        letter_token_ids(tok, 4)
