"""HTML reports of a study: every executed notebook without its code, and one index page.

The index page is drawn from ``runs/<study>/manifest.json`` alone (:func:`hils_kit.study.jobs.write_manifest`).

Both render offline: the notebook pages are nbconvert's ``lab`` template with the script tags that would
fetch require.js, MathJax, mermaid and the widget manager from CDNs removed (text, tables and PNG figures
are inline), and the index is a single page with inline CSS and base64 figures.

>>> notebook_html("runs/default/04_analysis.ipynb", "reports/default/04_analysis.html")   # doctest: +SKIP
PosixPath('reports/default/04_analysis.html')
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
import math
import os
from pathlib import Path

import pandas as pd

from hils_kit import __version__
from hils_kit.analyse.results import read_manifest
from hils_kit.core.layout import ARTEFACT_INDEX
from hils_kit.core.paths import write_text_atomic
from hils_kit.stats.family import format_p, is_p_column

# nbconvert's lab template, minus every <script> that loads from the network
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
"""
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


_QUIET_EXPORTER_LOG = logging.getLogger("hils_kit.study.reports.nbconvert")
_QUIET_EXPORTER_LOG.setLevel(logging.ERROR)


def notebook_html(notebook: str | Path, target: str | Path) -> Path:
    """Write the executed ``notebook`` as HTML without code cells or prompts to ``target`` (atomically)."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.pop("widgets", None)  # widget state needs the widget manager from a CDN
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(_WIDGET_MIME, None)  # the text/plain fallback stays
    exporter = HTMLExporter(
        template_name="lab",
        template_file="hils_offline.html.j2",
        extra_loaders=[DictLoader({"hils_offline.html.j2": _OFFLINE_TEMPLATE})],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        log=_QUIET_EXPORTER_LOG,  # it warns about every figure without alt text, which plots never have
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": Path(notebook).stem}})
    return write_text_atomic(target, body)


# ----------------------------------------------------------------------------- index page

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0;
       background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 8px; }
.meta { color: #656d76; font-size: 13px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 22px; } .card span { color: #656d76; font-size: 13px; }
.card.bad { border-color: #cf222e; background: #ffebe9; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 14px; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 10px; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.best { font-weight: 700; }
.status { border-radius: 10px; padding: 1px 8px; font-size: 12px; }
.done { background: #dafbe1; color: #116329; } .failed { background: #ffebe9; color: #a40e26; }
.pending { background: #eaeef2; color: #57606a; }
.failures { border: 2px solid #cf222e; border-radius: 8px; padding: 4px 16px 10px; background: #fff8f7; }
.failures h2 { color: #a40e26; border: 0; margin-top: 12px; }
.findings { border-left: 4px solid #0969da; background: #ddf4ff; padding: 2px 16px; margin: 12px 0 20px; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: 6px 10px; border-radius: 6px; font-size: 13px;
      margin: 4px 0 12px; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; border: 1px solid #d8dee4; }
figcaption { color: #656d76; font-size: 13px; }
"""


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def _link(entry: dict, run_dir: Path, base: Path, text: str) -> str:
    """A link to the entry's report, or plain text when it has none."""
    report = run_dir / entry["report"]
    if not report.exists():
        return html.escape(text)
    return f'<a href="{html.escape(_href(report, base))}">{html.escape(text)}</a>'


