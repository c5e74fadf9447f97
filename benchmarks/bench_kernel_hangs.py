"""How often papermill waits forever on a notebook whose last cell shows the strategy picker (ipywidgets).

    .venv/bin/python benchmarks/bench_kernel_hangs.py [--runs 150] [--kernel hils-kit] [--hang-after 60] [-o FILE]

Runs a three-cell notebook (the kit's imports, a small table, ``strategy_picker``) through papermill in this
process ``--runs`` times, one after the other, and counts the runs that have not finished after ``--hang-after``
seconds (a normal run takes 3-7 s). A hung run is left behind (its kernel idle, papermill still waiting for the
cell's reply) and the benchmark stops there: a hang cannot be cancelled from inside papermill. Run it on a busy
machine (for example beside the test suite), where the hang shows. Seen on 2026-12-02 (2 cores, pyzmq 27.3,
jupyter_client 8.10, nbclient 0.11): with ipykernel 7.4.0 three hangs in 124 runs (the 13th, 35th and 76th run
of three loops), with 6.31.0 two in 60, with 6.29.5 none in 142 (too few to call it safe); a one-second
polling wait for the reply on nbclient's side did not prevent it. The same hang stopped a `make test` once, in
notebook 02's strategy picker. Since then the study runner sets ``HILS_HEADLESS=1`` in its notebooks, where the
kit's widgets show a static view (``hils_kit/widgets.py``); ``HILS_HEADLESS=1`` here measures that path.

Prints one JSON object: runs finished, whether the last one hung, the seconds per run, and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

CELLS = [
    "from hils_kit.order.widgets import strategy_picker\nfrom tests.conftest import make_questions",
    "table = make_questions(24).assign(difficulty=[i / 24 for i in range(24)])",
    "strategy_picker(table)",
]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=150, help="notebook runs (default 150)")
    parser.add_argument("--kernel", default="hils-kit", help="kernel name (default hils-kit)")
    parser.add_argument("--hang-after", type=float, default=60, help="seconds after which a run counts as hung")
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args(argv)

    import ipykernel
    import nbformat
    import papermill

    from hils_kit.core.paths import PROJ_ROOT, write_text_atomic
    from hils_kit.core.progress import headless
    from hils_kit.core.provenance import library_versions

    folder = Path(tempfile.mkdtemp(prefix="hils-hangs-"))
    notebook = folder / "picker.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), notebook)
    seconds: list[float] = []
    finished = threading.Event()

    def report(hung: bool) -> dict:
        out = {
            "runs_finished": len(seconds),
            "hung": hung,
            "hang_after_s": args.hang_after,
            "seconds_per_run": round(sum(seconds) / max(len(seconds), 1), 2),
            "load_average": os.getloadavg()[0],
            "ipykernel": ipykernel.__version__,
            "headless": headless(),
            "versions": library_versions(),
        }
        print(json.dumps(out, indent=1), flush=True)
        if args.output:
            write_text_atomic(Path(args.output), json.dumps(out, indent=1) + "\n")
        return out

    def watchdog() -> None:
        while not finished.is_set():
            started, count = time.monotonic(), len(seconds)
            while len(seconds) == count and not finished.is_set():
                if time.monotonic() - started > args.hang_after:
                    report(hung=True)
                    os._exit(3)  # papermill is still waiting on the hung cell: nothing else can end it
                time.sleep(0.5)

    threading.Thread(target=watchdog, daemon=True).start()
    for _ in range(args.runs):
        start = time.monotonic()
        papermill.execute_notebook(
            notebook, folder / "out.ipynb", kernel_name=args.kernel, progress_bar=False, cwd=PROJ_ROOT
        )
        seconds.append(time.monotonic() - start)
    finished.set()
    return report(hung=False)


if __name__ == "__main__":
    main()
