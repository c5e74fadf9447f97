"""Analyse a finished study run again without training: ``04_analysis`` on the cells it has, then its HTML
report and the index page (``hils analyse RUNS_DIR``).

The study's ``params/<study>/analysis.yaml`` holds 04's parameters; ``changes`` (for example ``{"alpha": 0.01}``)
are written into it first, so the executed notebook and its report show what was used. The cells, their
parameters and their results are left as they are.

>>> outcome = analyse_again("runs/default", {"run_sd_points": 2.0})          # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hils_kit.core.layout import MANIFEST, NOTEBOOKS, Layout
from hils_kit.core.paths import NOTEBOOKS_DIR, write_text_atomic
from hils_kit.stages.analysis import AnalysisParams
from hils_kit.study.executors import LocalExecutor, kernel_name
from hils_kit.study.jobs import Job, Outcome, manifest_entry, params_yaml
from hils_kit.study.reports import write_index
from hils_kit.study.runner import Progress

ANALYSIS = NOTEBOOKS[3]


def analysis_job(run_dir: str | Path, notebooks: str | Path = NOTEBOOKS_DIR) -> tuple[Job, Layout, dict]:
    """The ``04_analysis`` job of the study run in ``run_dir`` (``runs/<study>``), its layout and manifest."""
    run_dir = Path(run_dir).resolve()
    manifest_path = run_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {MANIFEST}; give the run folder of a study (runs/<study>)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    layout = Layout(run_dir.parent.parent, manifest["study"])
    if layout.run_dir != run_dir:
        raise ValueError(f"{run_dir}: a study's run folder is runs/{manifest['study']} under the study's output")
    params_file = layout.params_file("analysis")
    if not params_file.is_file():
        raise FileNotFoundError(f"{params_file}: 04's parameters are missing; run the study with `hils study` first")
    parameters = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    # the folders where the run is now (it may have been moved or copied since the study wrote them)
    parameters.update(run_dir=str(layout.run_dir), out_dir=str(layout.step_dir("analysis")))
    notebook = Path(notebooks).resolve() / f"{ANALYSIS}.ipynb"
    job = Job(
        ANALYSIS,
        notebook,
        layout.executed(ANALYSIS),
        layout.step_dir("analysis"),
        parameters,
        params_file,
        layout.report(ANALYSIS),
    )
    return job, layout, manifest


def analyse_again(
    run_dir: str | Path, changes: dict | None = None, notebooks: str | Path = NOTEBOOKS_DIR, say=print
) -> Outcome:
    """Run ``04_analysis`` again on ``run_dir``'s cells with ``changes`` to its parameters; re-render the reports."""
    job, layout, manifest = analysis_job(run_dir, notebooks)
    known = set(AnalysisParams.__dataclass_fields__)
    unknown = sorted(set(changes or {}) - known)
    if unknown:
        raise ValueError(f"04_analysis has no parameter(s) {', '.join(unknown)} (it has: {', '.join(sorted(known))})")
    job.parameters.update(changes or {})
    write_text_atomic(job.params_file, params_yaml(job))
    outcome = Progress(say, cells_to_run=0).run(LocalExecutor(1, kernel_name()), [job])[0]
    base = layout.manifest.parent
    steps = [s for s in manifest["steps"] if s["name"] != ANALYSIS]
    manifest["steps"] = [*steps, manifest_entry(outcome, base)]
    write_text_atomic(layout.manifest, json.dumps(manifest, indent=1, default=str))
    write_index(layout.manifest, layout.index_page)
    return outcome
