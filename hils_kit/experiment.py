"""The two steps a study runs through its notebooks: prepare the data and labels once, then run each cell.

``02_difficulty_labeling`` calls :func:`prepare_data` and :func:`label_questions`; ``03_train_evaluate``
calls :func:`cell_training_table` and :func:`cell_test_sets`. The file names come from :mod:`hils_kit.study`
and the label columns from :data:`hils_kit.contract.SCENARIO`, so the runner, the notebooks and the analysis
agree.

>>> prepare_data("medmcqa", {"kind": "holdout", "test_fraction": 0.2, "seed": 0},
...              {"holdout": ["medmcqa_test"]}, [], "/tmp/prepare", train_limit=8, test_limit=4)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from hils_kit.contract import SCENARIO
from hils_kit.labels import read_labels
from hils_kit.leakage import drop_overlap, question_keys
from hils_kit.loaders import load_questions, save_questions
from hils_kit.paths import atomic_path, write_text_atomic
from hils_kit.splits import kfold, sample_questions, save_split, select, train_test_split
from hils_kit.study import dataset_label, test_file, train_file

log = logging.getLogger(__name__)
OVERLAP_FILE = "overlap.json"


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
) -> pd.DataFrame:
    """Split ``train_data``, sample each part's training and test questions, and write them as kit CSVs.

    Writes ``split.json``, ``train_<part>.csv``, ``test_<part>__<label>.csv`` (paths from
    :func:`hils_kit.study.train_file` / :func:`~hils_kit.study.test_file`) and ``overlap.json`` into
    ``prepare_dir``. Leakage guard (:mod:`hils_kit.leakage`): a part's own test questions are checked against
    that part's training questions, an external test set against every training (and so labelled) question of
    the study; overlapping questions are dropped before sampling (or refused, ``on_overlap="error"``) and
    counted in ``overlap.json``. Returns one row per written file: part, role, label, questions, overlap.
    """
    prepare_dir = Path(prepare_dir)
    table = load_questions(train_data, format=train_format)
    ids = _part_ids(table, split)
    save_split(ids.pop("_split"), prepare_dir / "split.json")
    own = dataset_label(train_data)
    external = {dataset_label(s): s for s in test_sets}
    trains = {
        part: sample_questions(select(table, ids[part][0]), train_limit, seed=int(split["seed"])) for part in parts
    }
    every_training = question_keys(pd.concat(trains.values(), ignore_index=True))
    rows = []
    for part, labels in parts.items():
        save_questions(trains[part], train_file(prepare_dir, part))
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
            test = sample_questions(test, test_limit, seed=int(split["seed"]))
            save_questions(test, test_file(prepare_dir, part, label))
            rows.append({"part": part, "role": "test", "label": label, "questions": len(test), "overlap": dropped})
    files = pd.DataFrame(rows)
    overlap = {f"{r.part}/{r.label}": r.overlap for r in files.itertuples() if r.role == "test"}
    write_text_atomic(prepare_dir / OVERLAP_FILE, json.dumps(overlap, indent=1))
    return files


def overlap_dropped(prepare_dir: str | Path, part: str, labels: list[str]) -> dict[str, int]:
    """Per test set of a part, how many questions the leakage guard dropped (``overlap.json`` of 02)."""
    counts = json.loads((Path(prepare_dir) / OVERLAP_FILE).read_text(encoding="utf-8"))
    return {label: int(counts[f"{part}/{label}"]) for label in labels}


def training_questions(prepare_dir: str | Path, parts) -> pd.DataFrame:
    """Every question that some part trains on, once."""
    tables = [load_questions(train_file(prepare_dir, part)) for part in parts]
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
) -> pd.DataFrame:
    """Labels for ``table`` by scenario, written to ``prepare_dir/labels.csv`` and returned.

    Columns: ``id``; ``difficulty_human`` (examinee error rate) for ``human``; ``difficulty_llm`` for ``llm``
    and ``llm_clusters`` (from ``difficulty_file`` when given, else scored by ``difficulty_models``);
    ``cluster`` for ``*_clusters`` (a sentence encoder's embeddings clustered by :mod:`hils_kit.categories`:
    ``cluster_encoder``, ``cluster_text``, ``cluster_search`` and its trials). ``precision``: what the
    difficulty models score in (:mod:`hils_kit.precision`).
    """
    from hils_kit.difficulty import human_difficulty, label_difficulty

    prepare_dir = Path(prepare_dir)
    labels = pd.DataFrame({"id": table["id"].astype(str)})
    if "human" in scenarios:
        labels["difficulty_human"] = human_difficulty(table).to_numpy()
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
            llm = label_difficulty(
                table, difficulty_models, debias, prepare_dir / "llm_difficulty.csv", precision=precision
            )
            labels["difficulty_llm"] = llm["difficulty"].to_numpy()
    if any(s.endswith("_clusters") for s in scenarios):
        from hils_kit.categories import label_categories

        result = label_categories(
            table,
            cluster_encoder,
            prepare_dir / "clusters.csv",
            n_trials=cluster_trials,
            search=cluster_search,
            text=cluster_text,
        )
        labels["cluster"] = [f"cluster {c}" for c in result.labels]
    with atomic_path(prepare_dir / "labels.csv") as tmp:
        labels.to_csv(tmp, index=False)
    return labels


def cell_training_table(prepare_dir: str | Path, part: str, scenario: str) -> pd.DataFrame:
    """The training questions of ``part`` with the scenario's labels as ``difficulty`` (and ``cluster``)."""
    prepare_dir = Path(prepare_dir)
    table = load_questions(train_file(prepare_dir, part))
    labels = pd.read_csv(prepare_dir / "labels.csv", dtype={"id": str})
    table = table.drop(columns=[c for c in labels.columns if c != "id" and c in table]).merge(
        labels, on="id", how="left"
    )
    column = SCENARIO[scenario].difficulty_column
    if column is not None:
        if column not in table or table[column].isna().any():
            raise ValueError(
                f"{prepare_dir / 'labels.csv'}: no '{column}' labels for every question of part "
                f"'{part}' (scenario '{scenario}')"
            )
        table["difficulty"] = table[column]
    return table


def cell_test_sets(prepare_dir: str | Path, part: str, labels: list[str]) -> dict[str, pd.DataFrame]:
    """The test sets prepared for ``part``, by label."""
    return {label: load_questions(test_file(prepare_dir, part, label)) for label in labels}
