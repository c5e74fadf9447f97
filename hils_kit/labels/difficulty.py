"""Question difficulty: from examinee statistics (human) or from LLM expected accuracy (paper Eq. 1).

LLM difficulty of a question = 1 − the mean, over the scoring models, of the probability each model puts
on the correct answer letter, with the softmax taken over the option letters only (Yang et al. 2024,
§2.5). Labels are saved as ``id,difficulty,p_correct_<model>…`` with a sidecar JSON fingerprint, so a
second run with the same models and questions reuses the file instead of scoring again.

Tiers of these labels follow :mod:`hils_kit.labels.tiers`.

>>> from hils_kit.data.loaders import load_questions
>>> table = load_questions("medmcqa").head(20)                                   # doctest: +SKIP
>>> labels = label_difficulty(table, ["smollm2"], True, "/tmp/difficulty.csv")  # doctest: +SKIP
>>> model_agreement(labels).mean_accuracy                                         # doctest: +SKIP
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.core.paths import atomic_path, write_text_atomic
from hils_kit.core.precision import resolve_precision
from hils_kit.data.questions import LETTERS
from hils_kit.models.loading import load_model, model_folder
from hils_kit.models.shapes import model_shapes
from hils_kit.score.scoring import BATCH_SIZE, letter_probabilities

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".gguf"}


# ----------------------------------------------------------------------------- human difficulty


def human_difficulty(table: pd.DataFrame) -> pd.Series:
    """1 − the share of examinees who answered correctly (``human_p_correct``, filled from ``%A``…``%E``)."""
    if "human_p_correct" not in table or table["human_p_correct"].isna().all():
        raise ValueError(
            "the question table has no examinee statistics (%A…%E or human_p_correct columns), so there is "
            "no human difficulty; label it with LLMs instead (`hils label difficulty`)"
        )
    p = pd.to_numeric(table["human_p_correct"], errors="coerce")
    if p.isna().any():
        log.warning(
            "%d of %d questions have no examinee statistics; their human difficulty is NaN", int(p.isna().sum()), len(p)
        )
    return (1.0 - p).rename("difficulty")


# ----------------------------------------------------------------------------- LLM difficulty


def letter_outcomes(
    model,
    tokenizer,
    table: pd.DataFrame,
    debias: bool = False,
    template: str = "paper",
    batch_size: int = BATCH_SIZE,
    precision: str | bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per question, the probability on the correct option, softmax over the option letters (paper Eq. 1), and
    whether the model answers it right (the correct option has the highest probability).

    ``debias=True`` averages over the n cyclic rotations of each question's n options the probability placed on
    each *content* (wherever the rotation put it), and the answer is the option with the highest mean. Small models
    have a strong letter bias (SmolLM2-135M answers "A" on ~95% of MedMCQA questions), so without debiasing their
    expected accuracy mostly says whether the gold answer happens to be "A". Each option visits every letter once,
    which cancels a fixed preference for a letter; it costs n forward passes per question. ``precision``: fp32,
    bf16 or ``None`` (:mod:`hils_kit.core.precision` decides).
    """
    answers = table["answer"].map(LETTERS.index).to_numpy()
    n_opts = table["options"].map(len).to_numpy()
    width = int(n_opts.max())
    by_option = np.zeros((len(table), width))
    for shift in range(width) if debias else [0]:
        keep = n_opts > shift
        part = table[keep]
        rotated = part.assign(options=[list(o[shift:]) + list(o[:shift]) for o in part["options"]])
        desc = f"rotation {shift + 1}/{width}" if debias else "scoring"
        probs = letter_probabilities(model, tokenizer, rotated, template, batch_size, desc, precision)
        rows, n = np.flatnonzero(keep), n_opts[keep]
        for letter in range(width):  # the letter shows option (letter + shift) mod n after the rotation
            shown = n > letter
            by_option[rows[shown], (letter + shift) % n[shown]] += probs[shown, letter]
    if debias:
        by_option /= n_opts[:, None]
    p_correct = by_option[np.arange(len(table)), answers]
    valid = np.arange(width)[None, :] < n_opts[:, None]
    right = np.where(valid, by_option, -np.inf).argmax(axis=1) == answers
    return p_correct, right


