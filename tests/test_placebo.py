"""Placebo twins: the schedule's shape on shuffled labels, uncorrelated with the real ones, in studies and the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from hils_kit.analyse.comparisons import placebo_comparisons
from hils_kit.analyse.report import analyse_study
from hils_kit.cli import main
from hils_kit.data.loaders import load_questions, save_questions
from hils_kit.order.orderings import VARIANTS, category_sequence, order_questions
from hils_kit.order.placebo import MAX_ASSOCIATION, draw_placebo, kappa, rank_r
from hils_kit.order.registry import PLACEBOS, STRATEGY, placebo_twin, strategy_name
from hils_kit.stats.simulate import simulate_predictions
from hils_kit.study.cells import expand_cells
from hils_kit.study.config import study_from_dict
from hils_kit.study.loading import load_study


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """200 MedMCQA questions with a synthetic difficulty (a few ties, as labels give)."""
    sample = load_questions("medmcqa").sample(200, random_state=0).reset_index(drop=True)
    return sample.assign(difficulty=np.random.default_rng(1).integers(0, 40, len(sample)) / 40)


def run_lengths(values) -> list[int]:
    return [len(list(group)) for _, group in itertools.groupby(values)]


def shape(ordered: pd.DataFrame) -> dict:
    """The schedule's shape: the runs of its structure columns and their lengths, and the tier and round sizes."""
    columns = [c for c in ("block", "round", "tier") if c in ordered]
    keys = list(map(tuple, ordered[columns].to_numpy()))
    sizes = {c: ordered[c].value_counts().sort_index().to_dict() for c in ("round", "tier") if c in ordered}
    return {"columns": columns, "runs": [k for k, _ in itertools.groupby(keys)], "lengths": run_lengths(keys), **sizes}


def test_every_structured_strategy_has_a_registered_twin():
    no_twin = [k for k in STRATEGY if not placebo_twin(k) and not STRATEGY[k].placebo_of]
    assert no_twin == ["random", "random_matched"]  # the orders that use neither labels nor losses
    for key in PLACEBOS:
        twin, real = STRATEGY[key], STRATEGY[STRATEGY[key].placebo_of]
        assert key == f"{real.key}_placebo" and placebo_twin(real.key) == key and not twin.in_paper
        assert (twin.uses_category, twin.uses_difficulty, twin.order) == (
            real.uses_category,
            real.uses_difficulty,
            real.order,
        )
    assert strategy_name("interleaved_curriculum_placebo") == "Interleaved Curriculum (placebo)"