def _href(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _status(entry: dict) -> str:
    return f'<span class="status {entry["status"]}">{entry["status"]}</span>'


def table_html(table: pd.DataFrame) -> str:
    """A results table (strategy x columns, accuracy %): one decimal, the best value of each column in bold."""
    best = {c: table[c].max() for c in table.columns if pd.api.types.is_numeric_dtype(table[c])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [table.index.name or "", *table.columns])
    rows = []
    for index, row in table.iterrows():
        cells = [f"<th>{html.escape(str(index))}</th>"]
        for column, value in row.items():
            if column in best:
                text = "–" if pd.isna(value) else f"{value:.1f}"
                bold = " best" if not pd.isna(value) and math.isclose(value, best[column]) else ""
                cells.append(f'<td class="num{bold}">{text}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _frame_html(frame: pd.DataFrame) -> str:
    """A plain table: numbers to at most 4 significant decimals, p-values by :func:`~hils_kit.stats.family.format_p`,
    text escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns])
    rows = []
    for index, row in frame.iterrows():
        cells = [f"<th>{html.escape(str(index))}</th>"]
        for column, value in row.items():
            if isinstance(value, float) and is_p_column(column):  # "< 1e-4", never 0
                cells.append(f'<td class="num">{format_p(value)}</td>')
            elif isinstance(value, float):
                cells.append(f'<td class="num">{"–" if math.isnan(value) else f"{value:.4g}"}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _results(analysis_dir: Path) -> str:
    """What ``04_analysis`` found, in its order: the findings first, then every artefact listed in
    ``artefacts.json`` (:data:`hils_kit.core.layout.ARTEFACTS`) with its caption."""
    index = analysis_dir / ARTEFACT_INDEX
    if not index.is_file():
        return '<p class="meta">No analysis results: 04_analysis has not finished.</p>'
    listed = json.loads(index.read_text(encoding="utf-8"))
    parts = []
    if listed["findings"]:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in listed["findings"])
        parts.append(
            f'<section class="findings"><h3>What this study can and cannot tell</h3><ul>{items}</ul></section>'
        )
    for entry in listed["artefacts"]:
        path = analysis_dir / entry["file"]
        if not path.is_file():
            continue
        parts.append(f"<h3>{html.escape(entry['title'])}</h3>")
        if path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(entry["title"])}"></figure>'
            )
        elif entry["kind"] == "table":
            parts.append(table_html(pd.read_csv(path, index_col=0)))
        else:
            parts.append(_frame_html(pd.read_csv(path, index_col=0)))
    return "\n".join(parts)


def write_index(manifest: str | Path, target: str | Path) -> Path:
    """Write the index page (``reports/<study>/index.html``) of the study described by ``manifest``
    (``runs/<study>/manifest.json``): summary, results, failed runs, links to every report."""
    manifest = Path(manifest)
    run_dir = manifest.parent
    study = read_manifest(manifest)
    target = Path(target)
    base = target.parent
    cells, steps = study["cells"], study["steps"]
    everything = [*steps, *cells]
    failed = [e for e in everything if e["status"] == "failed"]
    finished = [e for e in cells if e["status"] == "done"]
    compute = sum(e["seconds"] for e in everything if e["status"] in ("done", "failed"))
    cards = [
        (f"{len(finished)}/{len(cells)}", "cells done", ""),
        (str(sum(e["status"] == "failed" for e in cells)), "cells failed", " bad" if failed else ""),
        (str(sum(e["status"] == "pending" for e in cells)), "cells not run", ""),
        (f"{compute / 3600:.2f} h", "compute time", ""),
        (f"{study['seconds'] / 60:.1f} min", "this run", ""),
    ]
    out = [
        f"<h1>Study: {html.escape(study['study'])}</h1>",
        f"<p>{html.escape(study['description'])}</p>" if study.get("description") else "",
        f'<p class="meta">HILS Kit {__version__} · generated {datetime.datetime.now():%Y-%m-%d %H:%M} · '
        f"models {html.escape(', '.join(study['models']))} · train {html.escape(study['train_data'])} · "
        f"tests {html.escape(', '.join(study['test_sets']) or '–')}</p>",
        '<div class="cards">'
        + "".join(f'<div class="card{cls}"><b>{value}</b><span>{label}</span></div>' for value, label, cls in cards)
        + "</div>",
    ]
    if failed:
        items = "".join(
            f"<li><b>{html.escape(e['name'])}</b> {_status(e)} {_link(e, run_dir, base, 'executed notebook')} · "
            f'<a href="{html.escape(_href(run_dir / e["log"], base))}">log</a>'
            f"<pre>{html.escape(e['error'])}</pre></li>"
            for e in failed
        )
        out.append(f'<section class="failures"><h2>Failed runs ({len(failed)})</h2><ul>{items}</ul></section>')
    out.append("<h2>Results</h2>")
    out.append(_results(run_dir / study["analysis_dir"]))
    out.append(
        "<h2>Notebooks</h2><table><thead><tr><th>notebook</th><th>status</th><th>minutes</th></tr></thead><tbody>"
    )
    out += [
        f"<tr><td>{_link(e, run_dir, base, e['name'])}</td><td>{_status(e)}</td>"
        f'<td class="num">{_minutes(e["seconds"])}</td></tr>'
        for e in steps
    ]
    out.append("</tbody></table>")
    out.append(
        "<h2>Cells</h2><table><thead><tr><th>cell</th><th>model</th><th>scenario</th><th>strategy</th>"
        "<th>part</th><th>seed</th><th>status</th><th>minutes</th></tr></thead><tbody>"
    )
    for e in cells:
        out.append(
            f"<tr><td>{_link(e, run_dir, base, e['name'])}</td><td>{html.escape(e['model'])}</td>"
            f"<td>{e['scenario']}</td><td>{e['strategy']}</td><td>{e['part']}</td><td>{e['replicate']}</td>"
            f'<td>{_status(e)}</td><td class="num">{_minutes(e["seconds"])}</td></tr>'
        )
    out.append("</tbody></table>")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(study['study'])} · HILS study</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n" + "\n".join(part for part in out if part) + "\n</main></body></html>\n"
    )
    return write_text_atomic(target, page)
