"""Difficulty label files, in the kit's layout or the authors' released one, read in one place.

Two layouts, told apart by the header:

=========================  ==================================================================================
``id,difficulty``          the kit's: one row per question id; other columns (e.g. ``p_correct_<model>``) ride
                           along
``Index,llm_difficulty``   the authors' (``llm_difficulty_lek.csv``, ``llm_difficulty_medqa.csv``): ``Index`` is
                           the 0-based data row of the question file, counting every data row, refused ones
                           included; the file must have one row per data row of the question file
=========================  ==================================================================================

Difficulties must lie in [0, 1] (higher = harder); a file on another scale is divided by ``scale`` on request
(``--difficulty-scale 100`` for percent). Rows with a blank id (the trailing ``,`` rows a spreadsheet exports)
are skipped with a note; a duplicated id, a value that is not a number, inf or NaN is an error naming the
file, line, id and value.

>>> import pandas as pd, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
>>> _ = path.write_text("Index,llm_difficulty\\n0,0.2\\n1,0.9\\n")
>>> questions = pd.DataFrame({"id": ["q7", "q8"], "source_row": [1, 0]})
>>> read_labels(path, questions, data_rows=2).to_dict("list")
{'id': ['q7', 'q8'], 'difficulty': [0.9, 0.2]}
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from hils_kit.data.questions import QuestionFileError
from hils_kit.data.readers import csv_rows, read_text

log = logging.getLogger(__name__)
AUTHORS_LAYOUT = ("Index", "llm_difficulty")


class LabelFileError(QuestionFileError):
    """A labels file that cannot be used as it is."""


def label_layout(header: list[str]) -> str:
    """``"index"`` for the authors' ``Index,llm_difficulty``, ``"id"`` for the kit's layout.

    >>> label_layout(["Index", "llm_difficulty"]), label_layout(["id", "difficulty", "p_correct_tiny"])
    ('index', 'id')
    """
    if set(AUTHORS_LAYOUT) <= set(header):
        return "index"
    if "id" in header:
        return "id"
    raise ValueError(
        f"the header ({', '.join(header)}) is neither the kit's 'id,difficulty' nor the authors' 'Index,llm_difficulty'"
    )


def _number(text: str, where: str, column: str, scale: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelFileError(f"{where}: {column} '{text}' is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise LabelFileError(f"{where}: {column} is {text.strip()}; give a number in [0, 1]")
    value /= scale
    if not 0.0 <= value <= 1.0:
        hint = " (labels in percent? pass --difficulty-scale 100)" if scale == 1 and value <= 100 else ""
        raise LabelFileError(
            f"{where}: {column} {text.strip()} is outside [0, 1] after dividing by {scale:g}"
            if scale != 1
            else f"{where}: {column} {text.strip()} is outside [0, 1]{hint}"
        )
    return value


def read_label_file(path: str | Path, scale: float = 1.0, value: str = "difficulty") -> tuple[str, pd.DataFrame]:
    """The layout and rows of a labels file: ``id`` (or ``Index``) and its columns, ``value`` checked.

    In the authors' layout ``llm_difficulty`` becomes ``difficulty`` and ``Index`` an int.
    """
    path = Path(path)
    if not scale > 0 or math.isinf(scale):
        raise LabelFileError(f"{path}: the difficulty scale must be a positive number, not {scale}")
    header, rows = csv_rows(path, read_text(path))
    try:
        layout = label_layout(header)
    except ValueError as err:
        raise LabelFileError(f"{path}: {err}") from None
    key = "Index" if layout == "index" else "id"
    column = "llm_difficulty" if layout == "index" else value
    keep, blank, seen = [], [], {}
    for line, fields in rows:
        rec = dict(zip(header, (f.strip() for f in fields)))
        if len(fields) > len(header):
            raise LabelFileError(f"{path}: line {line}: {len(fields)} fields, the header has {len(header)}")
        name = rec.get(key, "")
        if not name:
            blank.append(line)
            continue
        where = f"{path}: line {line}, {key} {name}"
        if name in seen:
            raise LabelFileError(f"{where}: duplicate {key} (first on line {seen[name]})")
        seen[name] = line
        if layout == "index" and not name.isdigit():
            raise LabelFileError(f"{where}: Index must be a row number 0, 1, 2, ...")
        if column in rec:
            if rec[column] == "":
                raise LabelFileError(f"{where}: no {column} value")
            rec[column] = _number(rec[column], where, column, scale)
        keep.append(rec)
    if blank:
        log.warning(
            "%s: %d row(s) without %s skipped (line %s)",
            path,
            len(blank),
            key,
            ", ".join(map(str, blank[:5])) + (" ..." if len(blank) > 5 else ""),
        )
    if not keep:
        raise LabelFileError(f"{path}: holds no label rows")
    table = pd.DataFrame(keep, columns=header)
    if layout == "index":
        table = table[list(AUTHORS_LAYOUT)].rename(columns={"llm_difficulty": "difficulty"})
        table["Index"] = table["Index"].astype(int)
    for col in table.columns:
        if col not in (key, column):
            converted = pd.to_numeric(table[col].replace("", None), errors="coerce")
            if converted.notna().sum() == (table[col] != "").sum():
                table[col] = converted
    return layout, table


def read_labels(
    path: str | Path,
    questions: pd.DataFrame,
    scale: float = 1.0,
    data_rows: int | None = None,
    value: str = "difficulty",
) -> pd.DataFrame:
    """Labels for every question of ``questions`` (in its order): ``id`` plus the file's label columns.

    Args:
        path: labels CSV in either layout (see the module docstring).
        questions: the question table; the authors' layout needs its ``source_row`` column.
        scale: divide the difficulty values by this first (100 for percent).
        data_rows: the question file's data-row count (refused rows included), checked against the authors'
            layout; ``None`` when unknown (a saved subset).
        value: the difficulty column of the kit's layout, checked to lie in [0, 1] when present.
    """
    path = Path(path)
    layout, table = read_label_file(path, scale, value)
    ids = questions["id"].astype(str)
    if layout == "index":
        if data_rows is not None and len(table) != data_rows:
            raise LabelFileError(
                f"{path}: {len(table)} label rows (Index,llm_difficulty) but the question file has "
                f"{data_rows} data rows; the authors' layout needs one row per data row of the "
                "very file it was made for"
            )
        if "source_row" not in questions or questions["source_row"].isna().any():
            raise LabelFileError(
                f"{path}: labels keyed by Index (row number) need questions read from one file, "
                "which records each question's row; use an id,difficulty file instead"
            )
        by_row = table.set_index("Index")["difficulty"]
        rows = questions["source_row"].astype(int)
        found = rows.isin(by_row.index)
        labels = pd.DataFrame({"id": ids.to_numpy(), "difficulty": rows.map(by_row).to_numpy()})
        missing = ids[~found.to_numpy()]
    else:
        table["id"] = table["id"].astype(str)
        labels = ids.to_frame("id").merge(table, on="id", how="left", validate="one_to_one")
        missing = ids[~ids.isin(table["id"]).to_numpy()]
        extra = int((~table["id"].isin(ids)).sum())
        if extra:
            log.info("%s: %d label row(s) are for questions not in the data; ignored", path, extra)
    if len(missing):
        raise LabelFileError(
            f"{path}: no labels for {len(missing)} of {len(ids)} questions (e.g. {', '.join(missing.head(3))})"
        )
    return labels
