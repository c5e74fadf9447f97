"""The analysis CSVs of ``04_analysis`` as tables for people, as the study index shows them.

:func:`views` turns an analysis CSV into tables of at most :data:`MAX_COLUMNS` columns: the columns people need,
with units in their headers, numbers rounded, p-values by :func:`~hils_kit.stats.family.format_p`, and the columns
whose value is the same in every row moved into a note (the caption). Results matrices (the accuracy table) are
split into several tables instead, so that no test set is left out.

>>> frame = pd.DataFrame({"strategy": ["random", "curriculum"], "p_value": [0.5, 0.00001], "unit": ["points"] * 2})
>>> view = views("other", frame)[0]
>>> view.table.to_dict("list"), view.notes
({'strategy': ['random', 'curriculum'], 'p value': ['0.5', '< 1e-4']}, ['unit: points'])
"""

from __future__ import annotations

import html
import itertools
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hils_kit.order.registry import BASELINE_NAME, strategy_name
from hils_kit.stats.family import format_p, is_p_column

MAX_COLUMNS = 8  # the most a table shows: more do not fit one screen's width
EMPTY = "—"
METRICS = {"accuracy": "accuracy (points)", "gold log-prob": "gold log-prob (nats)", "Brier": "Brier score"}
KEYS = [("scenario", "labels"), ("model", "model"), ("dataset", "test set")]


@dataclass
class View:
    """A table as the index shows it: ``table`` holds the cell texts under their headers, ``classes`` the CSS class
    of each cell (``num``, ``id`` for a long id that may break between its parts, ``best`` for the best value),
    ``notes`` what every row shares."""

    table: pd.DataFrame
    classes: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def number(value, digits: int | None = None) -> str:
    """A number as text: ``digits`` decimals, or else three significant digits (no exponent from 100 up).

    >>> number(2045.4545), number(0.04012), number(3), number(57.58, 1), number(-0.001, 1), number(float("inf"))
    ('2,045', '0.0401', '3', '57.6', '0.0', '∞')
    """
    if pd.isna(value):
        return EMPTY
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if digits is not None:
        return _unsigned_zero(f"{value:.{digits}f}")
    if value.is_integer() or abs(value) >= 100:
        return _unsigned_zero(f"{value:,.0f}")
    return _unsigned_zero(f"{value:.3g}")


def _unsigned_zero(text: str) -> str:
    """ "-0.0" (a small negative number rounded) as "0.0"."""
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def difference_text(value, metric: str, sign: str = "+") -> str:
    """A difference in the metric's unit: accuracy points to one decimal, log-prob and Brier to three digits."""
    if pd.isna(value):
        return EMPTY
    text = f"{value:{sign}.1f}" if metric == "accuracy" else f"{value:{sign}.3g}"
    return text if sign == "+" else _unsigned_zero(text)


def interval_text(low, high, metric: str = "accuracy") -> str:
    """An interval in the metric's unit: ``low to high``."""
    if pd.isna(low) or pd.isna(high):
        return EMPTY
    return f"{difference_text(low, metric, '')} to {difference_text(high, metric, '')}"


@dataclass(frozen=True)
class Column:
    """One column of a view: its header (with the unit) and the text of its cells from the CSV's rows; ``kind``
    is the cells' CSS class; ``optional`` columns are dropped first when a table has more than MAX_COLUMNS."""

    header: str
    text: Callable[[pd.DataFrame], pd.Series]
    kind: str = "num"
    optional: bool = False


def _col(name: str, digits: int | None = None, scale: float = 1) -> Callable[[pd.DataFrame], pd.Series]:
    """The CSV column ``name`` (× ``scale``) as numbers, or as p-values for a p column."""
    if is_p_column(name):
        return lambda f: f[name].map(format_p)
    return lambda f: (f[name] * scale).map(lambda v: number(v, digits))


def _label(name: str, names: Callable = str) -> Callable[[pd.DataFrame], pd.Series]:
    """The CSV column ``name`` as text, through ``names`` (say the display name of a strategy key)."""
    return lambda f: f[name].map(lambda v: EMPTY if pd.isna(v) else names(v))


def _by_metric(name: str) -> Callable[[pd.DataFrame], pd.Series]:
    """A difference column in its metric's unit."""
    return lambda f: pd.Series([difference_text(v, m) for v, m in zip(f[name], f["metric"])], index=f.index)


def _span(low: str, high: str, metric: bool = True) -> Callable[[pd.DataFrame], pd.Series]:
    """An interval from two columns, in the metric's unit (accuracy points without a ``metric`` column)."""
    return lambda f: pd.Series(
        [
            interval_text(lo, hi, m)
            for lo, hi, m in zip(f[low], f[high], f["metric"] if metric else ["accuracy"] * len(f))
        ],
        index=f.index,
    )


