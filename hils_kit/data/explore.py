"""Summaries of question tables for the data-exploration notebook.

>>> from tests.conftest import make_questions
>>> overview({"demo": make_questions(12)}).loc["demo", "options"]
'4'
"""

from __future__ import annotations

import pandas as pd

from hils_kit.data.prompts import prompts_of
from hils_kit.data.questions import LETTERS


def overview(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per data set: size, categories, option counts, examinee statistics, majority-letter share."""
    rows = []
    for name, table in tables.items():
        counts = table["options"].map(len)
        rows.append(
            {
                "dataset": name,
                "questions": len(table),
                "categories": table["category"].nunique(),
                "options": "/".join(str(k) for k in sorted(counts.unique())),
                "examinee statistics": "human_p_correct" in table,
                "majority letter": table["answer"].value_counts().idxmax(),
                "majority share": round(table["answer"].value_counts(normalize=True).max(), 3),
            }
        )
    return pd.DataFrame(rows).set_index("dataset")


def letter_balance(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Share of each gold answer letter per data set (rows: data sets, columns: letters)."""
    width = max(table["options"].map(len).max() for table in tables.values())
    shares = {name: table["answer"].value_counts(normalize=True) for name, table in tables.items()}
    return pd.DataFrame(shares).T.reindex(columns=list(LETTERS[:width])).fillna(0.0)


def question_lengths(tables: dict[str, pd.DataFrame], tokenizer=None, template: str = "paper") -> pd.DataFrame:
    """Long table of prompt lengths: characters, and tokens when a tokenizer is given."""
    frames = []
    for name, table in tables.items():
        prompts = prompts_of(table, template)
        frame = pd.DataFrame(
            {"dataset": name, "category": table["category"].to_numpy(), "characters": [len(p) for p in prompts]}
        )
        if tokenizer is not None:
            frame["tokens"] = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
