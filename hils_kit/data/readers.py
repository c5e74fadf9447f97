"""Reading question files safely: text encodings, JSON records and CSV rows with their line numbers, and the
errors that say what a file is when it is not what it claims (an Excel file, a PDF, a wrong header).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "q.csv"
>>> _ = path.write_text("a,b\\n1,2\\n")
>>> csv_rows(path, path.read_text())[0]
['a', 'b']
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from hils_kit.data.questions import LETTERS, QuestionFileError, Reject

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
