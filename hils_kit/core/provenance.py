"""What a run was: its parameters, library versions, git revision and device, shown at the top of every notebook.

Code-free HTML reports hide the parameters cell, so every notebook shows this instead.

>>> info = provenance({"strategy": "blocked"})
>>> info["parameters"]["strategy"], "torch" in info["versions"]
('blocked', True)
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata

from hils_kit.core.display import key_value_table
from hils_kit.core.paths import PROJ_ROOT
from hils_kit.core.progress import in_notebook

LIBRARIES = (
    "hils-kit",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "bitsandbytes",
    "papermill",
    "pandas",
)


def git_revision() -> str:
    """The project's git commit (with ``+dirty`` when there are uncommitted changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJ_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def library_versions() -> dict:
    """Installed versions of the libraries a run depends on (``None`` when missing), plus Python."""
    versions = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return versions


def torch_threads() -> str:
    """Torch's CPU threads in words: ``"2 threads"``, ``"1 thread"``."""
    import torch

    threads = torch.get_num_threads()
    return f"{threads} thread{'' if threads == 1 else 's'}"


def provenance(parameters: dict) -> dict:
    """Parameters, versions, git revision, Python and device, as a JSON-ready dict."""
    versions = library_versions()
    versions.pop("python")
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch_threads()})"
    except ImportError:
        device = "unknown"
    return {
        "parameters": parameters,
        "versions": versions,
        "git": git_revision(),
        "python": platform.python_version(),
        "device": device,
    }


def show_provenance(parameters: dict) -> dict:
    """Show :func:`provenance` readably and return it: the parameters as a table in a notebook (as lines
    elsewhere), then the versions, git revision, Python and device."""
    info = provenance(parameters)
    if in_notebook():
        from IPython.display import display

        display(key_value_table(info["parameters"], caption="Parameters"))
    else:
        print("parameters:", json.dumps(info["parameters"], indent=1, default=str))
    print("versions:  ", ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v))
    print(f"git {info['git']} | python {info['python']} | device {info['device']}")
    return info
