"""LLM-defined categories: embed the questions, reduce with UMAP, cluster with HDBSCAN (paper §3, App. C).

UMAP (cosine, ``min_dist=0``) and HDBSCAN (euclidean, excess-of-mass) hyper-parameters are searched with
optuna's seeded TPE sampler, minimising the paper's objective: the share of questions whose cluster
membership probability is below 0.05, plus 0.20 when the number of clusters is outside ``cluster_range``.

HDBSCAN leaves outliers unlabelled (−1), and the paper does not say what it did with them. Here every
noise point joins the cluster whose centroid (in the UMAP space of the chosen trial) is nearest, so every
question gets a category; ``was_noise`` records which ones were moved.

>>> from hils_kit.loaders import load_questions
>>> table = load_questions("medmcqa").sample(400, random_state=0)          # doctest: +SKIP
>>> result = label_categories(table, "smollm2", "/tmp/clusters.csv")       # doctest: +SKIP
>>> cluster_report(table, result.labels).head()                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hils_kit.models import model_folder
from hils_kit.paths import atomic_path, write_text_atomic
from hils_kit.progress import progress_bar

log = logging.getLogger(__name__)

LOW_PROBABILITY = 0.05  # membership probability under which a point counts as unclustered
RANGE_PENALTY = 0.20  # added when the cluster count falls outside cluster_range
# exam boilerplate that would otherwise top every cluster's terms
MCQ_STOP_WORDS = {"following", "true", "false", "except", "seen", "used", "commonly", "likely", "best",
                  "correct", "incorrect", "statement", "statements", "regarding", "shows", "given"}


# ----------------------------------------------------------------------------- embeddings


def question_texts(table: pd.DataFrame) -> list[str]:
    """The text that is embedded: the question, then each option on its own line."""
    return [f"{q}\n" + "\n".join(o) for q, o in zip(table["question"], table["options"])]


def _is_sentence_transformer(model: str) -> bool:
    folder = Path(model).expanduser()
    if not (folder / "modules.json").exists():
        return False
    try:
        import sentence_transformers  # noqa: F401  (optional, not a kit dependency)
    except ImportError:
        return False
    return True


def embed_questions(table: pd.DataFrame, model: str = "smollm2", batch_size: int = 16,
                    max_length: int = 512) -> np.ndarray:
    """One vector per question: the attention-mask-weighted mean of a causal LM's last hidden states.

    ``model`` is any name :func:`hils_kit.models.load_model` accepts. A sentence-transformers folder
    (with ``modules.json``) is encoded with that library instead when it is installed.
    """
    texts = question_texts(table)
    model_folder(model)  # a clear error for a bad name before anything loads
    if _is_sentence_transformer(model):
        from sentence_transformers import SentenceTransformer

        return np.asarray(SentenceTransformer(str(Path(model).expanduser())).encode(texts, batch_size=batch_size))

    import torch

    from hils_kit.models import load_model

    lm, tokenizer = load_model(model)
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([-len(e) for e in encoded], kind="stable")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(lm.parameters()).device
    out = None
    with torch.inference_mode(), progress_bar(total=len(texts), desc="embedding") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            longest = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), longest), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding: causal attention never sees the pads
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            hidden = lm.base_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            weights = mask.to(device).unsqueeze(-1).to(hidden.dtype)
            pooled = ((hidden * weights).sum(1) / weights.sum(1)).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
            bar.update(len(idx))
    return out


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


def cluster_objective(probabilities: np.ndarray, n_clusters: int, cluster_range: tuple[int, int]) -> float:
    """The paper's loss: share of points with probability < 0.05, + 0.20 outside ``cluster_range``."""
    low = float(np.mean(probabilities < LOW_PROBABILITY))
    return low + (RANGE_PENALTY if not cluster_range[0] <= n_clusters <= cluster_range[1] else 0.0)


