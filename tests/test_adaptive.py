"""Adaptive strategies: schedules decided from the model's losses during training, audited question for question."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hils_kit.cli import main
from hils_kit.data.loaders import save_questions
from hils_kit.order.adaptive import SelfPaced, SpacedRepetition, adaptive_plan, adaptive_schedule
from hils_kit.order.audit import OrderAuditError
from hils_kit.order.orderings import order_questions
from hils_kit.order.placebo import MAX_ASSOCIATION, rank_r
from hils_kit.order.registry import ADAPTIVE, STRATEGY
from hils_kit.study.cells import expand_cells
from hils_kit.study.config import study_from_dict
from hils_kit.train.adaptive_feed import AdaptiveFeed
from hils_kit.train.presets import make_config
from hils_kit.train.training import train
from tests.conftest import make_questions


def config(seed: int = 42):
    return make_config(
        "tiny", {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "bf16": False, "seed": seed}
    )


def run(strategy: str, folder, table=None, every: int = 1, seed: int = 42, order_seed: int = 0, budget=0.25):
    """Train ``strategy`` on 16 questions (8 steps), re-scoring every ``every`` steps."""
    table = order_questions(make_questions(16) if table is None else table, strategy, seed=order_seed)
    feed = AdaptiveFeed(adaptive_schedule(strategy, len(table), order_seed, budget), table, every)
    return train(table, model="tiny", config=config(seed), out_dir=folder, feed=feed), feed


# ----------------------------------------------------------------------------- the schedules, without a model


def test_self_paced_feeds_the_easiest_unseen_and_follows_each_re_scoring():
    schedule = SelfPaced(5)
    schedule.rescore(np.arange(5), np.array([0.5, 0.1, 0.9, 0.3, 0.7]))
    assert [schedule.next_row(), schedule.next_row()] == [1, 3]
    assert schedule.candidates().tolist() == [0, 2, 4]  # only the questions not yet seen are scored again
    schedule.step = 1
    schedule.rescore(np.array([0, 2, 4]), np.array([0.8, 0.2, 0.4]))  # the model changed its mind
    assert [schedule.next_row() for _ in range(3)] == [2, 4, 0]
    log = schedule.decisions_table(list("abcde"))
    assert log["id"].tolist() == list("bdcea") and log["step"].tolist() == [0, 0, 1, 1, 1]
    assert log["score"].tolist() == [0.1, 0.3, 0.2, 0.4, 0.8] and set(log["reason"]) == {"easiest unseen"}
    with pytest.raises(RuntimeError, match="all 5 questions were fed"):
        schedule.next_row()


def test_spaced_repetition_reviews_high_and_rising_losses_within_its_budget():
    n, schedule = 40, SpacedRepetition(40, review_budget=0.25)
    assert schedule.total == 50 and schedule.budget == 10
    rng = np.random.default_rng(0)
    fed = []
    while len(fed) < schedule.total:
        if len(fed) % 8 == 0:  # a re-scoring every 8 examples: some losses fall, some stay high
            rows = schedule.candidates()
            assert set(rows) <= set(fed) and all(r not in schedule.queue for r in rows)
            schedule.rescore(rows, rng.random(len(rows)) + (rows % 4 == 0))  # every 4th question stays hard
        fed.append(schedule.next_row())
    log = schedule.decisions_table([f"q{i}" for i in range(n)])
    reviews = log[log["reason"] != "new"]
    assert log.loc[log["reason"] == "new", "row"].tolist() == list(range(n))  # the epoch, in plan order
    assert len(reviews) == schedule.budget == schedule.reviews_done  # within the budget and all of it (>= 80 %)
    assert reviews["score"].notna().all()  # every review was chosen by a loss
    assert (reviews["row"] % 4 == 0).mean() > 0.5  # the hard ones come back most
    assert reviews["position"].min() < 30  # spread along the epoch, not all at its end
    first_seen = log.groupby("row")["position"].min()
    assert all(first_seen[r] < p for r, p in zip(reviews["row"], reviews["position"]))  # only what was seen


def test_a_rising_loss_sends_a_question_back_and_a_falling_one_up_a_box():
    schedule = SpacedRepetition(4, review_budget=1.0)
    for _ in range(4):
        schedule.next_row()
    schedule.rescore(np.arange(4), np.array([0.1, 0.2, 0.3, 0.4]))  # above the median (0.25): 2 and 3 come back
    assert schedule.queue == [3, 2] and schedule.box.tolist() == [2, 2, 1, 1]
    assert schedule.candidates().tolist() == []  # 0 and 1 are due two re-scorings later
    schedule.rescore(np.array([], dtype=int), np.array([]))
    assert schedule.candidates().tolist() == [0, 1]
    schedule.rescore(np.array([0, 1]), np.array([0.15, 0.05]))  # 0 rose: back; 1 fell: box 3
    assert 0 in schedule.queue and schedule.box[1] == 3


def test_placebo_scores_are_shuffled_at_every_re_scoring_and_uncorrelated():
    real, twin = SelfPaced(200), SelfPaced(200, placebo_seed=3)
    losses = np.linspace(0, 1, 200)
    for schedule in (real, twin):
        schedule.rescore(np.arange(200), losses)
    assert rank_r(real.score, twin.score) is not None and abs(rank_r(real.score, twin.score)) < MAX_ASSOCIATION
    assert sorted(twin.score) == sorted(losses)  # the same scores, on other questions
    record = twin.record()["placebo"]
    assert record["shuffles"] == 1 and record["uncorrelated"] and record["max_abs_rank_r"] < MAX_ASSOCIATION
    assert real.record()["placebo"] is None


def test_registry_plans_and_refusals():
    assert set(ADAPTIVE) == {"self_paced", "spaced_repetition", "self_paced_placebo", "spaced_repetition_placebo"}
    assert adaptive_schedule("competence", 10) is None and adaptive_schedule("self_paced_placebo", 3).key == (
        "self_paced_placebo"
    )
    assert adaptive_plan("self_paced", 10)["initial_plan"].startswith("none: the order is decided during training")
    ordered = order_questions(make_questions(12), "spaced_repetition", seed=2)
    assert ordered["id"].tolist() == order_questions(make_questions(12), "random", seed=2)["id"].tolist()
    assert ordered.attrs["adaptive"]["examples"] == 15
    for budget in (0, 1.5, True):
        with pytest.raises(ValueError, match="review_budget"):
            SpacedRepetition(10, budget)
    with pytest.raises(ValueError, match="repeat applies"):
        order_questions(make_questions(12), "self_paced", repeat=2)


def test_a_study_adds_placebo_and_matched_twins_and_checks_the_settings():
    study = study_from_dict(
        {
            "models": ["tiny"],
            "preset": "tiny",
            "strategies": ["random", "curriculum", "self_paced", "competence", "spaced_repetition"],
            "placebo": True,
        }
    )
    strategies = [cell.strategy for cell in expand_cells(study)]
    assert strategies == [
        "random",
        "curriculum",
        "curriculum_placebo",
        "self_paced",
        "self_paced_placebo",
        "competence",
        "competence_placebo",
        "spaced_repetition",
        "spaced_repetition_placebo",
        "random_matched",
    ]
    bad = {"strategies": ["self_paced"], "review_budget": 2, "rescore_every": -1, "balance_letters": True}
    with pytest.raises(ValueError, match="'rescore_every'.*'review_budget' 2.*'balance_letters'"):
        study_from_dict(bad, "bad.yaml")


# ----------------------------------------------------------------------------- trained on the tiny model


def test_each_adaptive_strategy_trains_and_its_decisions_are_what_was_fed(tmp_path):
    for strategy in ADAPTIVE:
        result, feed = run(strategy, tmp_path / strategy)
        summary, planned = result.summary, pd.read_csv(result.out_dir / "order_planned.csv", dtype={"id": str})
        fed = pd.read_csv(result.out_dir / "order_fed.csv", dtype={"id": str})
        assert summary["audit_ok"], strategy
        assert planned["id"].tolist() == fed["id"].tolist() and len(fed) == feed.schedule.total
        assert {"position", "step", "row", "id", "score", "reason"} <= set(planned.columns)
        assert (planned["step"].diff().dropna() >= 0).all() and planned["step"].max() > 0
        adaptive = summary["adaptive"]
        assert adaptive["strategy"] == strategy and adaptive["rescorings"] >= 4 and adaptive["rescoring_seconds"] > 0
        if STRATEGY[strategy].placebo_of:
            assert adaptive["placebo"]["shuffles"] >= 1
        if "spaced_repetition" in strategy:  # 16 questions + 4 reviews, the budget spent exactly
            assert summary["n_examples_fed"] == 20 and adaptive["reviews"] == adaptive["review_budget"] == 4
            assert fed["id"].value_counts().max() >= 2
        else:
            assert sorted(fed["id"]) == sorted(make_questions(16)["id"])


def test_a_self_paced_order_depends_on_the_model_and_its_re_scorings(tmp_path):
    from hils_kit.models.tiny import build_tiny_model

    other_model = str(build_tiny_model(tmp_path / "tiny-seed-1", seed=1))  # another initialisation of the tiny Llama
    table = order_questions(make_questions(16), "self_paced")
    fast = make_config("tiny", {"per_device_train_batch_size": 2, "bf16": False, "learning_rate": 1e-2})
    ids = {}
    for name, model, every in (("a", "tiny", 1), ("b", other_model, 1), ("once", "tiny", 100)):
        feed = AdaptiveFeed(SelfPaced(16), table, every)
        result = train(table, model=model, config=fast, out_dir=tmp_path / name, feed=feed)
        assert result.summary["audit_ok"]
        ids[name] = pd.read_csv(result.out_dir / "order_fed.csv", dtype={"id": str})["id"].tolist()
    assert ids["a"] != ids["b"]  # two initialisations, two orders
    assert ids["a"] != ids["once"]  # re-scoring (every step, against only before the first) changed what came next
    assert ids["a"][:2] == ids["once"][:2]  # both started from the same first scoring


def test_the_audit_fails_when_the_feed_strays_from_its_decisions(tmp_path):
    class Straying(SelfPaced):
        def next_row(self):
            row = super().next_row()
            return (row + 1) % self.n if len(self.decisions) == 5 else row  # feeds another row than it recorded

    table = order_questions(make_questions(16), "self_paced")
    with pytest.raises(OrderAuditError, match="position 4"):
        train(table, model="tiny", config=config(), out_dir=tmp_path / "r", feed=AdaptiveFeed(Straying(16), table, 1))
    assert not json.loads((tmp_path / "r" / "train_summary.json").read_text())["audit_ok"]


def test_hils_order_explains_and_hils_train_decides(tmp_path, capsys):
    source = save_questions(make_questions(12), tmp_path / "q.csv")
    assert main(["order", str(source), "--strategy", "spaced_repetition", "-o", str(tmp_path / "plan.csv")]) == 0
    out = capsys.readouterr().out
    assert "decided during training" in out and "3 reviews" in out and "hils train" in out
    cli = ["train", str(tmp_path / "plan.csv"), "--model", "tiny", "--preset", "tiny", "--precision", "fp32"]
    assert main([*cli, "--strategy", "spaced_repetition", "--rescore-every", "1", "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "15 examples decided during training" in out and "fed order equals the plan" in out
    assert "re-scorings" in out
    with pytest.raises(SystemExit):
        main([*cli, "--strategy", "curriculum", "-o", str(tmp_path / "other")])  # not an adaptive strategy
    two_epochs = make_config("tiny", {"num_train_epochs": 2, "bf16": False})
    with pytest.raises(ValueError, match="num_train_epochs=2"):
        feed = AdaptiveFeed(SelfPaced(4), make_questions(4))
        train(make_questions(4), model="tiny", config=two_epochs, out_dir=tmp_path / "epochs", feed=feed)
