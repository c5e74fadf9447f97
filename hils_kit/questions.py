"""The canonical question table and its row-by-row validation.

Every loader turns its format into raw records and hands them to :func:`build_table`, which returns the
table of good rows and a :class:`Reject` for every row it refused (file, line, field, reason). Nothing is
dropped silently.

Columns: ``id``, ``question``, ``options`` (list of 2+ strings), ``answer`` (letter), ``category``,
``dataset``; when the source has examinee statistics, ``%A``…``%E`` and ``human_p_correct``.
Other source columns are kept.

>>> table, rejects = build_table([
...     {"question": "2+2?", "options": ["3", "4"], "answer": "B. 4", "_line": 1},
...     {"question": "", "options": ["x", "y"], "answer": "A", "_line": 2},
... ], source="demo.jsonl", dataset="demo")
>>> table.loc[0, "answer"], len(rejects), rejects[0].field
('B', 1, 'question')
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from hils_kit.paths import atomic_path

LETTERS = "ABCDEFGHIJ"
CORE_COLUMNS = ["id", "question", "options", "answer", "category", "dataset"]
PCT_COLUMNS = [f"%{letter}" for letter in LETTERS]
_LETTER_PREFIX = re.compile(r"^\(?([A-Ja-j])[\.\):]?(?:\s+(.*))?$", re.S)


class QuestionFileError(ValueError):
    """A file that cannot be used at all (unreadable, empty, missing columns, no usable rows)."""


@dataclass(frozen=True)
class Reject:
    """One refused row: where it is and why."""

    file: str
    line: int
    field: str
    reason: str
    id: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


def normalise_answer(raw, options: list[str]) -> str:
    """Turn an answer written as a letter, "B. text", "(b)", an option text or a 0-based int into a letter.

    Raises ``ValueError`` with the reason when the answer is not among the options.
    """
    n = len(options)
    if isinstance(raw, bool) or raw is None or (isinstance(raw, float) and math.isnan(raw)):
        raise ValueError("answer is empty")
    if isinstance(raw, (int,)) or (isinstance(raw, float) and raw.is_integer()):
        idx = int(raw)
        if not 0 <= idx < n:
            raise ValueError(f"answer index {idx} is not among {n} options")
        return LETTERS[idx]
    text = str(raw).strip()
    if not text:
        raise ValueError("answer is empty")
    match = _LETTER_PREFIX.match(text)
    if match:
        letter, rest = match.group(1).upper(), (match.group(2) or "").strip()
        idx = LETTERS.index(letter)
        if idx >= n:
            raise ValueError(f"answer '{text[:40]}' is not among the options A-{LETTERS[n - 1]}")
        if rest and rest != options[idx].strip():
            raise ValueError(f"answer text '{rest[:40]}' does not match option {letter} '{options[idx][:40]}'")
        return letter
    stripped = [o.strip() for o in options]
    if text in stripped:
        return LETTERS[stripped.index(text)]
    raise ValueError(f"answer '{text[:40]}' is not among the options A-{LETTERS[n - 1]}")


def _check_record(rec: dict, expected_options: int | None) -> tuple[dict | None, tuple[str, str] | None]:
    """Validate one raw record; return (clean row, None) or (None, (field, reason))."""
    question = rec.get("question")
    if question is None or (isinstance(question, float) and math.isnan(question)) or not str(question).strip():
        return None, ("question", "question is empty")
    options = rec.get("options")
    if not isinstance(options, (list, tuple)):
        return None, ("options", "options are missing")
    options = ["" if o is None or (isinstance(o, float) and math.isnan(o)) else str(o) for o in options]
    if len(options) < 2 or len(options) > len(LETTERS):
        return None, ("options", f"wrong option count: {len(options)} (need 2 to {len(LETTERS)})")
    if expected_options is not None and len(options) != expected_options:
        return None, ("options", f"wrong option count: {len(options)}, this format has {expected_options}")
    for i, opt in enumerate(options):
        if not opt.strip():
            return None, (f"option {LETTERS[i]}", "option text is empty")
    try:
        answer = normalise_answer(rec.get("answer"), options)
    except ValueError as err:
        return None, ("answer", str(err))
    row = {k: v for k, v in rec.items() if not k.startswith("_")}
    row.update(question=str(question).strip(), options=[o.strip() for o in options], answer=answer)
    pct = [c for c in PCT_COLUMNS if c in rec and rec[c] is not None and str(rec[c]).strip() != ""]
    for col in pct:
        try:
            value = float(rec[col])
        except (TypeError, ValueError):
            return None, (col, f"examinee share '{rec[col]}' is not a number")
        if not 0.0 <= value <= 100.0:
            return None, (col, f"examinee share {value} is outside 0-100")
        row[col] = value
    if pct:
        if f"%{answer}" not in pct:
            return None, (f"%{answer}", "examinee share of the correct option is missing")
        row["human_p_correct"] = row[f"%{answer}"] / 100.0
    elif rec.get("human_p_correct") not in (None, ""):
        try:
            value = float(rec["human_p_correct"])
        except (TypeError, ValueError):
            return None, ("human_p_correct", f"'{rec['human_p_correct']}' is not a number")
        if not 0.0 <= value <= 1.0:
            return None, ("human_p_correct", f"{value} is outside 0-1")
        row["human_p_correct"] = value
    return row, None


def build_table(
    records: Iterable[dict],
    source: str,
    dataset: str,
    expected_options: int | None = None,
) -> tuple[pd.DataFrame, list[Reject]]:
    """Validate raw records into the canonical table.

    Args:
        records: dicts with ``question``, ``options`` (list), ``answer`` and optionally ``id``,
            ``category``, ``%A``…, ``human_p_correct``, other fields, and ``_line`` (source line number).
        source: file name used in rejects.
        dataset: value of the ``dataset`` column (and id prefix when a record has no id).
        expected_options: refuse rows with another option count (``None`` accepts 2 to 10).

    Returns:
        ``(table, rejects)``. Raises :class:`QuestionFileError` when no row is usable.
    """
    rows: list[dict] = []
    rejects: list[Reject] = []
    seen: dict[tuple, int] = {}
    n_records = 0
    for n_records, rec in enumerate(records, start=1):
        line = int(rec.get("_line", n_records))
        rid = rec.get("id")
        rid = f"{dataset}:{line}" if rid is None or str(rid).strip() == "" else str(rid).strip()
        row, problem = _check_record(rec, expected_options)
        if problem:
            rejects.append(Reject(rec.get("_file", source), line, problem[0], problem[1], rid))
            continue
        # an ordering with repeats (``pass``) or pacing stages (``stage``) shows a question more than once
        key = (rid, str(rec.get("pass", "")), str(rec.get("stage", "")))
        if key in seen:
            rejects.append(Reject(rec.get("_file", source), line, "id",
                                  f"duplicate id '{rid}' (first on line {seen[key]})", rid))
            continue
        seen[key] = line
        category = row.get("category")
        row["id"] = rid
        row["category"] = "Unknown" if category is None or str(category).strip() == "" else str(category).strip()
        row["dataset"] = dataset
        rows.append(row)
    if n_records == 0:
        raise QuestionFileError(f"{source}: the file holds no questions")
    if not rows:
        first = "; ".join(str(r) for r in rejects[:3])
        raise QuestionFileError(f"{source}: none of its {n_records} rows is usable (first problems: {first})")
    table = pd.DataFrame(rows)
    ordered = CORE_COLUMNS + [c for c in table.columns if c not in CORE_COLUMNS]
    return table[ordered].reset_index(drop=True), rejects


def rejects_path(output: str | Path) -> Path:
    """The rejects file that goes beside ``output``: ``out.csv`` -> ``out.rejects.csv``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rejects.csv")


def write_rejects(rejects: list[Reject], output: str | Path) -> Path | None:
    """Write ``rejects`` beside ``output`` (atomically); return the path, or ``None`` when there are none."""
    if not rejects:
        return None
    path = rejects_path(output)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "line", "field", "reason", "id"])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rejects)
    return path