def _pair(a: str, b: str) -> Callable[[pd.DataFrame], pd.Series]:
    """Two counts as "a / b" (runs of the strategy / of its baseline)."""
    return lambda f: f[a].map(number) + " / " + f[b].map(number)


def _where() -> list[Column]:
    """The label source, model and test set of a row: shown where they vary, else in the caption."""
    return [Column(header, _label(name), "") for name, header in KEYS]


def _claims(baseline: bool) -> list[Column]:
    """A comparisons table (comparisons.csv, placebo.csv, matched.csv), one claim per row."""
    against = [Column("against", _label("baseline", strategy_name), "")] if baseline else []
    return [
        *_where(),
        Column("strategy", _label("strategy", strategy_name), ""),
        *against,
        Column("metric", _label("metric", lambda m: METRICS.get(m, m)), ""),
        Column("claim", _label("claim"), ""),
        Column("difference", _by_metric("estimate")),
        Column("95 % CI", _span("ci_low", "ci_high")),
        Column("Holm p", _col("p_holm")),
        Column("p", lambda f: f["p_value"].fillna(f["p_models"]).map(format_p), optional=True),
        Column("BH p", _col("p_bh"), optional=True),
        Column(
            f"runs (strategy / {'baseline' if baseline else BASELINE_NAME})",
            _pair("runs", "baseline_runs"),
            optional=True,
        ),
    ]


VIEWS: dict[str, list[Column]] = {
    "comparisons": _claims(baseline=False),
    "placebo": _claims(baseline=True),
    "matched": _claims(baseline=True),
    "power": [
        *_where(),
        Column("strategy", _label("strategy", strategy_name), ""),
        Column("MDE (points)", _col("mde", 1)),
        Column("MDE, trained models (points)", _col("mde_models", 1)),
        Column("target (points)", _col("target", 1)),
        Column("runs needed", _col("runs_needed")),
        Column("questions needed", _col("questions_needed")),
        Column("claim", _label("claim"), "", optional=True),
        Column(f"runs (strategy / {BASELINE_NAME})", _pair("runs", "baseline_runs"), optional=True),
        Column("questions", _col("n_questions"), optional=True),
        Column("family size", _col("family_size"), optional=True),
        Column("run variance", _label("power_from"), "", optional=True),
    ],
    "meta_analysis": [
        Column("strategy", _label("strategy", strategy_name), ""),
        Column("metric", _label("metric", lambda m: METRICS.get(m, m)), ""),
        Column("pooled difference", _by_metric("pooled")),
        Column("95 % CI", _span("ci_low", "ci_high")),
        Column("p", _col("p_value")),
        Column("95 % prediction interval", _span("pi_low", "pi_high")),
        Column("I² (%)", _col("i2", 0, 100)),
        Column(f"beats {BASELINE_NAME} (% of cells)", _col("share_positive", 0, 100)),
        Column("τ²", _col("tau2"), optional=True),
        Column("cells", _col("k"), optional=True),
        Column("method", _label("method"), "", optional=True),
    ],
    "variance_components": [
        *_where(),
        Column("strategy", _label("strategy", strategy_name), ""),
        Column("against", _label("baseline", strategy_name), "", optional=True),
        Column("metric", _label("metric", lambda m: METRICS.get(m, m)), ""),
        Column("question variance", _col("var_question")),
        Column("run variance", _col("var_run")),
        Column("question × strategy variance", _col("var_question_by_strategy")),
        Column("residual variance", _col("var_residual")),
        Column("run sd, strategy", _col("run_sd_a"), optional=True),
        Column("run sd, baseline", _col("run_sd_b"), optional=True),
        Column("runs (strategy / baseline)", _pair("runs", "baseline_runs"), optional=True),
    ],
    "audit": [
        Column("cell", _label("cell_id"), "id"),
        Column("order as planned", _label("train_audit_ok", lambda ok: "yes" if ok else "NO"), ""),
        Column("examples fed", _col("train_n_examples_fed")),
        Column("training (s)", _col("train_train_seconds", 1)),
        Column("final loss", _col("train_final_loss", 3)),
        Column("probe share (%)", _col("probe_share_of_training", 1, 100)),
        Column("re-scoring share (%)", _col("rescoring_share_of_training", 1, 100)),
        Column("reviews", _col("reviews")),
        Column("placebo scores |r|", _col("placebo_scores_max_abs_rank_r", 2), optional=True),
        Column("placebo difficulty r", _col("placebo_difficulty_rank_r", 2), optional=True),
        Column("placebo category κ", _col("placebo_category_kappa", 2), optional=True),
    ],
    "letter_prior": [
        Column("cell", _label("cell_id"), "id"),
        Column("test set", _label("dataset"), ""),
        Column("accuracy (%)", _col("accuracy", 1, 100)),
        Column("letter prior alone (%)", _col("letter_prior_accuracy", 1, 100)),
        Column("majority letter (%)", _col("majority_baseline", 1, 100)),
        Column(
            "most predicted letter (% of answers)",
            lambda f: (
                f["top_predicted"].astype(str) + " (" + f["top_predicted_share"].map(lambda v: number(v * 100, 0)) + ")"
            ),
            "",
        ),
        Column("gold letter at the end of the order", _label("tail_top_letter"), ""),
    ],
    "spread": [
        Column("strategy", _label("strategy", strategy_name), ""),
        *_where()[1:],
        Column("runs", _col("runs")),
        Column("accuracy (%)", _col("accuracy", 1)),
        Column("95 % CI", _span("ci_low", "ci_high", metric=False)),
        Column("run sd (points)", _col("run_sd", 1)),
        Column("run range (%)", _span("run_min", "run_max", metric=False)),
        Column("questions", _col("n_questions"), optional=True),
    ],
    "forgetting": [
        Column("strategy", _label("strategy", strategy_name), ""),
        Column("learning events per question", _col("learning_events", 2)),
        Column("forgetting events per question", _col("forgetting_events", 2)),
        Column("ever forgotten (%)", _col("ever_forgotten", 1, 100)),
        Column("log-prob lost, fed first (nats)", _col("early_retention_drop", 3)),
        Column("log-prob lost, fed last (nats)", _col("late_retention_drop", 3)),
        Column("difficulty vs step first right (r)", _col("easy_first_r", 2)),
        Column("cells", _col("cells"), optional=True),
        Column("probe questions", _col("questions"), optional=True),
    ],
    "best_gains": [
        Column("column", _label("column"), ""),
        Column("column kind", _label("group"), ""),
        Column("best strategy", _label("best"), ""),
        Column(f"gain over {BASELINE_NAME} (points)", _col("gain", 1)),
    ],
    "wins": [
        Column("strategy", _label("strategy"), ""),
        Column("wins (columns)", _col("wins", 2)),
        Column("share of columns (%)", _col("share", 1, 100)),
    ],
}
MATRICES = {"table": 1, "label_sources": 1}  # results matrices (strategy × column, points): decimals shown
NOTES = {"variance_components": "Variances in the metric's unit squared (accuracy: points²)."}


