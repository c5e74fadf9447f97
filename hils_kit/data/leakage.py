"""Leakage guard: a test question that the model trained on (or that was labelled with it) is not a test.

Questions are compared by a hash of their normalised text: the stem and the options (as a set), lower-cased,
with punctuation removed and whitespace collapsed, so the same question copied between data sets under
another id, in another case or with other spacing is caught, while two questions that share a generic stem
("Which of the following is true?") but not their options are not.

>>> a = pd.DataFrame({"question": ["What  is X?"], "options": [["A thing", "B thing"]]})
>>> b = pd.DataFrame({"question": ["what is x"], "options": [["b thing.", "a thing"]]})
>>> overlapping(b, question_keys(a)).tolist()
[True]
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pandas as pd

ON_OVERLAP = ("drop", "error")
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lower case, NFKC, punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return _SPACE.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def question_key(question: str, options) -> str:
    """The hash that identifies a question across data sets (stem + the set of its options)."""
    parts = [normalise_text(question), *sorted(normalise_text(o) for o in options)]
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def question_keys(table: pd.DataFrame) -> set[str]:
    """The keys of every question of a table."""
    return {question_key(q, o) for q, o in zip(table["question"], table["options"])}


def overlapping(table: pd.DataFrame, keys: set[str]) -> pd.Series:
    """True for the rows of ``table`` whose question is among ``keys``."""
    return pd.Series(
        [question_key(q, o) in keys for q, o in zip(table["question"], table["options"])], index=table.index, dtype=bool
    )


def drop_overlap(test: pd.DataFrame, keys: set[str], label: str, on_overlap: str = "drop") -> tuple[pd.DataFrame, int]:
    """``test`` without the questions in ``keys``, and how many were dropped; ``on_overlap="error"`` refuses.

    Raises ``ValueError`` naming the test set, the count and example ids when asked to, or when nothing is left.
    """
    if on_overlap not in ON_OVERLAP:
        raise ValueError(f"on_overlap '{on_overlap}': use one of {', '.join(ON_OVERLAP)}")
    hit = overlapping(test, keys)
    n = int(hit.sum())
    if n and on_overlap == "error":
        raise ValueError(
            f"test set '{label}': {n} question(s) also appear among the training or labelling "
            f"questions (e.g. {', '.join(test.loc[hit, 'id'].astype(str).head(3))}); remove them or "
            "set on_overlap: drop"
        )
    kept = test[~hit].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"test set '{label}': every one of its {len(test)} questions is a training question")
    return kept, n