@pytest.mark.parametrize("placebo", PLACEBOS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_placebo_keeps_the_shape_of_its_strategy(table, placebo, variant):
    real = order_questions(table, STRATEGY[placebo].placebo_of, variant=variant, seed=4)
    twin = order_questions(table, placebo, variant=variant, seed=4)
    if "open_share" in real:  # competence: the pool opens alike; what it draws from it is random
        assert twin["open_share"].tolist() == real["open_share"].tolist()
    else:
        assert shape(twin) == shape(real)
    if STRATEGY[placebo].uses_category:  # the same category blocks, filled with other questions
        assert run_lengths(twin["placebo_category"]) == run_lengths(real["category"])
        assert set(twin["placebo_category"]) == set(real["category"])
    assert sorted(twin["id"]) == sorted(table["id"])


def test_a_placebo_orders_by_its_shuffled_labels(table):
    twin = order_questions(table, "curriculum_placebo", seed=2)
    assert twin["placebo_difficulty"].is_monotonic_increasing and not twin["difficulty"].is_monotonic_increasing
    assert sorted(twin["placebo_difficulty"]) == sorted(table["difficulty"])
    blocked = order_questions(table, "blocked_placebo", seed=2)
    expected = category_sequence(table["category"], "size")
    assert [c for c, _ in itertools.groupby(blocked["placebo_category"])] == expected


@pytest.mark.parametrize("placebo", [p for p in PLACEBOS if not STRATEGY[p].adaptive])  # tests/test_adaptive.py
def test_the_shuffled_labels_are_uncorrelated_with_the_real_ones_and_recorded(table, placebo):
    twin = order_questions(table, placebo, seed=0)
    record = twin.attrs["placebo"]
    assert record["of"] == STRATEGY[placebo].placebo_of and record["seed"] == 0 and record["uncorrelated"]
    if STRATEGY[placebo].uses_difficulty:
        r = rank_r(twin["difficulty"].to_numpy(), twin["placebo_difficulty"].to_numpy())
        assert abs(record["difficulty_rank_r"]) < MAX_ASSOCIATION and record["difficulty_rank_r"] == pytest.approx(r)
    if STRATEGY[placebo].uses_category:
        k = kappa(twin["category"].to_numpy(), twin["placebo_category"].to_numpy())
        assert abs(record["category_kappa"]) < MAX_ASSOCIATION and record["category_kappa"] == pytest.approx(k)


def test_one_seed_gives_one_placebo_and_other_seeds_others(table):
    a, again = (order_questions(table, "blocked_curriculum_placebo", seed=5) for _ in range(2))
    pd.testing.assert_frame_equal(a, again)
    assert a.attrs["placebo"] == again.attrs["placebo"]
    labels = {
        seed: order_questions(table, "blocked_curriculum_placebo", seed=seed).set_index("id")["placebo_difficulty"]
        for seed in range(4)
    }
    assert len({tuple(labels[seed].sort_index()) for seed in labels}) == 4


def test_the_draw_goes_on_until_a_permutation_passes_and_keeps_the_best_when_none_can():
    trending = np.arange(40.0)
    labels = draw_placebo(trending, None, seed=0)
    assert labels.uncorrelated and abs(labels.difficulty_rank_r) < MAX_ASSOCIATION
    assert draw_placebo(trending, None, seed=0).attempt == labels.attempt
    tiny = draw_placebo(np.array([0.1, 0.9]), np.array(["a", "b"]), seed=0)  # two questions: r is always +-1
    assert not tiny.uncorrelated and abs(tiny.difficulty_rank_r) == pytest.approx(1)
    single = draw_placebo(np.full(5, 0.5), np.array(["a"] * 5), seed=0)  # nothing to carry over
    assert single.uncorrelated and single.difficulty_rank_r is None and single.category_kappa is None


def test_placebo_true_adds_a_twin_cell_for_every_structured_strategy():
    base = {"models": ["tiny"], "preset": "tiny", "scenarios": ["llm"], "replicates": 2}
    config = study_from_dict({**base, "strategies": ["random", "curriculum", "blocked"], "placebo": True})
    cells = expand_cells(config)
    by_strategy = {s: [c for c in cells if c.strategy == s] for s in {c.strategy for c in cells}}
    assert sorted(by_strategy) == ["blocked", "blocked_placebo", "curriculum", "curriculum_placebo", "random"]
    for twin in ("curriculum_placebo", "blocked_placebo"):
        real = by_strategy[STRATEGY[twin].placebo_of]
        assert [(c.scenario, c.replicate, c.order_index, c.train_index) for c in by_strategy[twin]] == [
            (c.scenario, c.replicate, c.order_index, c.train_index) for c in real
        ]
    assert not any(c.strategy.endswith("_placebo") for c in expand_cells(study_from_dict({**base, "placebo": False})))
    named = study_from_dict({**base, "strategies": ["curriculum_placebo"]})
    assert {c.strategy for c in expand_cells(named)} == {"curriculum_placebo"}


def test_a_placebo_that_is_not_a_bool_or_has_no_twin_to_add_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text("models: [tiny]\nplacebo: maybe\n")
    with pytest.raises(ValueError, match=r"demo\.yaml: 'placebo' should be true/false"):
        load_study(path)
    with pytest.raises(ValueError, match=r"demo\.yaml: 'placebo' is true, but none of 'strategies' \['random'\]"):
        study_from_dict({"strategies": ["random"], "placebo": True}, "demo.yaml")


def test_hils_order_writes_a_placebo_order(table, tmp_path, capsys):
    source, out = save_questions(table, tmp_path / "questions.csv"), tmp_path / "placebo.csv"
    assert main(["order", str(source), "--strategy", "curriculum_placebo", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        f"wrote {out}: 200 rows in curriculum_placebo order" in printed and "rank r with the real difficulty" in printed
    )
    ordered = pd.read_csv(out, dtype={"id": str})
    assert ordered["placebo_difficulty"].is_monotonic_increasing and sorted(ordered["id"]) == sorted(table["id"])


def test_placebo_comparisons_set_each_strategy_against_its_twin():
    frame = simulate_predictions(
        ["random", "curriculum", "curriculum_placebo", "blocked"], runs=2, questions=80, seed=0
    )
    table = placebo_comparisons(frame)
    assert set(zip(table["strategy"], table["baseline"])) == {("curriculum", "curriculum_placebo")}
    assert {"estimate", "ci_low", "ci_high", "p_value", "p_holm", "p_bh"} <= set(table.columns)
    assert placebo_comparisons(frame[frame["strategy"] != "curriculum_placebo"]).empty


def test_the_analysis_reports_the_twins_and_the_recorded_rank_r(tmp_path):
    rng = np.random.default_rng(0)
    for strategy, scenario in (("random", "none"), ("curriculum", "llm"), ("curriculum_placebo", "llm")):
        for replicate in (0, 1):
            cell_dir = tmp_path / "cells" / f"tiny__{scenario}__{strategy}__holdout__r{replicate}"
            cell_dir.mkdir(parents=True)
            right = rng.random(60) < 0.4
            ids = [f"q{i:02d}" for i in range(60)]
            predictions = {"id": ids, "answer": "A", "pred": np.where(right, "A", "B"), "correct": right}
            pd.DataFrame(predictions).to_csv(cell_dir / "predictions_medqa.csv", index=False)
            cell = {"cell_id": cell_dir.name, "model": "tiny", "strategy": strategy, "variant": "strict"}
            cell |= {"scenario": scenario, "replicate": replicate, "order_seed": replicate, "train_seed": 42}
            placebo = {"of": "curriculum", "attempt": 0, "difficulty_rank_r": 0.05, "category_kappa": None}
            train = {"audit_ok": True, "placebo": placebo if STRATEGY[strategy].placebo_of else None}
            results = {"cell": cell, "metrics": {"medqa": {"n": 60, "accuracy": float(right.mean())}}, "train": train}
            (cell_dir / "results.json").write_text(json.dumps(results))
    result = analyse_study(tmp_path, tmp_path / "analysis")
    table = pd.read_csv(tmp_path / "analysis" / "placebo.csv")
    assert set(zip(table["strategy"], table["baseline"])) == {("curriculum", "curriculum_placebo")}
    audit = pd.read_csv(tmp_path / "analysis" / "audit.csv", index_col="cell_id")
    assert audit["placebo_difficulty_rank_r"].dropna().tolist() == [0.05, 0.05]
    assert "placebo" in {item.kind for item in result.items}
