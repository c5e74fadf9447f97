"""HTML reports of a study: every executed notebook without its code, and one index page.

The index page is drawn from ``runs/<study>/manifest.json`` (:func:`hils_kit.study.jobs.write_manifest`) and what
``04_analysis`` wrote beside it (``analysis/artefacts.json`` and its files): it opens with the answers per test set,
then shows every table as :mod:`hils_kit.analyse.table_views` makes it fit a screen (at most 8 columns, one link to the
full CSV), every figure with its caption, the failed runs, and links to every report. It prints cleanly
(``@media print``) and never scrolls sideways at 1280 px.

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
from pathlib import Path

import yaml

from hils_kit import __version__
from hils_kit.analyse.answers import answers
from hils_kit.analyse.results import read_manifest
from hils_kit.analyse.table_views import breakable, read_table, relative_href, view_html, views
from hils_kit.core.layout import ARTEFACT_INDEX, Layout, artefact_path
from hils_kit.core.paths import write_text_atomic
from hils_kit.order.registry import BASELINE_NAME
from hils_kit.stages.analysis import AnalysisParams

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
       background: #f6f8fa; overflow-wrap: anywhere; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh;
       box-sizing: border-box; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.meta { color: #656d76; font-size: 13px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 22px; } .card span { color: #656d76; font-size: 13px; }
.card.bad { border-color: #cf222e; background: #ffebe9; }
.answers { border-left: 4px solid #0969da; padding: 2px 16px 4px; margin: 12px 0 16px; background: #f6fbff; }
.answers h2 { border: 0; margin: 10px 0 6px; }
.verdicts { margin: 4px 0 10px; padding-left: 20px; } .verdicts li { margin: 3px 0; }
details { margin: 0 0 20px; } summary { cursor: pointer; color: #0969da; font-weight: 600; }
details ul { margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0 22px; font-size: 14px; width: 100%; }
caption { caption-side: top; text-align: left; color: #1f2328; font-size: 13px; padding: 0 0 6px; }
.answers caption { caption-side: bottom; padding: 6px 0 0; }
caption .title { font-weight: 600; } caption .notes, caption a { color: #656d76; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 10px; text-align: left; vertical-align: top;
         overflow-wrap: normal; }
thead th { background: #f6f8fa; font-weight: 600; } tbody th { font-weight: 600; } tbody th.id { font-weight: 400; }
.num { text-align: right; font-variant-numeric: tabular-nums; } td.best { font-weight: 700; }
.id { overflow-wrap: anywhere; }
.status { border-radius: 10px; padding: 1px 8px; font-size: 12px; }
.done { background: #dafbe1; color: #116329; } .failed { background: #ffebe9; color: #a40e26; }
.pending { background: #eaeef2; color: #57606a; }
.failures { border: 2px solid #cf222e; border-radius: 8px; padding: 4px 16px 10px; background: #fff8f7; }
.failures h2 { color: #a40e26; border: 0; margin-top: 12px; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: 6px 10px; border-radius: 6px; font-size: 13px;
      margin: 4px 0 12px; }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; height: auto; border: 1px solid #d8dee4; }
figcaption { color: #1f2328; font-size: 13px; font-weight: 600; margin-bottom: 6px; }
@media print {
  body, main, .answers, .failures, .card.bad, thead th, pre, .status { background: none; box-shadow: none; }
  body { font-size: 11pt; } main { max-width: none; padding: 0; min-height: 0; }
  a { color: inherit; } a[href]::after { content: " (" attr(href) ")"; font-size: 9pt; color: #57606a; }
  details::details-content { content-visibility: visible; display: block; }
  figure, tr, .card, .answers li { break-inside: avoid; } h2, caption, figcaption { break-after: avoid; }
  thead { display: table-header-group; }
}
"""


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def _link(entry: dict, run_dir: Path, base: Path, text: str, wraps: bool = False) -> str:
    """A link to the entry's report, or plain text when it has none; ``wraps``: an id that may break after its
    underscores."""
    label = breakable(text) if wraps else html.escape(text)
    report = run_dir / entry["report"]
    if not report.exists():
        return label
    return f'<a href="{html.escape(relative_href(report, base))}">{label}</a>'


def _status(entry: dict) -> str:
    return f'<span class="status {entry["status"]}">{entry["status"]}</span>'


def _answers(analysis_dir: Path, listed: dict | None, strategies: list[str], alpha: float, base: Path) -> str:
    """The page's first section: per test set, did any strategy beat Random Shuffle and what could be detected
    (:func:`hils_kit.analyse.answers.answers`); then what the study can and cannot tell, collapsed. ``listed``: the
    analysis's ``artefacts.json``, None when it has not finished."""
    head = f'<section class="answers"><h2>Did any strategy beat {html.escape(BASELINE_NAME)}?</h2>'
    if listed is None:
        return f"{head}<p>No answers: 04_analysis has not finished (see the failed runs, if any).</p></section>"
    found = answers(analysis_dir, strategies, alpha)
    if found.views:
        verdicts = [
            f"<b>{html.escape(first)}</b> {html.escape(rest)}"
            for first, rest in (v.split(" ", 1) for v in found.verdicts)
        ]
    else:
        verdicts = [html.escape(v) for v in found.verdicts]
    parts = [head, f'<ul class="verdicts">{"".join(f"<li>{v}</li>" for v in verdicts)}</ul>']
    csv = [path for path in (artefact_path(analysis_dir, k) for k in ("comparisons", "power")) if path.is_file()]
    title = f"Each strategy against {BASELINE_NAME}, accuracy"
    parts += [view_html(view, title + (" (continued)" if i else ""), csv, base) for i, view in enumerate(found.views)]
    parts.append("</section>")
    if listed["findings"]:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in listed["findings"])
        parts.append(
            f"<details><summary>Details: what this study can and cannot tell</summary><ul>{items}</ul></details>"
        )
    return "\n".join(parts)