def expected_accuracy(model, tokenizer, table: pd.DataFrame, debias: bool = False, **options) -> np.ndarray:
    """The probability on the correct option of :func:`letter_outcomes` (``options``: ``template``,
    ``batch_size``, ``precision``)."""
    return letter_outcomes(model, tokenizer, table, debias, **options)[0]


def accuracy_column(model: str) -> str:
    """The labels column of a model: ``p_correct_<name>`` with path separators made safe."""
    return "p_correct_" + re.sub(r"[^\w.-]+", "_", model).strip("_")


def right_column(model: str) -> str:
    """The column of a model's right (1) and wrong (0) answers: ``right_<name>``, the respondents of IRT."""
    return "right_" + accuracy_column(model).removeprefix("p_correct_")


def model_fingerprint(name: str) -> dict:
    """What identifies a model's answers: its name, a hash of config.json and its weight files' size/mtime."""
    folder = model_folder(name)
    if folder is None:
        return {"name": name}
    weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return {
        "name": name,
        "config_sha256": hashlib.sha256((folder / "config.json").read_bytes()).hexdigest(),
        "weights": [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in weights],
    }


def questions_hash(table: pd.DataFrame) -> str:
    """A hash of the questions' id, text, options and answer (independent of row order)."""
    rows = sorted(
        [str(i), str(q), list(o), str(a)]
        for i, q, o, a in zip(table["id"], table["question"], table["options"], table["answer"])
    )
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def _model_accuracy(
    name: str, table: pd.DataFrame, debias: bool, template: str, batch_size: int, cache: Path | None, precision: str
) -> tuple[np.ndarray, np.ndarray]:
    """Expected accuracies and right answers of one model (scored in ``precision``, fp32 or bf16), loaded, used and
    freed; reused from ``cache`` when present."""
    import torch

    file = None
    if cache is not None:
        key = {
            "model": model_fingerprint(name),
            "debias": debias,
            "template": template,
            "questions": questions_hash(table),
            "precision": precision,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        file = Path(cache) / f"{accuracy_column(name)}-{digest}.csv"
        stored = pd.read_csv(file, dtype={"id": str}).set_index("id") if file.exists() else None
        if stored is not None and "right" in stored:  # a cache from before the right answers were kept is redone
            log.info("%s: reusing expected accuracies from %s", name, file)
            stored = stored.reindex(table["id"].astype(str))
            return stored["p_correct"].to_numpy(), stored["right"].to_numpy().astype(bool)
    start = time.monotonic()
    try:
        model, tokenizer = load_model(name, precision=precision)
    except OSError as err:
        raise ValueError(f"cannot load model '{name}': {err}") from err
    accuracy, right = letter_outcomes(model, tokenizer, table, debias, template, batch_size, precision)
    del model, tokenizer  # free it before the next model loads
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.info(
        "%s: scored %d questions%s in %.0f s",
        name,
        len(table),
        " x rotations" if debias else "",
        time.monotonic() - start,
    )
    if file is not None:
        with atomic_path(file) as tmp:
            frame = pd.DataFrame({"id": table["id"].astype(str), "p_correct": accuracy, "right": right.astype(int)})
            frame.to_csv(tmp, index=False)
    return accuracy, right


def llm_difficulty(
    table: pd.DataFrame,
    models: list[str],
    debias: bool = False,
    cache: str | Path | None = None,
    template: str = "paper",
    batch_size: int = BATCH_SIZE,
    precision: str | bool | None = None,
) -> pd.DataFrame:
    """``id``, ``difficulty`` (1 − mean expected accuracy over ``models``), ``p_correct_<model>`` and
    ``right_<model>`` (1: the model answers it right) columns.

    Models are loaded one at a time and freed after scoring, in ``precision`` (:func:`scoring_precision`). With
    ``cache`` (a folder), each model's expected accuracies are kept there, keyed by model, questions, template,
    ``debias`` and precision, so adding a model to the list or resuming after a crash scores only what is missing.
    """
    if not models:
        raise ValueError("llm_difficulty needs at least one model")
    columns = [accuracy_column(m) for m in models]
    if len(set(columns)) != len(columns):
        raise ValueError(f"the model list names a model twice: {', '.join(models)}")
    for name in models:
        model_folder(name)  # fail on a bad name before spending time on the others
    out = pd.DataFrame({"id": table["id"].astype(str).to_numpy()})
    resolved = scoring_precision(precision, models)
    for name, column in zip(models, columns):
        cache_dir = None if cache is None else Path(cache)
        out[column], right = _model_accuracy(name, table, debias, template, batch_size, cache_dir, resolved)
        out[right_column(name)] = right.astype(int)
    out.insert(1, "difficulty", 1.0 - out[columns].mean(axis=1))
    return out


@dataclass
class Agreement:
    """How the scoring models agree: mean expected accuracy per model and per-question correlations."""

    mean_accuracy: pd.Series
    correlation: pd.DataFrame
    mean_pairwise: float  # mean off-diagonal Pearson correlation (paper: 0.54 over six LLMs); NaN for one model


def model_agreement(labels: pd.DataFrame) -> Agreement:
    """Per-model mean expected accuracy and the pairwise Pearson correlations of ``p_correct_*`` columns."""
    acc = labels.filter(regex=r"^p_correct_")
    if acc.empty:
        raise ValueError("the labels have no p_correct_<model> columns")
    acc = acc.rename(columns=lambda c: c.removeprefix("p_correct_"))
    corr = acc.corr(method="pearson")
    pairs = corr.to_numpy()[np.triu_indices(len(corr), k=1)]
    return Agreement(acc.mean(), corr, float(np.nanmean(pairs)) if len(pairs) else float("nan"))


# ----------------------------------------------------------------------------- saved labels


def sidecar_path(path: str | Path) -> Path:
    """The fingerprint file beside a labels file: ``labels.csv`` -> ``labels.meta.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.meta.json")


def scoring_precision(precision: str | bool | None = None, models: list[str] = ()) -> str:
    """``fp32`` or ``bf16``: the precision labelling scores in, on the device models load on (CUDA when there),
    one for all ``models`` (``auto``: measured on the shapes of the largest)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_precision(precision, device, model_shapes(*models) if models else None)


def difficulty_fingerprint(
    table: pd.DataFrame, models: list[str], debias: bool, template: str, precision: str | bool | None = None
) -> dict:
    """Everything the labels depend on: the models (and their files), debiasing, template, precision and
    questions."""
    return {
        "models": [model_fingerprint(m) for m in models],
        "debias": bool(debias),
        "template": template,
        "precision": scoring_precision(precision, models),
        "questions": questions_hash(table),
        "n_questions": len(table),
    }


def label_difficulty(
    table: pd.DataFrame,
    models: list[str],
    debias: bool,
    path: str | Path,
    template: str = "paper",
    batch_size: int = BATCH_SIZE,
    cache: str | Path | None = None,
    precision: str | bool | None = None,
) -> pd.DataFrame:
    """LLM difficulty labels saved at ``path`` (CSV) with a fingerprint sidecar; reused when it matches.

    The file is recomputed and overwritten atomically when the models, their files, ``debias``, the
    template, the precision or the questions changed. Returns the labels in the table's row order.
    """
    path, meta = Path(path), sidecar_path(path)
    fingerprint = difficulty_fingerprint(table, models, debias, template, precision)
    if path.exists() and meta.exists():
        stored = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint", {})
        labels = pd.read_csv(path, dtype={"id": str}) if stored == fingerprint else None
        if labels is not None and all(right_column(m) in labels for m in models):  # older files lack the answers
            log.info("reusing %s: models, questions and settings are unchanged", path)
            return labels.set_index("id").loc[table["id"].astype(str)].reset_index()
        changed = [k for k in fingerprint if stored.get(k) != fingerprint[k]] or ["the right answers were not kept"]
        log.info("recomputing %s: %s changed", path, ", ".join(changed))
    else:
        log.info("computing %s (no saved labels yet)", path)
    labels = llm_difficulty(table, models, debias, cache, template, batch_size, fingerprint["precision"])
    agreement = model_agreement(labels)
    meta.unlink(missing_ok=True)  # a crash between the two writes must not leave an old fingerprint
    with atomic_path(path) as tmp:
        labels.to_csv(tmp, index=False)
    summary = {
        "mean_accuracy": agreement.mean_accuracy.to_dict(),
        "mean_pairwise_correlation": None if np.isnan(agreement.mean_pairwise) else agreement.mean_pairwise,
    }
    write_text_atomic(meta, json.dumps({"fingerprint": fingerprint, "summary": summary}, indent=1))
    return labels
