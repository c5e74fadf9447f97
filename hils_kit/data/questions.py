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
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from hils_kit.core.paths import atomic_path

LETTERS = "ABCDEFGHIJ"
CORE_COLUMNS = ["id", "question", "options", "answer", "category", "dataset"]
PCT_COLUMNS = [f"%{letter}" for letter in LETTERS]
_LETTER_PREFIX = re.compile(r"^\(?([A-Ja-j])[\.\):]?(?:\s+(.*))?$", re.S)
_LONE_LETTER = re.compile(r"^\(?([A-Ja-j])[\.\):]?$")  # "b", "B.", "(b)", "B)", "B:"
REJECTS_HEADER = ["file", "line", "field", "reason", "id"]
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Unicode category Cc but tab, LF, CR
SHARE_TOLERANCE = 2.0  # examinee shares of a row must sum to 100 ± this (percent points)


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


def normalise_answer(raw, options: list[str], letters: bool = False) -> str:
    """Turn an answer written as a letter, "B. text", "(b)", an option text or a 0-based int into a letter.

    A lone letter that is also the text of another option is refused as ambiguous, unless ``letters`` says
    the file's answers are letters throughout (see :func:`answers_are_letters`). Raises ``ValueError`` with
    the reason when the answer is not among the options.

    >>> normalise_answer("b", ["x", "y"]), normalise_answer("y", ["x", "y"]), normalise_answer(1, ["x", "y"])
    ('B', 'B', 'B')
    >>> normalise_answer(True, ["x", "y"])
    Traceback (most recent call last):
    ValueError: answer is a boolean (True), not a letter or an option text
    """
    n = len(options)
    span = f"A-{LETTERS[n - 1]}"
    if isinstance(raw, bool):
        raise ValueError(f"answer is a boolean ({raw}), not a letter or an option text")
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        raise ValueError("answer is empty")
    if isinstance(raw, (list, dict)):
        raise ValueError(f"answer is a JSON {type(raw).__name__}, not a letter or an option text")
    if isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer()):
        idx = int(raw)
        if not 0 <= idx < n:
            raise ValueError(f"answer index {idx} is not among {n} options (a number answer counts from 0)")
        return LETTERS[idx]
    if isinstance(raw, float):
        raise ValueError(f"answer {raw} is not a whole number, a letter or an option text")
    text = str(raw).strip()
    if not text:
        raise ValueError("answer is empty")
    stripped = [o.strip() for o in options]
    match = _LETTER_PREFIX.match(text)
    if match and not (match.group(2) is not None and text in stripped):
        letter, rest = match.group(1).upper(), (match.group(2) or "").strip()
        idx = LETTERS.index(letter)
        if idx >= n:
            raise ValueError(f"answer letter '{text[:40]}' is not among the options {span}")
        if rest and rest != stripped[idx]:
            raise ValueError(f"answer text '{rest[:40]}' does not match option {letter} '{options[idx][:40]}'")
        if not rest and not letters and text in stripped and stripped.index(text) != idx:
            raise ValueError(
                f"answer '{text}' is ambiguous: letter {letter} or the text of option "
                f"{LETTERS[stripped.index(text)]}; write it as '{letter}. {stripped[idx][:20]}'"
            )
        return letter
    if text in stripped:
        return LETTERS[stripped.index(text)]
    folded = [" ".join(o.split()).casefold() for o in stripped]
    key = " ".join(text.split()).casefold()
    if folded.count(key) == 1:
        return LETTERS[folded.index(key)]
    if text.lstrip("-").isdigit():
        raise ValueError(f"answer '{text}' is a number; write the letter ({span}): a number could count from 0 or 1")
    raise ValueError(f"answer '{text[:40]}' is neither a letter {span} nor the text of one of the options")


def answers_are_letters(records: list[dict]) -> bool:
    """Whether every non-empty answer of one file's ``records`` is a lone letter within its row's options.

    Such a file's answers are all read as letters, even where a letter is also an option's text (vitamins
    A, C, D, K); rows refused already (``_reject``) are no evidence either way.

    >>> answers_are_letters([{"options": ["A", "C", "D", "K"], "answer": "D"}, {"options": ["x", "y"], "answer": "(b)"}])
    True
    >>> answers_are_letters([{"options": ["A", "C", "D", "K"], "answer": "D"}, {"options": ["x", "y"], "answer": "y"}])
    False
    """
    for rec in records:
        options, raw = rec.get("options"), rec.get("answer")
        if rec.get("_reject") or not isinstance(options, (list, tuple)):
            continue
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and not raw.strip()):
            continue
        match = _LONE_LETTER.match(raw.strip()) if isinstance(raw, str) else None
        if match is None or LETTERS.index(match.group(1).upper()) >= len(options):
            return False
    return True


