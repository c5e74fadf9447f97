"""Small tables for people: what a notebook shows instead of a raw dict.

Headers read as words (``train_seconds`` → ``train seconds``), numbers are rounded, and there is no index column.
The notebooks' HTML reports show exactly these tables.

>>> print(record_table({"steps": 16, "train_seconds": 1.2345, "share": 0.25}, percent=("share",)).to_string())
steps train seconds share
16 1.234 25.0%
<BLANKLINE>
>>> print(key_value_table({"strategy": "blocked", "test_sets": ["medqa", "mmlu_medical"]}).to_string())
name value
strategy blocked
test sets medqa, mmlu_medical
<BLANKLINE>
"""

from __future__ import annotations

import pandas as pd


def _header(key) -> str:
    return str(key).replace("_", " ")


def _value(value) -> object:
    """A value as a table cell: lists joined, ``None`` as a dash, the rest unchanged."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return "–" if value is None else value


def frame_table(frame: pd.DataFrame, caption: str | None = None, digits: int = 3, percent: tuple[str, ...] = ()):
    """``frame`` as a pandas ``Styler``: headers as words, floats to ``digits`` decimals (the ``percent``
    columns as percentages), no index column, an optional caption."""
    frame = frame.rename(columns=_header)
    percent = tuple(_header(c) for c in percent)
    formats = {
        c: "{:.1%}" if c in percent else f"{{:.{digits}f}}"
        for c in frame.columns
        if pd.api.types.is_float_dtype(frame[c])
    }
    styler = frame.style.format(formats, na_rep="–").hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def record_table(record: dict, caption: str | None = None, digits: int = 3, percent: tuple[str, ...] = ()):
    """One row: the keys of ``record`` as headers (see :func:`frame_table`)."""
    return frame_table(pd.DataFrame([{k: _value(v) for k, v in record.items()}]), caption, digits, percent)


def key_value_table(record: dict, caption: str | None = None):
    """Two columns, ``name`` and ``value``, a row per key: for long records such as a notebook's parameters."""
    rows = [{"name": _header(k), "value": str(_value(v))} for k, v in record.items()]
    return frame_table(pd.DataFrame(rows, columns=["name", "value"]), caption).set_properties(**{"text-align": "left"})
