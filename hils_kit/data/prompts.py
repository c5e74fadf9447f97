"""The one prompt template shared by training, difficulty labelling and scoring.

The paper's template: an instruction, ``Question:``, lettered options and ``Answer:``; the completion is
the answer letter with a leading space (`` B``), so the prompt ends on a token boundary and each letter is
one token.

>>> print(format_prompt("Which organ makes insulin?", ["Liver", "Pancreas"]))
Answer the following multiple choice question by giving the most appropriate response. Answer should be one among [A, B].
<BLANKLINE>
Question: Which organ makes insulin?
A) Liver
B) Pancreas
<BLANKLINE>
Answer:
>>> format_completion("B")
' B'
"""

from __future__ import annotations

from hils_kit.data.questions import LETTERS

TEMPLATES = {
    # the paper's template (Yang et al. 2024, code shared_utils.py), with the answer cue the paper names
    "paper": (
        "Answer the following multiple choice question by giving the most appropriate response. "
        "Answer should be one among [{letters}].\n\nQuestion: {question}\n{options}\n\nAnswer:"
    ),
    # lm-evaluation-harness style, no instruction
    "plain": "Question: {question}\n{options}\nAnswer:",
}
OPTION_FORMAT = {"paper": "{letter}) {text}", "plain": "{letter}. {text}"}


def format_prompt(question: str, options: list[str], template: str = "paper") -> str:
    """The prompt for one question (any option count from 2 to 10)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template '{template}' (one of {', '.join(TEMPLATES)})")
    letters = LETTERS[: len(options)]
    lines = "\n".join(OPTION_FORMAT[template].format(letter=l, text=t) for l, t in zip(letters, options))
    return TEMPLATES[template].format(letters=", ".join(letters), question=question, options=lines)


def prompts_of(table, template: str = "paper") -> list[str]:
    """The prompt of every row of a question table (``question`` and ``options`` columns)."""
    return [format_prompt(q, list(o), template) for q, o in zip(table["question"], table["options"])]


def format_completion(letter: str) -> str:
    """The training target for an answer letter: a space and the letter."""
    return f" {letter}"


def letter_token_ids(tokenizer, n_options: int, template: str = "paper") -> list[int]:
    """Token ids of `` A`` … for ``n_options`` letters, checked to be single tokens that follow the prompt.

    Raises ``ValueError`` naming the letter when the tokenizer splits it or merges it with ``Answer:``,
    since then one forward pass cannot score the options.
    """
    prompt = format_prompt("q", ["x"] * n_options, template)
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = []
    for letter in LETTERS[:n_options]:
        full = tokenizer(prompt + format_completion(letter), add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ValueError(
                f"answer letter '{letter}' is not a single token after the prompt for this tokenizer "
                f"({getattr(tokenizer, 'name_or_path', '?')}); letter scoring needs one token per letter"
            )
        ids.append(full[-1])
    return ids