def control_character(text: str) -> str | None:
    """The first control character of ``text`` as ``U+XXXX`` (tab and line breaks allowed), else None.

    >>> control_character("a\\x00b"), control_character("line\\nbreak")
    ('U+0000', None)
    """
    match = _CONTROL.search(text)
    return f"U+{ord(match.group()):04X}" if match else None


def _shares(rec: dict, answer: str, scale: float) -> tuple[dict | None, tuple[str, str] | None]:
    """Examinee shares of a row as percent, ``human_p_correct``; or the (field, reason) refusing the row."""
    pct = [c for c in PCT_COLUMNS if c in rec and rec[c] is not None and str(rec[c]).strip() != ""]
    out: dict = {}
    for col in pct:
        try:
            value = float(rec[col])
        except (TypeError, ValueError):
            return None, (col, f"examinee share '{rec[col]}' is not a number")
        if not 0.0 <= value <= scale:  # also refuses nan
            return None, (col, f"examinee share {value} is outside 0-{scale:g}")
        out[col] = value * 100.0 / scale
    if pct:
        if f"%{answer}" not in pct:
            return None, (f"%{answer}", "examinee share of the correct option is missing")
        total = sum(out.values())
        if abs(total - 100.0) > SHARE_TOLERANCE:
            shown = f"{total * scale / 100:g}"
            return None, (
                "%A-%" + pct[-1][1],
                f"examinee shares sum to {shown}, not {scale:g} (± {SHARE_TOLERANCE * scale / 100:g})",
            )
        out["human_p_correct"] = out[f"%{answer}"] / 100.0
    return out, None


def _check_record(
    rec: dict,
    expected_options: int | None,
    share_scale: float = 100.0,
    refuse_repeats: bool = True,
    letters: bool = False,
) -> tuple[dict | None, tuple[str, str] | None]:
    """Validate one raw record (``letters``: its file's answers are letters throughout); return (clean row,
    None) or (None, (field, reason))."""
    if rec.get("_reject"):
        return None, rec["_reject"]
    question = rec.get("question")
    if question is None or (isinstance(question, float) and math.isnan(question)) or not str(question).strip():
        return None, ("question", "question is empty")
    if control := control_character(str(question)):
        return None, ("question", f"question text holds the control character {control}")
    options = rec.get("options")
    if not isinstance(options, (list, tuple)):
        return None, ("options", "options are missing")
    options = ["" if o is None or (isinstance(o, float) and math.isnan(o)) else str(o) for o in options]
    if len(options) < 2 or len(options) > len(LETTERS):
        return None, ("options", f"wrong option count: {len(options)} (need 2 to {len(LETTERS)})")
    if expected_options is not None and len(options) != expected_options:
        return None, ("options", f"wrong option count: {len(options)}, this format has {expected_options}")
    seen: dict[str, int] = {}
    for i, opt in enumerate(options):
        if not opt.strip():
            return None, (f"option {LETTERS[i]}", "option text is empty")
        if control := control_character(opt):
            return None, (f"option {LETTERS[i]}", f"option text holds the control character {control}")
        if opt.strip() in seen and refuse_repeats:
            return None, (
                f"option {LETTERS[i]}",
                f"options {LETTERS[seen[opt.strip()]]} and {LETTERS[i]} are identical ('{opt.strip()[:40]}')",
            )
        seen[opt.strip()] = i
    try:
        answer = normalise_answer(rec.get("answer"), options, letters)
    except ValueError as err:
        return None, ("answer", str(err))
    row = {k: v for k, v in rec.items() if not k.startswith("_")}
    row.update(question=str(question).strip(), options=[o.strip() for o in options], answer=answer)
    shares, problem = _shares(rec, answer, share_scale)
    if problem:
        return None, problem
    row.update(shares)
    if "human_p_correct" not in shares and rec.get("human_p_correct") not in (None, ""):
        try:
            value = float(rec["human_p_correct"])
        except (TypeError, ValueError):
            return None, ("human_p_correct", f"'{rec['human_p_correct']}' is not a number")
        if not 0.0 <= value <= 1.0:
            return None, ("human_p_correct", f"{value} is outside 0-1")
        row["human_p_correct"] = value
    return row, None


