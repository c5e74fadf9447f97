"""The four notebooks and their parameters: each notebook's ``parameters`` cell is generated from its stage's
dataclass (``make notebook-params`` writes them, a test fails when one differs).

>>> print(parameters_cell(NOTEBOOK_PARAMS["04_analysis"]).splitlines()[1])
study: str = 'explore'  # study name, used in titles
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hils_kit.core.layout import NOTEBOOKS
from hils_kit.core.params import parameters_cell
from hils_kit.core.paths import NOTEBOOKS_DIR, PROJ_ROOT
from hils_kit.stages.analysis import AnalysisParams
from hils_kit.stages.cell import CellParams
from hils_kit.stages.exploration import ExplorationParams
from hils_kit.stages.prepare import PrepareParams

NOTEBOOK_PARAMS = dict(zip(NOTEBOOKS, (ExplorationParams, PrepareParams, CellParams, AnalysisParams)))
TEST_NOTEBOOKS_DIR = PROJ_ROOT / "tests" / "notebooks"  # the runner's test fixtures follow the same contract


def stale_parameter_cells(folders=(NOTEBOOKS_DIR, TEST_NOTEBOOKS_DIR), write: bool = False) -> list[Path]:
    """The notebooks whose ``parameters`` cell differs from its dataclass; ``write`` rewrites those cells."""
    import nbformat

    stale = []
    for folder in folders:
        for name, cls in NOTEBOOK_PARAMS.items():
            path = Path(folder) / f"{name}.ipynb"
            if not path.is_file():
                continue
            nb = nbformat.read(path, as_version=4)
            cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
            if cell.source != parameters_cell(cls):
                stale.append(path)
                if write:
                    cell.source = parameters_cell(cls)
                    nbformat.write(nb, path)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check (or --write) the notebooks' generated parameters cells.")
    parser.add_argument("--write", action="store_true", help="rewrite the cells that differ")
    args = parser.parse_args(argv)
    stale = stale_parameter_cells(write=args.write)
    for path in stale:
        print(f"{'rewrote' if args.write else 'differs from its dataclass'}: {path}")
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
