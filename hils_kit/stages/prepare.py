"""Stage 02, ``02_difficulty_labeling``: split the training data, sample each part's training and test
questions, and label them. Owns the notebook's parameters (:class:`PrepareParams`) and its steps; its files are
named by :class:`hils_kit.core.layout.PrepareFiles`.

>>> prepare_data("medmcqa", {"kind": "holdout", "test_fraction": 0.2, "seed": 0},
...              {"holdout": ["medmcqa_test"]}, [], "/tmp/prepare", train_limit=8, test_limit=4)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from hils_kit.core.layout import PrepareFiles
from hils_kit.core.params import param
from hils_kit.core.paths import atomic_path, write_text_atomic
from hils_kit.data.leakage import ON_OVERLAP, drop_overlap, question_keys
from hils_kit.data.loaders import FORMATS, dataset_label, load_questions, save_questions
from hils_kit.data.splits import kfold, sample_questions, save_split, select, train_test_split
from hils_kit.labels.categories import SEARCHES, TEXTS
from hils_kit.labels.irt import MODELS as IRT_MODELS
from hils_kit.labels.label_files import read_labels
from hils_kit.labels.scenarios import LABEL_SCENARIOS

log = logging.getLogger(__name__)


@dataclass
class PrepareParams:
    """``02_difficulty_labeling``: split, sample, label."""

    study: str = param("explore", "study name, used in titles", derived=True)
    train_data: str = param("medmcqa", "training data: a kit data set name or a question file")
    train_format: Optional[str] = param(
        None, f"loader format of train_data ({', '.join(FORMATS)}); None to detect it", choices=FORMATS
    )
    split: dict = param(
        {"kind": "holdout", "test_fraction": 0.2, "seed": 0},
        "{kind: holdout, test_fraction, seed} or {kind: kfold, k, seed, include_full}",
        derived=True,
    )
    train_limit: int = param(64, "training questions sampled from each training part, 0 for all")
    test_sets: list[str] = param(["medqa", "mmlu_medical"], "external test sets (names or files)")
    test_limit: int = param(60, "questions sampled from each test set, 0 for all")
    sample_seed: Optional[int] = param(
        None, "seed of the train_limit and test_limit samples; None: the split's seed (another sample, same split)"
    )
    scenarios: list[str] = param(["llm"], "label scenarios", LABEL_SCENARIOS, derived=True)
    difficulty_models: list[str] = param(["smollm2"], "models that score the LLM difficulty (IRT: its respondents)")
    irt_model: str = param("1pl", "item-response model of the irt scenario: 1pl (Rasch) or 2pl", IRT_MODELS)
    irt_respondents: Optional[str] = param(
        None,
        "the irt scenario's respondents: None for the difficulty_models, or an earlier study's run folder whose "
        "trained runs answered every training question in their test sets",
    )
    difficulty_file: Optional[str] = param(
        None, "precomputed labels: id,difficulty, or the authors' Index,llm_difficulty (0-based row of train_data)"
    )
    debias: bool = param(True, "average over cyclic option rotations (removes the letter bias)")
    precision: Optional[str] = param(
        None, "what this notebook computes in: fp32, bf16, auto; None: HILS_PRECISION, else auto", derived=True
    )
    parts: dict = param(
        {"holdout": ["medmcqa_test", "medqa", "mmlu_medical"]}, "training part -> its test set labels", derived=True
    )
    cluster_encoder: str = param(
        "minilm",
        "sentence encoder of the LLM-defined categories: minilm, a sentence-transformers folder or a cached hub id",
    )
    cluster_text: str = param(
        "question", "what is embedded: the question (authors' code) or question_options (the paper's text)", TEXTS
    )
    cluster_search: str = param(
        "scaled",
        "UMAP/HDBSCAN search: scaled to the data (30 trials) or paper (Table 4 ranges, 100 trials)",
        tuple(SEARCHES),
    )
    cluster_trials: Optional[int] = param(None, "search trials, None for the search's own")
    on_overlap: str = param(
        "drop",
        "test questions that also appear among the training or labelling questions (normalised text): drop them "
        "(counted in each cell's results.json), or stop with an error",
        ON_OVERLAP,
    )
    prepare_dir: str = param("runs/explore/prepare", "where split, questions and labels go", derived=True)


def _part_ids(table: pd.DataFrame, split: dict) -> dict[str, tuple[list[str], list[str]]]:
    """``{part: (train ids, own test ids)}`` for a holdout or k-fold split."""
    if split["kind"] == "holdout":
        s = train_test_split(table, test_size=float(split["test_fraction"]), seed=int(split["seed"]))
        return {"holdout": (s["train"], s["test"]), "_split": s}
    folds = kfold(table, k=int(split["k"]), seed=int(split["seed"]))
    parts = {f"fold{f['fold']}": (f["train"], f["test"]) for f in folds}
    parts["full"] = (table["id"].astype(str).tolist(), [])
    parts["_split"] = folds
    return parts


def prepare_data(
    train_data: str,
    split: dict,
    parts: dict[str, list[str]],
    test_sets: list[str],
    prepare_dir: str | Path,
    train_format: str | None = None,
    train_limit: int = 0,
    test_limit: int = 0,
    on_overlap: str = "drop",
    sample_seed: int | None = None,
) -> pd.DataFrame:
    """Split ``train_data``, sample each part's training and test questions, and write them as kit CSVs.

    Writes ``split.json``, ``train_<part>.csv``, ``test_<part>__<label>.csv`` (paths from
    :class:`hils_kit.core.layout.PrepareFiles`) and ``overlap.json`` into
    ``prepare_dir``. Leakage guard (:mod:`hils_kit.data.leakage`): a part's own test questions are checked against
    that part's training questions, an external test set against every training (and so labelled) question of
    the study; overlapping questions are dropped before sampling (or refused, ``on_overlap="error"``) and
    counted in ``overlap.json``. Returns one row per written file: part, role, label, questions, overlap.
    """
    files = PrepareFiles(prepare_dir)
    table = load_questions(train_data, format=train_format)
    ids = _part_ids(table, split)
    save_split(ids.pop("_split"), files.split)
    own = dataset_label(train_data)
    external = {dataset_label(s): s for s in test_sets}
    seed = int(split["seed"]) if sample_seed is None else sample_seed  # of the samples; the split keeps its own
    trains = {part: sample_questions(select(table, ids[part][0]), train_limit, seed=seed) for part in parts}
    every_training = question_keys(pd.concat(trains.values(), ignore_index=True))
    rows = []
    for part, labels in parts.items():
        save_questions(trains[part], files.train(part))
        rows.append({"part": part, "role": "train", "label": own, "questions": len(trains[part]), "overlap": 0})
        for label in labels:
            if label in (f"{own}_test", own) and label not in external:
                test, keys = select(table, ids[part][1]), question_keys(trains[part])
            elif label in external:
                test, keys = load_questions(external[label]), every_training
            else:
                raise ValueError(
                    f"test set '{label}' of part '{part}' is neither '{own}_test' nor one of "
                    f"{', '.join(external) or 'the external test sets'}"
                )
            test, dropped = drop_overlap(test, keys, label, on_overlap)
            test = sample_questions(test, test_limit, seed=seed)
            save_questions(test, files.test(part, label))
            rows.append({"part": part, "role": "test", "label": label, "questions": len(test), "overlap": dropped})
    written = pd.DataFrame(rows)
    overlap = {f"{r.part}/{r.label}": r.overlap for r in written.itertuples() if r.role == "test"}
    write_text_atomic(files.overlap, json.dumps(overlap, indent=1))
    return written


def overlap_dropped(prepare_dir: str | Path, part: str, labels: list[str]) -> dict[str, int]:
    """Per test set of a part, how many questions the leakage guard dropped (``overlap.json`` of 02)."""
    counts = json.loads(PrepareFiles(prepare_dir).overlap.read_text(encoding="utf-8"))
    return {label: int(counts[f"{part}/{label}"]) for label in labels}


def training_questions(prepare_dir: str | Path, parts) -> pd.DataFrame:
    """Every question that some part trains on, once."""
    tables = [load_questions(PrepareFiles(prepare_dir).train(part)) for part in parts]
    return pd.concat(tables, ignore_index=True).drop_duplicates("id").reset_index(drop=True)


def label_questions(
    table: pd.DataFrame,
    scenarios: list[str],
    prepare_dir: str | Path,
    difficulty_models: list[str],
    debias: bool = True,
    difficulty_file: str | None = None,
    cluster_encoder: str = "minilm",
    cluster_text: str = "question",
    cluster_search: str = "scaled",
    cluster_trials: int | None = None,
    precision: str | None = None,
    irt_model: str = "1pl",
    irt_respondents: str | None = None,
) -> pd.DataFrame:
    """Labels for ``table`` by scenario, written to ``prepare_dir/labels.csv`` and returned.

    Columns: ``id``; ``difficulty_human`` (examinee error rate) for ``human``; ``difficulty_llm`` for ``llm``
    and ``llm_clusters`` (from ``difficulty_file`` when given, else scored by ``difficulty_models``);
    ``difficulty_irt`` for ``irt`` (the rank percentile of an ``irt_model`` fitted to the right and wrong answers of
    the ``difficulty_models``, at least 3, or of the trained runs of the earlier study ``irt_respondents``:
    :mod:`hils_kit.labels.irt`; the fit is saved as ``irt.json``);
    ``cluster`` for ``*_clusters`` (a sentence encoder's embeddings clustered by :mod:`hils_kit.labels.categories`:
    ``cluster_encoder``, ``cluster_text``, ``cluster_search`` and its trials). ``precision``: what the
    difficulty models score in (:mod:`hils_kit.core.precision`).
    """
    from hils_kit.labels.difficulty import human_difficulty, label_difficulty

    files = PrepareFiles(prepare_dir)
    labels = pd.DataFrame({"id": table["id"].astype(str)})
    if "human" in scenarios:
        labels["difficulty_human"] = human_difficulty(table).to_numpy()
    llm = None
    if "irt" in scenarios and difficulty_file and not irt_respondents:
        raise ValueError(
            f"scenario 'irt' fits the right and wrong answers of the difficulty_models; difficulty_file "
            f"{difficulty_file} holds difficulties only: drop it, or drop 'irt' from scenarios"
        )
    if any(s.startswith("llm") for s in scenarios):
        if difficulty_file:
            given = read_labels(difficulty_file, table, data_rows=table.attrs.get("data_rows"))
            if "difficulty" not in given:
                raise ValueError(
                    f"{difficulty_file}: needs a 'difficulty' column (id,difficulty or "
                    f"Index,llm_difficulty); has {', '.join(given.columns)}"
                )
            labels["difficulty_llm"] = given["difficulty"].to_numpy()
        else:
            llm = label_difficulty(table, difficulty_models, debias, files.llm_difficulty, precision=precision)
            labels["difficulty_llm"] = llm["difficulty"].to_numpy()
    if "irt" in scenarios:
        from hils_kit.labels.irt import difficulty_percentile, fit_irt

        answers = irt_answers(table, difficulty_models, debias, files, precision, irt_respondents, llm)
        fit = fit_irt(answers, irt_model)
        labels["difficulty_irt"] = difficulty_percentile(fit).to_numpy()
        record = {
            "model": fit.model,
            "respondents": fit.ability.round(4).to_dict(),
            "difficulty_logit": fit.difficulty.round(4).to_dict(),
        }
        write_text_atomic(files.irt, json.dumps(record, indent=1))
    if any(s.endswith("_clusters") for s in scenarios):
        from hils_kit.labels.categories import label_categories

        result = label_categories(
            table,
            cluster_encoder,
            files.clusters,
            n_trials=cluster_trials,
            search=cluster_search,
            text=cluster_text,
        )
        labels["cluster"] = [f"cluster {c}" for c in result.labels]
    with atomic_path(files.labels) as tmp:
        labels.to_csv(tmp, index=False)
    return labels


def irt_answers(table, difficulty_models, debias, files, precision, respondents=None, llm=None) -> pd.DataFrame:
    """The right/wrong answers IRT is fitted to, one row per training question: the ``difficulty_models``' (scored
    as for the LLM difficulty, reusing ``llm`` when given), or those of the trained runs of the earlier study run
    folder ``respondents``, which must have answered every training question."""
    from hils_kit.labels.difficulty import label_difficulty, right_column
    from hils_kit.labels.irt import MIN_RESPONDENTS

    ids = table["id"].astype(str)
    if respondents:
        from hils_kit.analyse.predictions import run_answers

        answers = run_answers(respondents).reindex(ids)
        missing = answers.isna().any(axis=1)
        if missing.any():
            shown = ", ".join(ids[missing.to_numpy()].head(3))
            raise ValueError(
                f"irt_respondents {respondents}: {int(missing.sum())} of {len(ids)} training questions were not "
                f"answered by every one of its {answers.shape[1]} runs (e.g. {shown}); the irt scenario labels "
                "every training question: give an earlier study whose test sets hold them"
            )
        return answers.astype(int)
    if len(difficulty_models) < MIN_RESPONDENTS:  # refused before any model is loaded
        raise ValueError(
            f"scenario 'irt' needs at least {MIN_RESPONDENTS} respondents, but difficulty_models has "
            f"{len(difficulty_models)} ({', '.join(difficulty_models)}): add models to it, or name an earlier "
            "study's runs (irt_respondents)"
        )
    if llm is None:
        llm = label_difficulty(table, difficulty_models, debias, files.llm_difficulty, precision=precision)
    answers = llm.set_index("id")[[right_column(m) for m in difficulty_models]]
    return answers.set_axis(list(difficulty_models), axis=1)


# ----------------------------------------------------------------------------- the notebook's steps


def split_and_sample(params: PrepareParams) -> pd.DataFrame:
    """Step 1 of 02: the study's split and each part's sampled training and test files (:func:`prepare_data`)."""
    return prepare_data(
        params.train_data,
        params.split,
        params.parts,
        params.test_sets,
        params.prepare_dir,
        train_format=params.train_format,
        train_limit=params.train_limit,
        test_limit=params.test_limit,
        on_overlap=params.on_overlap,
        sample_seed=params.sample_seed,
    )


def label(params: PrepareParams, train: pd.DataFrame) -> pd.DataFrame:
    """Step 2 of 02: the labels of the training questions ``train`` (:func:`label_questions`)."""
    return label_questions(
        train,
        params.scenarios,
        params.prepare_dir,
        params.difficulty_models,
        debias=params.debias,
        difficulty_file=params.difficulty_file,
        cluster_encoder=params.cluster_encoder,
        cluster_text=params.cluster_text,
        cluster_search=params.cluster_search,
        cluster_trials=params.cluster_trials,
        precision=params.precision,
        irt_model=params.irt_model,
        irt_respondents=params.irt_respondents,
    )
