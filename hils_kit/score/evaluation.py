"""Evaluate a model (zero-shot, or with a LoRA adapter) on test sets: predictions and metrics on disk.

For each test set ``NAME`` the output folder gets ``predictions_NAME.csv`` (``id, category, answer, pred,
correct, p_gold, gold_logprob, gold_logprob_debiased, brier, p_A…``; see :func:`hils_kit.score.metrics.gold_scores`)
and one ``metrics.json`` holds ``{NAME: summary}`` (see :mod:`hils_kit.score.metrics`), every file written atomically.

>>> sets = resolve_test_sets(["medmcqa", "medqa"], limit=100, seed=0)          # doctest: +SKIP
>>> metrics = evaluate("smollm2", test_sets=sets, out_dir="runs/eval0")        # doctest: +SKIP
>>> metrics["medmcqa"]["accuracy"], metrics["medmcqa"]["accuracy_ci"]          # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.core.layout import CellFiles
from hils_kit.core.paths import atomic_path, claim_folder, output_folder, write_text_atomic
from hils_kit.core.precision import use_bf16
from hils_kit.data.loaders import DATASETS, load_questions
from hils_kit.data.questions import LETTERS
from hils_kit.data.splits import sample_questions
from hils_kit.models.adapter_merge import merged_adapter
from hils_kit.models.shapes import model_shapes
from hils_kit.score.metrics import gold_scores, summarize
from hils_kit.score.scoring import BATCH_SIZE, letter_probabilities, predict

log = logging.getLogger(__name__)


def read_ids(path: str | Path) -> list[str]:
    """Question ids from a file: a split JSON (its ``train`` ids), a JSON list, a question CSV (its ``id``
    column, e.g. the training file) or one id per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: id file does not exist")
    if path.suffix == ".csv":
        ids = pd.read_csv(path, dtype=str)
        if "id" not in ids:
            raise ValueError(f"{path}: a CSV of ids needs an 'id' column; it has {', '.join(ids.columns)}")
        return ids["id"].dropna().tolist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            if "train" not in data:
                raise ValueError(f"{path}: a split JSON needs a 'train' list of ids")
            data = data["train"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of ids or a split with 'train'")
        return [str(i) for i in data]
    return [line.strip() for line in text.splitlines() if line.strip()]


def resolve_test_sets(names, limit: int = 0, seed: int = 0, exclude_ids=None) -> dict[str, pd.DataFrame]:
    """Load test sets by data set name (``medmcqa``, ``medqa``, ``mmlu_medical``) or question file.

    ``exclude_ids`` (ids, or a file for :func:`read_ids`) removes those questions first, e.g. the training
    questions of a held-out split. ``limit`` > 0 then keeps a seeded sample of that many questions,
    stratified by category. Keys are the data set name or the file's stem.
    """
    if isinstance(names, str):
        names = [names]
    if isinstance(exclude_ids, (str, Path)):
        exclude_ids = read_ids(exclude_ids)
    excluded = set(map(str, exclude_ids or []))
    sets = {}
    for name in names:
        if name not in DATASETS and not Path(name).exists():
            raise ValueError(f"unknown data set '{name}': use one of {', '.join(DATASETS)} or a question file")
        key = name if name in DATASETS else Path(name).stem
        if key in sets:
            raise ValueError(f"two test sets are both named '{key}'")
        table = load_questions(name)
        if excluded:
            table = table[~table["id"].astype(str).isin(excluded)].reset_index(drop=True)
            if table.empty:
                raise ValueError(f"{name}: no questions left after excluding {len(excluded)} ids")
        sets[key] = sample_questions(table, limit, seed=seed)
    return sets


def predictions_table(table: pd.DataFrame, probs) -> pd.DataFrame:
    """``id, category, answer, pred, correct``, the per-question gold scores of
    :func:`hils_kit.score.metrics.gold_scores` and ``p_A…`` for a question table and its letter probabilities.

    ``gold_logprob_debiased`` uses the letter means of exactly these rows, so score a whole test set at once.

    >>> questions = pd.DataFrame({"id": [1, 2], "category": ["x", "y"], "answer": ["A", "B"]})
    >>> row = predictions_table(questions, np.array([[0.9, 0.1], [0.6, 0.4]])).round(3).iloc[1]
    >>> row[["answer", "pred", "p_gold", "gold_logprob", "gold_logprob_debiased", "brier"]].to_dict()
    {'answer': 'B', 'pred': 'A', 'p_gold': 0.4, 'gold_logprob': -0.916, 'gold_logprob_debiased': -0.342, 'brier': 0.72}
    """
    probs = np.asarray(probs, dtype=float)
    pred = predict(probs)
    out = pd.DataFrame(
        {
            "id": table["id"].astype(str).to_numpy(),
            "category": table["category"].to_numpy(),
            "answer": table["answer"].to_numpy(),
            "pred": pred,
            "correct": table["answer"].to_numpy() == pred,
        }
    )
    out = pd.concat([out, gold_scores(probs, table["answer"].to_numpy())], axis=1)
    for k in range(probs.shape[1]):
        out[f"p_{LETTERS[k]}"] = probs[:, k]
    return out


def evaluate(
    model="smollm2",
    adapter=None,
    *,
    test_sets: dict[str, pd.DataFrame],
    out_dir,
    template: str = "paper",
    batch_size: int = BATCH_SIZE,
    precision: str | bool | None = None,
) -> dict:
    """Score every test set, write predictions and ``metrics.json`` into ``out_dir``, return the metrics.

    ``model`` is a name or folder for :func:`hils_kit.models.loading.load_model` (with ``adapter``, a folder
    holding ``adapter_config.json``, on top), or an already-loaded ``(model, tokenizer)``. ``precision``: fp32,
    bf16 or ``None`` (:mod:`hils_kit.core.precision` decides); each set's metrics record it. A LoRA adapter on float32
    weights is merged into them while scoring, in either precision, and unmerged afterwards
    (:func:`hils_kit.models.adapter_merge.merged_adapter`). Only the files
    ``predictions_<set>.csv`` and ``metrics.json`` of ``out_dir`` are replaced; a folder it makes is marked as
    the kit's (:func:`hils_kit.core.paths.claim_folder`).
    """
    out_dir = output_folder(out_dir, "out_dir", overwrite=True)  # refuse '', '.', '..' and a file before loading
    if isinstance(model, (tuple, list)):
        if adapter is not None:
            raise ValueError("pass adapter only with a model name; a loaded model already has its adapter")
        model, tokenizer = model
    else:
        from hils_kit.models.loading import load_model

        if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter}: no adapter_config.json (give the adapter folder of a run)")
        model, tokenizer = load_model(model, adapter=adapter, precision=precision)
    metrics = {}
    bf16 = use_bf16(precision, next(model.parameters()).device.type, model_shapes(model))
    with merged_adapter(model):
        for name, table in test_sets.items():
            if table.empty:
                raise ValueError(f"test set '{name}' has no questions")
            start = time.perf_counter()
            probs = letter_probabilities(model, tokenizer, table, template, batch_size, f"scoring {name}", bf16)
            seconds = time.perf_counter() - start
            predictions = predictions_table(table, probs)
            claim_folder(out_dir, "evaluate")
            with atomic_path(CellFiles(out_dir).predictions(name)) as tmp:
                predictions.to_csv(tmp, index=False)
            metrics[name] = summarize(predictions)
            metrics[name]["seconds_per_question"] = seconds / len(table)
            metrics[name]["precision"] = "bf16 autocast" if bf16 else "fp32"
            log.info("%s: accuracy %.3f on %d questions", name, metrics[name]["accuracy"], len(table))
    write_text_atomic(CellFiles(out_dir).metrics, json.dumps(metrics, indent=1))
    return metrics


def metrics_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """What :func:`evaluate` returned, a row per test set for people (as text): accuracies in percent to one
    decimal with the 95 % interval, the gold log-prob to three.

    >>> metrics_table({"medqa": {"n": 12, "accuracy": 0.25, "accuracy_ci": [0.08, 0.5], "mean_gold_logprob": -1.4,
    ...                          "debiased_accuracy": 0.25, "majority_baseline": 0.33}}).iloc[0].tolist()
    ['medqa', '12', '25.0', '8.0–50.0', '-1.400', '25.0', '33.0']
    """
    rows = [
        {
            "test set": name,
            "questions": str(m["n"]),
            "accuracy (%)": f"{100 * m['accuracy']:.1f}",
            "95 % CI (%)": f"{100 * m['accuracy_ci'][0]:.1f}–{100 * m['accuracy_ci'][1]:.1f}",
            "gold log-prob": f"{m['mean_gold_logprob']:.3f}",
            "debiased accuracy (%)": f"{100 * m['debiased_accuracy']:.1f}",
            "majority letter (%)": f"{100 * m['majority_baseline']:.1f}",
        }
        for name, m in metrics.items()
    ]
    return pd.DataFrame(rows)
