"""Shared fixtures: a small synthetic question table, the tiny local model and the smoke study's run."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from hils_kit.study.papermill_run import without_iri_check

without_iri_check()  # papermill imports 2 s sooner in the test processes, as in the kit's own
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HILS_PROGRESS", "off")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # share the cores between the workers (and the kernels they start)
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    )


def browser_or_skip():
    """Playwright's ``sync_playwright``, to drive Debian's Chromium (``/usr/bin/chromium``); without either, a skip
    that says how to install it, or a failure under CI (``CI`` set), which must run the browser tests."""
    missing = [] if shutil.which("chromium") else ["Debian's Chromium (apt-get install chromium)"]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("Playwright (pip install -e '.[test]')")
        sync_playwright = None
    if missing:
        message = f"the browser tests need {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


def make_questions(n: int = 24, categories=("Anatomy", "Pharmacology", "Surgery"), seed: int = 0) -> pd.DataFrame:
    """A canonical question table with a ``difficulty`` column in [0, 1] and 4 options per question."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": f"q{i:03d}",
                "question": f"Q{i:03d}: which option is number {i % 4 + 1}?",
                "options": [f"option {k + 1} of {i}" for k in range(4)],
                "answer": "ABCD"[i % 4],
                "category": categories[i % len(categories)],
                "dataset": "synthetic",
                "difficulty": float(rng.random()),
            }
        )
    return pd.DataFrame(rows)


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_lora_model(dtype=None, dropout: float = 0.1):
    """``(model, tokenizer)``: the tiny model with a seeded random (non-zero) LoRA adapter on every linear layer,
    as the kit trains it (r 8, alpha 32, ``dropout``), on the CPU."""
    import torch
    from peft import LoraConfig, get_peft_model

    from hils_kit.models.loading import load_model

    model, tok = load_model("tiny", dtype=dtype or torch.float32, device="cpu")
    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=32, lora_dropout=dropout, target_modules=ALL_LINEAR, init_lora_weights=False)
    return get_peft_model(model, config), tok


@contextlib.contextmanager
def seeded_peft_dropout(model):
    """peft's own LoRA modules within the block, their ``nn.Dropout`` drawing the kit's masks in the same order
    (:func:`hils_kit.train.fused_lora.dropped`): what peft's LoRA computes with the masks the kit draws."""
    import torch  # not at import: the workers set OMP_NUM_THREADS first

    from hils_kit.train.fused_lora import draw_seed, dropped

    class SeededDropout(torch.nn.Module):
        def __init__(self, p: float):
            super().__init__()
            self.p = p

        def forward(self, x):
            return dropped(x, draw_seed(), self.p) if self.training else x

    swapped = []
    for module in model.modules():
        for name, dropout in getattr(module, "lora_dropout", {}).items():
            if isinstance(dropout, torch.nn.Dropout):
                module.lora_dropout[name] = SeededDropout(dropout.p)
                swapped.append((module, name, dropout))
    try:
        yield model
    finally:
        for module, name, dropout in swapped:
            module.lora_dropout[name] = dropout


@pytest.fixture
def questions() -> pd.DataFrame:
    return make_questions()


@pytest.fixture(scope="session")
def tiny_model():
    """``(model, tokenizer)`` of the tiny local Llama (built into the cache on first use)."""
    from hils_kit.models.loading import load_model

    return load_model("tiny")


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """``(out, exit code)`` of ``hils study smoke.yaml`` run once per session on the local backend (one worker):
    the notebook tests read it, the Ray and SLURM tests compare their cells with it."""
    from hils_kit.cli import main
    from hils_kit.core.paths import PARAMS_DIR

    out = tmp_path_factory.mktemp("smoke")
    return out, main(["study", str(PARAMS_DIR / "studies" / "smoke.yaml"), "--out", str(out)])


def pytest_collection_finish(session):
    """Freeze the training stack out of Python's cycle collector, as the warm kernel server does: its millions of
    objects live as long as the test process, and each full collection (automatic, or the two of every Trainer
    run) walked them all, about 0.3 s each."""
    import hils_kit.train.training  # noqa: F401  (torch, transformers, peft and trl)

    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns the group marks into its work units
def pytest_collection_modifyitems(items):
    """With pytest-xdist (``-n 2 --dist loadgroup``, as ``make test`` runs) every test that reads one of the
    session's studies goes to the same worker, so each study runs once."""
    for item in items:
        for study in ("smoke_study", "paper_design"):
            if study in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(study))


def pytest_sessionfinish(session):
    """Stop the warm kernel servers the notebook runs started (:mod:`hils_kit.study.warm_kernel`), once, from the
    controller: without it they would wait :data:`~hils_kit.study.warm_kernel.IDLE_SECONDS` for more kernels."""
    if not hasattr(session.config, "workerinput"):
        from hils_kit.study.warm_kernel import stop_servers

        stop_servers()
