"""LLM-defined categories: embeddings, UMAP/HDBSCAN search, noise reassignment, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from hils_kit.categories import (
    assign_noise,
    cluster_objective,
    cluster_questions,
    cluster_report,
    default_search_space,
    embed_questions,
)
from hils_kit.cli import main
from hils_kit.loaders import save_questions
from tests.conftest import make_questions


def test_blobs_are_found_and_noise_is_reassigned():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 32)) * 3
    blobs = np.concatenate([c + rng.normal(size=(50, 32)) for c in centers])
    outliers = rng.normal(size=(12, 32)) * 3
    result = cluster_questions(np.concatenate([blobs, outliers]), n_trials=3, seed=0)
    truth = np.repeat(np.arange(6), 50)
    assert adjusted_rand_score(truth, result.labels[:300]) > 0.9
    assert (result.labels >= 0).all() and result.n_clusters == 6
    assert result.was_noise.shape == (312,) and result.probabilities[result.was_noise].max(initial=0) == 0
    assert sum(result.sizes().values()) == 312
    assert set(result.params) == {"n_neighbors", "n_components", "min_cluster_size"}
    assert result.objective == pytest.approx(cluster_objective(result.probabilities, 6, (6, 20)))


def test_noise_joins_nearest_centroid():
    reduced = np.array([[0.0, 0], [0, 1], [10, 10], [10, 11], [1, 0], [9, 9]])
    labels = np.array([0, 0, 1, 1, -1, -1])
    assert assign_noise(reduced, labels).tolist() == [0, 0, 1, 1, 0, 1]
    with pytest.raises(ValueError, match="no cluster"):
        assign_noise(reduced, np.full(6, -1))


def test_objective_penalises_cluster_count_outside_range():
    probs = np.array([0.0, 0.01, 0.5, 0.9])
    assert cluster_objective(probs, 6, (6, 20)) == pytest.approx(0.5)
    assert cluster_objective(probs, 21, (6, 20)) == pytest.approx(0.7)


def test_search_space_scales_with_points():
    assert default_search_space(874)["min_cluster_size"] == (22, 35)  # paper: 25-35 for 874 LEK questions
    small = default_search_space(12)
    assert all(lo <= hi <= 10 for lo, hi in small.values())


def test_embeddings_shape_determinism_and_padding(tiny_model):
    table = make_questions(5)
    table.loc[2, "question"] = "A long stem " * 20
    first = embed_questions(table, "tiny", batch_size=5)
    assert first.shape == (5, tiny_model[0].config.hidden_size) and np.isfinite(first).all()
    np.testing.assert_allclose(embed_questions(table, "tiny", batch_size=2), first, rtol=1e-4, atol=1e-5)
    alone = embed_questions(table.iloc[[0]], "tiny")  # padding in a batch must not change a vector
    np.testing.assert_allclose(alone[0], first[0], rtol=1e-4, atol=1e-5)


def test_cluster_report_sizes_terms_and_category():
    table = make_questions(12)
    labels = np.array([0, 1, 2] * 4)  # make_questions cycles the three categories the same way
    report = cluster_report(table, labels)
    assert report["size"].tolist() == [4, 4, 4]
    assert (report["main_share"] == 1.0).all() and report["top_terms"].str.len().gt(0).all()


def test_cli_categories_end_to_end(tmp_path, capsys):
    data = save_questions(make_questions(60, categories=("Anatomy", "Surgery")), tmp_path / "q.csv")
    out = tmp_path / "clusters.csv"
    code = main(["label", "categories", str(data), "--model", "tiny", "--trials", "3", "--clusters", "2,20",
                 "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "clusters, objective" in printed and "adjusted Rand index" in printed
    labels = pd.read_csv(out)
    assert list(labels.columns) == ["id", "cluster", "probability", "was_noise"] and len(labels) == 60
    assert (labels["cluster"] >= 0).all()
    meta = json.loads((tmp_path / "clusters.meta.json").read_text())
    assert meta["n_trials"] == 3 and sum(meta["sizes"].values()) == 60


def test_cli_categories_bad_inputs(tmp_path, capsys):
    data = save_questions(make_questions(30), tmp_path / "q.csv")
    assert main(["label", "categories", str(data), "--model", "/no/such/folder", "-o", str(tmp_path / "c.csv")]) == 2
    assert "unknown model '/no/such/folder'" in capsys.readouterr().err
    assert main(["label", "categories", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "c.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()