def _artefacts(analysis_dir: Path, listed: dict | None, base: Path) -> str:
    """Every artefact listed in ``artefacts.json`` (:data:`hils_kit.core.layout.ARTEFACTS`), in its order: figures
    with their caption, tables as :func:`hils_kit.analyse.table_views.views` show them, with a link to their CSV."""
    if listed is None:
        return '<p class="meta">No analysis results: 04_analysis has not finished.</p>'
    parts = []
    for entry in listed["artefacts"]:
        path = analysis_dir / entry["file"]
        if not path.is_file():
            continue
        title = html.escape(entry["title"])
        if path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            image = f'<img src="data:image/png;base64,{data}" alt="{title}">'
            parts.append(f"<figure><figcaption>{title}</figcaption>{image}</figure>")
            continue
        for i, view in enumerate(views(entry["kind"], read_table(path))):
            parts.append(view_html(view, entry["title"] + (" (continued)" if i else ""), [path], base))
    return "\n".join(parts)


def _precision(record: dict | None) -> str:
    """The study's precision for the meta line, with the figures it was measured by.

    >>> _precision({"precision": "bf16", "decided_by": "measured", "gflops": {"fp32": 161.2, "bf16": 361.0}})
    ' · precision bf16 (the faster here, measured on the driver: fp32 161 GFLOP/s, bf16 361)'
    """
    if not record:
        return ""
    text = f" · precision {record['precision']}"
    if "gflops" in record:
        fp32, bf16 = (round(record["gflops"][k]) for k in ("fp32", "bf16"))
        return html.escape(f"{text} (the faster here, measured on the driver: fp32 {fp32} GFLOP/s, bf16 {bf16})")
    return html.escape(f"{text} ({record['decided_by']})")


def _alpha(run_dir: Path, study: str) -> float:
    """The family-wise error rate 04_analysis used: its ``params/<study>/analysis.yaml``, else its default."""
    params = Layout(run_dir.parent.parent, study).params_file("analysis")
    values = yaml.safe_load(params.read_text(encoding="utf-8")) if params.is_file() else {}
    return float((values or {}).get("alpha", AnalysisParams().alpha))


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
        f"tests {html.escape(', '.join(study['test_sets']) or '–')}{_precision(study.get('precision'))}</p>",
        '<div class="cards">'
        + "".join(f'<div class="card{cls}"><b>{value}</b><span>{label}</span></div>' for value, label, cls in cards)
        + "</div>",
    ]
    analysis_dir = run_dir / study["analysis_dir"]
    index = analysis_dir / ARTEFACT_INDEX
    listed = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else None
    strategies = list(dict.fromkeys(e["strategy"] for e in cells))
    out.append(_answers(analysis_dir, listed, strategies, _alpha(run_dir, study["study"]), base))
    if failed:
        items = "".join(
            f"<li><b>{html.escape(e['name'])}</b> {_status(e)} {_link(e, run_dir, base, 'executed notebook')} · "
            f'<a href="{html.escape(relative_href(run_dir / e["log"], base))}">log</a>'
            f"<pre>{html.escape(e['error'])}</pre></li>"
            for e in failed
        )
        out.append(f'<section class="failures"><h2>Failed runs ({len(failed)})</h2><ul>{items}</ul></section>')
    out.append("<h2>Results</h2>")
    out.append(_artefacts(analysis_dir, listed, base))
    out.append(
        "<h2>Notebooks</h2><table><caption>The study's notebooks, each linked to its executed report</caption>"
        '<thead><tr><th>notebook</th><th>status</th><th class="num">minutes</th></tr></thead><tbody>'
    )
    out += [
        f"<tr><td>{_link(e, run_dir, base, e['name'])}</td><td>{_status(e)}</td>"
        f'<td class="num">{_minutes(e["seconds"])}</td></tr>'
        for e in steps
    ]
    out.append("</tbody></table>")
    out.append(
        "<h2>Cells</h2><table><caption>One cell per model × labels × strategy × part × seed, each linked to its "
        "executed 03_train_evaluate notebook</caption><thead><tr><th>cell</th><th>model</th><th>scenario</th>"
        '<th>strategy</th><th>part</th><th>seed</th><th>status</th><th class="num">minutes</th></tr></thead><tbody>'
    )
    for e in cells:
        out.append(
            f'<tr><td class="id">{_link(e, run_dir, base, e["name"], wraps=True)}</td>'
            f'<td>{html.escape(e["model"])}</td><td>{e["scenario"]}</td><td class="id">{e["strategy"]}</td>'
            f"<td>{e['part']}</td><td>{e['replicate']}</td>"
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
