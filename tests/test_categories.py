"""LLM-defined categories: sentence encoder, UMAP/HDBSCAN search, noise reassignment, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from hils_kit.cli import main
from hils_kit.core.paths import cache_dir
from hils_kit.data import assets
from hils_kit.data.loaders import save_questions
from hils_kit.labels.categories import (
    PAPER_SEARCH_SPACE,
    assign_noise,
    cluster_objective,
    cluster_questions,
    cluster_report,
    default_search_space,
    embed_questions,
    encoder_folder,
    search_space,
    umap_with_cached_compilation,
)
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
    assert result.n_trials == 3 and result.search_space == default_search_space(312)
    assert all(lo <= result.params[k] <= hi for k, (lo, hi) in result.search_space.items())
    umap = umap_with_cached_compilation()  # the fit's numba functions were kept on disk for the next process
    assert type(umap.umap_.smooth_knn_dist._cache).__name__ == "FunctionCache"
    assert type(umap.utils.fast_knn_indices._cache).__name__ == "FunctionCache"


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


def test_search_spaces_scaled_paper_and_custom():
    assert default_search_space(874)["min_cluster_size"] == (22, 35)  # paper: 25-35 for 874 LEK questions
    small = default_search_space(12)
    assert all(lo <= hi <= 10 for lo, hi in small.values())
    assert search_space("paper", 874) == {"n_neighbors": (8, 20), "n_components": (3, 15), "min_cluster_size": (25, 35)}
    assert search_space("paper", 874) == PAPER_SEARCH_SPACE
    custom = search_space({"n_neighbors": [6, 9]}, 400)
    assert (
        custom["n_neighbors"] == (6, 9) and custom["min_cluster_size"] == default_search_space(400)["min_cluster_size"]
    )
    with pytest.raises(ValueError, match="should be one of scaled, paper"):
        search_space("bayes", 400)
    with pytest.raises(ValueError, match="unknown cluster search parameter.*min_samples"):
        search_space({"min_samples": (2, 3)}, 400)
    with pytest.raises(ValueError, match=r"n_components = \(9, 4\)"):
        search_space({"n_components": (9, 4)}, 400)
    with pytest.raises(ValueError, match="does not fit 30 questions"):
        search_space("paper", 30)


def test_minilm_unzips_once_and_atomically(tmp_path):
    target = tmp_path / "all-MiniLM-L6-v2"
    target.mkdir()
    (target / "config.json").write_text("{}")  # an interrupted earlier extraction: no modules.json
    folder = assets.minilm_dir(tmp_path)
    assert folder == target and (folder / "modules.json").exists() and (folder / "model.safetensors").exists()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert assets.minilm_dir(tmp_path) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["all-MiniLM-L6-v2"]  # no temporary folder left


def test_minilm_embeddings_offline_shape_and_determinism():
    assert encoder_folder("minilm") == cache_dir() / "models" / "all-MiniLM-L6-v2"
    table = make_questions(5)
    table.loc[2, "question"] = "A long stem " * 20
    first = embed_questions(table, "minilm", batch_size=5)
    assert first.shape == (5, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)  # the model normalises
    np.testing.assert_allclose(embed_questions(table, "minilm", batch_size=2), first, atol=1e-5)
    alone = embed_questions(table.iloc[[0]], "minilm")  # padding in a batch must not change a vector
    np.testing.assert_allclose(alone[0], first[0], atol=1e-5)
    with_options = embed_questions(table, "minilm", text="question_options")
    assert not np.allclose(with_options, first) and (with_options @ first.T).diagonal().min() > 0.5
    with pytest.raises(ValueError, match="embedding text 'answers'"):
        embed_questions(table, "minilm", text="answers")


def test_encoder_names_are_checked(tmp_path):
    assert encoder_folder(str(encoder_folder("minilm"))) == encoder_folder("minilm")  # a folder works too
    with pytest.raises(ValueError, match="no modules.json"):
        encoder_folder(str(tmp_path))
    with pytest.raises(ValueError, match="unknown encoder 'nobody/no-such-encoder'"):
        encoder_folder("nobody/no-such-encoder")


def test_cluster_report_sizes_terms_and_category():
    table = make_questions(12)
    labels = np.array([0, 1, 2] * 4)  # make_questions cycles the three categories the same way
    report = cluster_report(table, labels)
    assert report["size"].tolist() == [4, 4, 4]
    assert (report["main_share"] == 1.0).all() and report["top_terms"].str.len().gt(0).all()


def test_cli_categories_end_to_end(tmp_path, capsys):
    data = save_questions(make_questions(60, categories=("Anatomy", "Surgery")), tmp_path / "q.csv")
    out = tmp_path / "clusters.csv"
    code = main(["label", "categories", str(data), "--trials", "3", "--clusters", "2,20", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "clusters, objective" in printed and "adjusted Rand index" in printed
    assert "scaled search, 3 trials" in printed
    labels = pd.read_csv(out)
    assert list(labels.columns) == ["id", "cluster", "probability", "was_noise"] and len(labels) == 60
    assert (labels["cluster"] >= 0).all()
    meta = json.loads((tmp_path / "clusters.meta.json").read_text())
    assert meta["encoder"] == "minilm" and meta["text"] == "question" and meta["embedding_dim"] == 384
    assert meta["search"] == "scaled" and meta["n_trials"] == 3
    assert meta["search_space"] == {k: list(v) for k, v in default_search_space(60).items()}
    assert sum(meta["sizes"].values()) == 60 and meta["noise_share"] == pytest.approx(
        labels["was_noise"].mean(), abs=1e-4
    )


def test_cli_categories_bad_inputs(tmp_path, capsys):
    data = save_questions(make_questions(30), tmp_path / "q.csv")
    out = tmp_path / "c.csv"
    assert main(["label", "categories", str(data), "--encoder", "/no/such/folder", "-o", str(out)]) == 2
    assert "unknown encoder '/no/such/folder'" in capsys.readouterr().err
    assert main(["label", "categories", str(data), "--search", "paper", "-o", str(out)]) == 2
    assert "does not fit 30 questions" in capsys.readouterr().err
    assert main(["label", "categories", str(tmp_path / "missing.csv"), "-o", str(out)]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not out.exists()


def test_a_study_labels_llm_clusters_with_the_sentence_encoder(tmp_path):
    from hils_kit.data.loaders import load_questions
    from hils_kit.data.splits import sample_questions
    from hils_kit.stages.prepare import label_questions

    table = sample_questions(load_questions("medmcqa"), 60, seed=0)
    pd.DataFrame({"id": table["id"], "difficulty": np.linspace(0, 1, len(table))}).to_csv(
        tmp_path / "d.csv", index=False
    )
    labels = label_questions(
        table, ["llm_clusters"], tmp_path, ["unused"], difficulty_file=str(tmp_path / "d.csv"), cluster_trials=3
    )
    assert list(labels.columns) == ["id", "difficulty_llm", "cluster"] and labels["cluster"].notna().all()
    meta = json.loads((tmp_path / "clusters.meta.json").read_text())
    assert meta["encoder"] == "minilm" and meta["n_trials"] == 3 and meta["search"] == "scaled"