def read_table(path: Path) -> pd.DataFrame:
    """An analysis CSV with its index as a plain column; an unnamed index (``wins.csv``) is named ``strategy``."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return frame.rename(columns={frame.columns[0]: "strategy"}) if frame.columns[0].startswith("Unnamed") else frame


def views(kind: str, frame: pd.DataFrame) -> list[View]:
    """The tables that show an analysis CSV of artefact ``kind`` (see the module docstring)."""
    if kind in MATRICES:
        return _matrix(frame, MATRICES[kind], best=kind == "table")
    columns = VIEWS.get(kind) or [Column(str(c).replace("_", " "), _generic(frame[c]), "") for c in frame.columns]
    view = _records(frame, [c for c in columns if _has(frame, c)])
    if kind in NOTES:
        view.notes.append(NOTES[kind])
    return [view]


def _generic(values: pd.Series) -> Callable[[pd.DataFrame], pd.Series]:
    """A column of a table without a view: numbers rounded, p-values formatted, anything else as text."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return _col(values.name) if numeric else _label(values.name)


def _has(frame: pd.DataFrame, column: Column) -> bool:
    """Whether ``frame`` holds what ``column`` shows (an older CSV may lack a column)."""
    try:
        column.text(frame.head(1))
    except KeyError:
        return False
    return True


def _records(frame: pd.DataFrame, columns: list[Column]) -> View:
    """One row per CSV row: empty columns left out, columns with one value in every row noted (unless that leaves
    one column), at most MAX_COLUMNS (optional ones dropped first, then the last)."""
    texts = {c.header: c.text(frame).astype(str).tolist() for c in columns}
    filled = [c for c in columns if set(texts[c.header]) != {EMPTY}]
    constant = [c for c in filled if len(frame) > 1 and len(set(texts[c.header])) == 1]
    if len(filled) - len(constant) < 2:  # a table of nothing but its first column says less than one of constants
        constant = []
    shown = [c for c in filled if c not in constant]
    notes = [f"{c.header}: {texts[c.header][0]}" for c in constant]
    while len(shown) > MAX_COLUMNS:
        optional = [c for c in shown if c.optional]
        shown.remove(optional[-1] if optional else shown[-1])
    table = pd.DataFrame({c.header: texts[c.header] for c in shown})
    classes = pd.DataFrame({c.header: [c.kind] * len(frame) for c in shown})
    return View(table, classes, notes)


