"""``python -m hils_kit.study.papermill_run NOTEBOOK OUTPUT [papermill's options]``: papermill's command line,
started about 2 s sooner. The kit runs each notebook of a study so on the local, Ray and SLURM backends.

papermill imports nbformat, which imports jsonschema, which imports the IRI format check of ``rfc3987_syntax``
when that is installed (Jupyter's ``jsonschema[format-nongpl]`` installs it); it builds about 35 Lark Earley
parsers when imported: 2.4 s of each process on a 2-core machine (jsonschema issue #1428). The notebooks' schema
uses no IRI format, so the processes the kit starts (this one, the ``hils`` command, the tests) go without it:
:func:`without_iri_check`.

A kernel that dies before it answers its first request (jupyter_client's "Kernel died before replying to
kernel_info") has run nothing: with the TCP transport two kernels starting at once can race for a port. Such a run
is started again, once (:func:`starting_again_if_the_kernel_died`); any other error is the run's.

>>> papermill_run_command()[1:3]
['-m', 'hils_kit.study.papermill_run']
"""

from __future__ import annotations

import sys

KERNEL_DIED_AT_START = "Kernel died before replying to kernel_info"  # jupyter_client's words


def without_iri_check() -> None:
    """Keep ``rfc3987_syntax`` from being imported in this process (unless it is already): jsonschema, finding
    it missing, then checks no ``iri`` format, as when it is not installed."""
    sys.modules.setdefault("rfc3987_syntax", None)


def starting_again_if_the_kernel_died(run, attempts: int = 2, log=None):
    """``run()``, started again (up to ``attempts`` in all) while it fails because its kernel died before answering
    its first request, i.e. before any cell ran; any other error is raised at once. Each new start is noted in
    ``log`` (a text stream; standard error by default).

    >>> tries = []
    >>> def flaky():
    ...     tries.append(1)
    ...     if len(tries) == 1:
    ...         raise RuntimeError(KERNEL_DIED_AT_START)
    ...     return "done"
    >>> starting_again_if_the_kernel_died(flaky), len(tries)
    ('done', 2)
    """
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except RuntimeError as err:
            if KERNEL_DIED_AT_START not in str(err) or attempt == attempts:
                raise
            print(f"the kernel died while starting ({err}); starting the run again", file=log or sys.stderr, flush=True)


def papermill_run_command() -> list[str]:
    """The start of the command line that runs papermill through this module."""
    return [sys.executable, "-m", "hils_kit.study.papermill_run"]


if __name__ == "__main__":
    without_iri_check()
    from papermill.cli import papermill

    starting_again_if_the_kernel_died(lambda: papermill(prog_name="papermill"))  # exits through SystemExit