def share_scale(records: list[dict]) -> float:
    """100 when any examinee share (``%A``…) of a file is above 1, else 1 (the file gives fractions).

    >>> share_scale([{"%A": "0.7", "%B": "0.3"}]), share_scale([{"%A": "70", "%B": "30"}])
    (1.0, 100.0)
    """
    values = []
    for rec in records:
        for col in PCT_COLUMNS:
            value = rec.get(col)
            if value is None or value == "":
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isnan(number):
                values.append(number)
    return 1.0 if values and max(values) <= 1.0 else 100.0


def build_table(
    records: Iterable[dict],
    source: str,
    dataset: str,
    expected_options: int | None = None,
    shares_scale: float = 100.0,
    refuse_repeats: bool = True,
) -> tuple[pd.DataFrame, list[Reject]]:
    """Validate raw records into the canonical table.

    Args:
        records: dicts with ``question``, ``options`` (list), ``answer`` and optionally ``id``,
            ``category``, ``%A``…, ``human_p_correct``, other fields, and ``_line`` (source line number).
        source: file name used in rejects.
        dataset: value of the ``dataset`` column (and id prefix when a record has no id).
        expected_options: refuse rows with another option count (``None`` accepts 2 to 10).
        shares_scale: 100 when the examinee shares are percent, 1 when fractions (see :func:`share_scale`);
            they are stored as percent.
        refuse_repeats: refuse a question (same text and options) already seen under another id, and a
            question with two identical options (off only for the embedded data sets, kept as published).

    Returns:
        ``(table, rejects)``. Raises :class:`QuestionFileError` when no row is usable.

    How answers are read is decided per file (``_file``, else ``source``): letters when the file's answers
    are letters throughout (:func:`answers_are_letters`), else letters or option texts, the ambiguous refused.
    """
    records = list(records)
    files: dict[str, list[dict]] = {}
    for rec in records:
        files.setdefault(rec.get("_file", source), []).append(rec)
    letter_files = {name for name, recs in files.items() if answers_are_letters(recs)}
    rows: list[dict] = []
    rejects: list[Reject] = []
    seen: dict[tuple, int] = {}
    texts: dict[tuple, tuple[str, int]] = {}
    n_records = 0
    for n_records, rec in enumerate(records, start=1):
        line = int(rec.get("_line", n_records))
        rid = rec.get("id")
        rid = f"{dataset}:{line}" if rid is None or str(rid).strip() == "" else str(rid).strip()
        letters = rec.get("_file", source) in letter_files
        row, problem = _check_record(rec, expected_options, shares_scale, refuse_repeats, letters)
        if problem:
            rejects.append(Reject(rec.get("_file", source), line, problem[0], problem[1], rid))
            continue
        # an ordering with repeats (``pass``) or pacing stages (``stage``) shows a question more than once
        key = (rid, str(rec.get("pass", "")), str(rec.get("stage", "")))
        if key in seen:
            rejects.append(
                Reject(rec.get("_file", source), line, "id", f"duplicate id '{rid}' (first on line {seen[key]})", rid)
            )
            continue
        seen[key] = line
        text_key = (" ".join(row["question"].split()), tuple(row["options"]))
        first = texts.setdefault(text_key, (rid, line))
        if refuse_repeats and first[0] != rid:
            rejects.append(
                Reject(
                    rec.get("_file", source),
                    line,
                    "question",
                    f"the same question as id '{first[0]}' (line {first[1]}); the first is kept",
                    rid,
                )
            )
            continue
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
    """Write ``rejects`` beside ``output`` (atomically); return the path, or ``None`` when there are none.

    With no rejects, a rejects file left there by an earlier run of the kit (recognised by its header) is
    removed, so it cannot be mistaken for this output's; any other file of that name is left alone.
    """
    path = rejects_path(output)
    if not rejects:
        if path.is_file() and _is_kit_rejects(path):
            path.unlink()
        return None
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=REJECTS_HEADER)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rejects)
    return path


def _is_kit_rejects(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.readline().rstrip("\r\n") == ",".join(REJECTS_HEADER)
    except (OSError, UnicodeDecodeError):
        return False