def _matrix(frame: pd.DataFrame, digits: int, best: bool) -> list[View]:
    """A strategy × columns matrix of points; ``best``: the highest value of each column is marked."""
    table, classes = frame.iloc[:, :1].astype(str), pd.DataFrame({frame.columns[0]: [""] * len(frame)})
    for column in frame.columns[1:]:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        table[column] = numbers.map(lambda v: number(v, digits))
        top = numbers.max()
        classes[column] = ["num best" if best and math.isclose(v, top) else "num" for v in numbers.fillna(-math.inf)]
    return split(View(table, classes))


def split(view: View, most: int = MAX_COLUMNS) -> list[View]:
    """A matrix wider than ``most`` columns as several tables, each starting with the matrix's first column."""
    step = most - 1
    values = list(view.table.columns[1:])
    parts = [[view.table.columns[0], *values[start : start + step]] for start in range(0, len(values), step)]
    parts = parts or [view.table.columns[:1]]
    return [View(view.table[part], view.classes[part], view.notes if i == 0 else []) for i, part in enumerate(parts)]


# ----------------------------------------------------------------------------- as HTML


def breakable(text: str) -> str:
    """An id as HTML that may break after its underscores (model__labels__strategy__part__seed, mmlu_medical).

    >>> breakable("smollm2__llm__interleaved_curriculum")
    'smollm2__<wbr>llm__<wbr>interleaved_<wbr>curriculum'
    """
    return re.sub(r"(_+)", r"\1<wbr>", html.escape(text))


def relative_href(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def csv_links(paths: Sequence[Path], base: Path) -> str:
    links = ", ".join(f'<a href="{html.escape(relative_href(p, base))}">{html.escape(p.name)}</a>' for p in paths)
    return f"full table{'s' if len(paths) > 1 else ''}: {links}" if paths else ""


def view_html(view: View, title: str, csv: Sequence[Path] = (), base: Path = Path(".")) -> str:
    """A table of the index page: the caption (``title``, the values every row shares, links to the ``csv`` files
    behind it, relative to ``base``), then the rows, the first column as row headers.

    >>> import pandas as pd
    >>> view = View(pd.DataFrame({"strategy": ["Curriculum"], "gain (points)": ["+1.2"]}),
    ...             pd.DataFrame({"strategy": [""], "gain (points)": ["num"]}))
    >>> print(view_html(view, "Gains"))  # doctest: +ELLIPSIS
    <table><caption><span class="title">Gains</span></caption>...<td class="num">+1.2</td></tr></tbody></table>
    """
    notes = html.escape(_sentences(view.notes))
    parts = [f'<span class="title">{html.escape(title)}</span>', notes and f'<span class="notes">{notes}</span>']
    caption = " ".join(part for part in [*parts, csv_links(csv, base)] if part)
    if view.table.empty:
        return f'<p class="meta">{caption} (no rows)</p>'
    numeric = [all("num" in c for c in view.classes[column]) for column in view.table.columns]
    head = "".join(_cell("th", c, "num" if n else "", "col") for c, n in zip(view.table.columns, numeric))
    rows = []
    for texts, classes in zip(view.table.itertuples(index=False), view.classes.itertuples(index=False)):
        first = _cell("th", texts[0], classes[0], scope="row")
        rows.append(f"<tr>{first}{''.join(_cell('td', t, c) for t, c in zip(texts[1:], classes[1:]))}</tr>")
    return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(tag: str, text, cls: str = "", scope: str = "") -> str:
    """A table cell; an id (``cls`` "id") or a column header (``scope`` "col") may break after underscores."""
    attributes = (f' scope="{scope}"' if scope else "") + (f' class="{cls}"' if cls else "")
    wraps = cls == "id" or scope == "col"
    return f"<{tag}{attributes}>{breakable(str(text)) if wraps else html.escape(str(text))}</{tag}>"


def _sentences(notes: list[str]) -> str:
    """Notes as one text: "column: value" notes joined by semicolons, sentences as they are.

    >>> _sentences(["labels: llm", "model: tiny", "Variances in points².", "runs: 3"])
    'labels: llm; model: tiny. Variances in points². runs: 3.'
    """
    parts = []
    for sentences, group in itertools.groupby(notes, key=lambda note: note.endswith(".")):
        parts += list(group) if sentences else ["; ".join(group) + "."]
    return " ".join(parts)