def _fit(embeddings: np.ndarray, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UMAP then HDBSCAN with one set of hyper-parameters: ``(reduced, labels, probabilities)``."""
    import umap
    from sklearn.cluster import HDBSCAN

    reducer = umap.UMAP(n_neighbors=params["n_neighbors"], n_components=params["n_components"],
                        metric="cosine", min_dist=0.0, random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(n_jobs|spectral initialisation|Graph is not fully connected).*")
        reduced = reducer.fit_transform(embeddings)
    hdb = HDBSCAN(min_cluster_size=params["min_cluster_size"], metric="euclidean",
                  cluster_selection_method="eom", copy=True).fit(reduced)
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


def cluster_questions(embeddings: np.ndarray, n_trials: int = 30, seed: int = 0,
                      cluster_range: tuple[int, int] = (6, 20), search_space: dict | None = None,
                      verbose: bool = False) -> Clustering:
    """Search UMAP/HDBSCAN hyper-parameters with seeded TPE and return the best clustering.

    ``search_space`` maps ``n_neighbors``, ``n_components`` and ``min_cluster_size`` to inclusive
    ``(low, high)`` integer ranges; missing keys take :func:`default_search_space`. Optuna's per-trial
    log lines are silenced unless ``verbose``.
    """
    import optuna

    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(embeddings) < 10:
        raise ValueError(f"clustering needs at least 10 questions, got {len(embeddings)}")
    space = {**default_search_space(len(embeddings)), **(search_space or {})}
    best: dict = {}

    def objective(trial) -> float:
        params = {name: trial.suggest_int(name, lo, hi) for name, (lo, hi) in space.items()}
        reduced, labels, probs = _fit(embeddings, params, seed)
        n_clusters = int(labels.max()) + 1
        value = cluster_objective(probs, n_clusters, cluster_range)
        trial.set_user_attr("n_clusters", n_clusters)
        if not best or value < best["value"]:
            best.update(value=value, params=params, reduced=reduced, labels=labels, probs=probs,
                        n_clusters=n_clusters)
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
    log.info("chosen %s: %d clusters, objective %.3f (%.1f%% noise)", best["params"], best["n_clusters"],
             best["value"], 100 * np.mean(labels < 0))
    return Clustering(assign_noise(best["reduced"], labels), best["probs"], labels < 0, best["params"],
                      best["value"], best["reduced"])


# ----------------------------------------------------------------------------- report and files


def cluster_report(table: pd.DataFrame, labels: np.ndarray, n_terms: int = 8) -> pd.DataFrame:
    """Per cluster: size, top TF-IDF terms and the most common human category with its share.

    Terms are the largest mean TF-IDF weights over the cluster's questions and options, with English and
    exam stop words (:data:`MCQ_STOP_WORDS`) removed.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    labels = np.asarray(labels)
    tfidf = TfidfVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | MCQ_STOP_WORDS),
                            token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b", min_df=2)
    matrix = tfidf.fit_transform(question_texts(table))
    terms = tfidf.get_feature_names_out()
    categories = table["category"].to_numpy() if "category" in table else None
    rows = []
    for c in np.unique(labels):
        members = labels == c
        weight = np.asarray(matrix[members].mean(axis=0)).ravel()
        row = {"cluster": int(c), "size": int(members.sum()),
               "top_terms": ", ".join(terms[np.argsort(-weight)[:n_terms]])}
        if categories is not None:
            counts = pd.Series(categories[members]).value_counts()
            row.update(main_category=counts.index[0], main_share=round(counts.iloc[0] / members.sum(), 3))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("size", ascending=False, kind="stable").reset_index(drop=True)


def label_categories(table: pd.DataFrame, model: str, path: str | Path, n_trials: int = 30, seed: int = 0,
                     cluster_range: tuple[int, int] = (6, 20), search_space: dict | None = None,
                     batch_size: int = 16) -> Clustering:
    """Embed, cluster and write ``id,cluster,probability,was_noise`` to ``path`` with a sidecar JSON.

    The sidecar (``clusters.meta.json`` beside ``clusters.csv``) records the model, the chosen
    hyper-parameters, the objective and the cluster sizes.
    """
    embeddings = embed_questions(table, model, batch_size)
    result = cluster_questions(embeddings, n_trials, seed, cluster_range, search_space)
    path = Path(path)
    out = pd.DataFrame({"id": table["id"].astype(str).to_numpy(), "cluster": result.labels,
                        "probability": result.probabilities.round(4), "was_noise": result.was_noise})
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    meta = {"model": model, "n_questions": len(table), "n_trials": n_trials, "seed": seed,
            "cluster_range": list(cluster_range), "params": result.params, "objective": result.objective,
            "n_clusters": result.n_clusters, "noise_reassigned": int(result.was_noise.sum()),
            "sizes": result.sizes()}
    write_text_atomic(path.with_name(f"{path.stem}.meta.json"), json.dumps(meta, indent=1))
    return result
