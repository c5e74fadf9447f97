"""``python -m hils_kit.study.papermill_run NOTEBOOK OUTPUT [papermill's options]``: papermill's command line,
started about 2 s sooner. The kit runs each notebook of a study so on the local, Ray and SLURM backends.

papermill imports nbformat, which imports jsonschema, which imports the IRI format check of ``rfc3987_syntax``
when that is installed (Jupyter's ``jsonschema[format-nongpl]`` installs it); it builds about 35 Lark Earley
parsers when imported: 2.4 s of each process on a 2-core machine (jsonschema issue #1428). The notebooks' schema
uses no IRI format, so the processes the kit starts (this one, the ``hils`` command, the tests) go without it:
:func:`without_iri_check`.

>>> papermill_run_command()[1:3]
['-m', 'hils_kit.study.papermill_run']
"""

from __future__ import annotations

import sys


def without_iri_check() -> None:
    """Keep ``rfc3987_syntax`` from being imported in this process (unless it is already): jsonschema, finding
    it missing, then checks no ``iri`` format, as when it is not installed."""
    sys.modules.setdefault("rfc3987_syntax", None)


def papermill_run_command() -> list[str]:
    """The start of the command line that runs papermill through this module."""
    return [sys.executable, "-m", "hils_kit.study.papermill_run"]


if __name__ == "__main__":
    without_iri_check()
    from papermill.cli import papermill

    papermill(prog_name="papermill")
