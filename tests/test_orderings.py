"""Properties of every learning-strategy order, on random tables (hypothesis) and on fixed examples."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hils_kit.labels.tiers import HUMAN_THRESHOLDS, LLM_THRESHOLDS, TIERS
from hils_kit.labels.tiers import tier_codes as assign_tiers
from hils_kit.order.orderings import VARIANTS, category_sequence, order_questions, pacing
from hils_kit.order.registry import NEEDS_DIFFICULTY, PLACEBOS, STRATEGIES, STRATEGY

CATEGORIES = ("Medicine", "Surgery", "Pharmacology", "Anatomy", "ENT")
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = list(itertools.product([s for s in STRATEGIES if s != "random_matched"], VARIANTS))  # it repeats questions
CURRICULA = [s for s in NEEDS_DIFFICULTY if s not in PLACEBOS and s != "competence"]  # a placebo rises in its
# shuffled labels only; competence draws at random from a growing pool (its own test)


@st.composite
def tables(draw, min_size: int = 1, max_size: int = 40) -> pd.DataFrame:
    """A question table with categories of uneven sizes and difficulties that often tie."""
    n = draw(st.integers(min_size, max_size))
    k = draw(st.integers(1, len(CATEGORIES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cats = rng.choice(CATEGORIES[:k], size=n, p=rng.dirichlet(np.ones(k)))
    ties = draw(st.sampled_from(["none", "some", "all"]))
    diffs = {"none": rng.random(n), "some": rng.integers(0, 5, n) / 4, "all": np.full(n, 0.5)}[ties]
    return pd.DataFrame(
        {
            "id": [f"q{i:03d}" for i in range(n)],
            "category": cats,
            "difficulty": diffs,
            "extra": [f"x{i}" for i in range(n)],
        }
    )


def runs(values) -> list:
    """The values of the contiguous runs: [a, a, b, a] -> [a, b, a]."""
    return [key for key, _ in itertools.groupby(values)]


def tier_codes(ordered: pd.DataFrame) -> np.ndarray:
    return ordered["tier"].map(TIERS.index).to_numpy()


def non_decreasing(values) -> bool:
    values = np.asarray(values)
    return bool(np.all(values[1:] >= values[:-1]))


@pytest.mark.parametrize("strategy,variant", ALL)
@SETTINGS
@given(table=tables(), seed=st.integers(0, 2**16))
def test_every_order_is_a_permutation_that_keeps_the_rows_and_its_seed(strategy, variant, table, seed):
    ordered = order_questions(table, strategy, variant=variant, seed=seed)
    assert sorted(ordered["id"]) == sorted(table["id"])
    assert list(ordered.index) == list(range(len(table)))
    pd.testing.assert_frame_equal(ordered[table.columns].sort_values("id").reset_index(drop=True), table)
    pd.testing.assert_frame_equal(ordered, order_questions(table, strategy, variant=variant, seed=seed))


@SETTINGS
@given(table=tables(), seed=st.integers(0, 2**16), budget=st.sampled_from([0.1, 0.25, 1.0]))
def test_random_matched_shows_every_question_once_and_the_budget_twice(table, seed, budget):
    ordered = order_questions(table, "random_matched", seed=seed, review_budget=budget)
    extra = round(budget * len(table))
    counts = ordered["id"].value_counts()
    assert len(ordered) == len(table) + extra and set(counts.index) == set(table["id"])
    assert (counts <= 2).all() and (counts == 2).sum() == extra
    assert ordered["pass"].value_counts().to_dict() == {1: len(table), **({2: extra} if extra else {})}


@pytest.mark.parametrize("shape", ["sqrt", "linear"])
@SETTINGS
@given(table=tables(), seed=st.integers(0, 2**16), start=st.sampled_from([0.01, 0.2, 0.5]))
def test_competence_draws_each_question_once_from_the_open_pool(shape, table, seed, start):
    from hils_kit.order.strategies import competence_at

    ordered = order_questions(table, "competence", seed=seed, competence_shape=shape, competence_start=start)
    n = len(table)
    assert sorted(ordered["id"]) == sorted(table["id"])
    rank = ordered["difficulty"].rank(method="min").to_numpy()  # 1 = easiest (ties: the lowest rank of the tie)
    opened = np.maximum(np.ceil(competence_at(np.arange(n) / n, shape, start) * n - 1e-9), np.arange(n) + 1)
    assert (rank <= opened).all()  # position p drew from the easiest max(ceil(c(p/n) n), p + 1) questions
    assert non_decreasing(ordered["open_share"]) and ordered["open_share"].iloc[-1] <= 1


@pytest.mark.parametrize("strategy", ["blocked", "blocked_curriculum"])
@pytest.mark.parametrize("variant", VARIANTS)
@SETTINGS
@given(table=tables(), seed=st.integers(0, 2**16))
def test_blocked_is_one_run_per_category_in_size_order(strategy, variant, table, seed):
    ordered = order_questions(table, strategy, variant=variant, seed=seed)
    assert runs(ordered["category"]) == category_sequence(table["category"], "size")
    assert runs(ordered["block"]) == list(range(1, table["category"].nunique() + 1))


@pytest.mark.parametrize("strategy", ["interleaved", "interleaved_curriculum"])
@SETTINGS
@given(table=tables(), rounds=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_interleaved_rounds_visit_every_category_in_the_same_order(strategy, table, rounds, seed):
    ordered = order_questions(table, strategy, rounds=rounds, seed=seed)
    expected = category_sequence(table["category"], "size")
    sizes = table["category"].value_counts()
    assert non_decreasing(ordered["round"])
    assert set(ordered["round"]) == set(range(1, min(rounds, sizes.max()) + 1))
    for r, part in ordered.groupby("round"):
        visited = runs(part["category"])
        assert visited == [c for c in expected if c in visited]  # each category once, in the block order
        assert {c for c in expected if sizes[c] >= rounds} <= set(visited)
        for cat, n in part["category"].value_counts().items():
            assert n == len(np.array_split(np.arange(sizes[cat]), rounds)[r - 1])
    assert runs(ordered["block"]) == list(range(1, ordered["block"].max() + 1))


@pytest.mark.parametrize("strategy", CURRICULA)
@pytest.mark.parametrize("variant", VARIANTS)
@SETTINGS
@given(table=tables(), seed=st.integers(0, 2**16))
def test_curricula_rise_in_difficulty_within_their_scope(strategy, variant, table, seed):
    ordered = order_questions(table, strategy, variant=variant, seed=seed)
    level = tier_codes(ordered) if variant == "tiers" else ordered["difficulty"].to_numpy()
    if variant == "tiers":
        by_id = dict(zip(table["id"], assign_tiers(table["difficulty"])))
        assert list(tier_codes(ordered)) == [by_id[i] for i in ordered["id"]]
    if strategy == "curriculum":
        assert non_decreasing(level)
    elif strategy == "anti_curriculum":
        assert non_decreasing(-level)
    elif strategy == "blocked_curriculum":
        for block in ordered["block"].unique():
            assert non_decreasing(level[ordered["block"].to_numpy() == block])
    elif variant == "tiers":  # interleaved_curriculum: the rounds are the tiers
        assert list(ordered["round"]) == list(level + 1)
        expected = category_sequence(table["category"], "size")
        for _, part in ordered.groupby("round"):
            visited = runs(part["category"])
            assert visited == [c for c in expected if c in visited]
    else:  # strict interleaved_curriculum: rising inside each chunk and from round to round per category
        for _, chunk in ordered.groupby("block"):
            assert non_decreasing(chunk["difficulty"])
        for _, cat in ordered.groupby("category"):
            highs = cat.groupby("round")["difficulty"].agg(["min", "max"])
            assert np.all(highs["max"].to_numpy()[:-1] <= highs["min"].to_numpy()[1:])


@pytest.mark.parametrize("strategy,variant", [(s, v) for s, v in ALL if not STRATEGY[s].adaptive])
@SETTINGS
@given(table=tables(max_size=25), repeat=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_repeat_shows_every_question_m_times_and_keeps_the_structure(strategy, variant, table, repeat, seed):
    once = order_questions(table, strategy, variant=variant, seed=seed)
    ordered = order_questions(table, strategy, variant=variant, seed=seed, repeat=repeat)
    assert (ordered["id"].value_counts() == repeat).all() and len(ordered) == repeat * len(table)
    assert list(ordered.loc[ordered["pass"] == 1, "id"]) == list(once["id"])
    structure = [c for c in ("block", "round", "tier") if c in once]
    assert runs(map(tuple, ordered[structure].to_numpy())) == runs(map(tuple, once[structure].to_numpy()))
    if strategy == "curriculum" and variant == "strict":  # the whole set, then reshuffled copies of it
        assert list(ordered["pass"]) == list(np.repeat(np.arange(1, repeat + 1), len(table)))


@SETTINGS
@given(table=tables(), pools=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_pacing_stages_grow_and_hold_the_easiest_questions(table, pools, seed):
    ordered = pacing(table, pools=pools, seed=seed)
    assert non_decreasing(ordered["stage"])
    previous: set = set()
    ends = np.cumsum([len(p) for p in np.array_split(np.arange(len(table)), pools)])
    for k, stage in ordered.groupby("stage"):
        ids = set(stage["id"])
        assert len(ids) == len(stage) == ends[k - 1] and previous <= ids
        rest = table.loc[~table["id"].isin(ids), "difficulty"]
        assert rest.empty or stage["difficulty"].max() <= rest.min()
        previous = ids
    assert previous == set(table["id"])


def test_figure_1_example_interleaved_curriculum():
    # Figure 1: three categories (M, S, P), three rounds, difficulty rising from round to round
    table = pd.DataFrame(
        {
            "id": [f"{c}{d}" for c in "MSP" for d in range(6)],
            "category": [c for c in "MSP" for _ in range(6)],
            "difficulty": [d / 10 + 0.01 * k for k, c in enumerate("MSP") for d in (5, 0, 3, 1, 4, 2)],
        }
    )
    ordered = order_questions(table, "interleaved_curriculum", category_order=["M", "S", "P"])
    assert list(ordered["id"]) == [
        "M1",
        "M3",
        "S1",
        "S3",
        "P1",
        "P3",
        "M5",
        "M2",
        "S5",
        "S2",
        "P5",
        "P2",
        "M4",
        "M0",
        "S4",
        "S0",
        "P4",
        "P0",
    ]
    assert list(ordered["round"]) == [1] * 6 + [2] * 6 + [3] * 6


def test_other_seeds_give_other_orders_where_there_is_randomness():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"id": [f"q{i}" for i in range(60)], "category": list("abc" * 20), "difficulty": rng.permutation(60) / 60}
    )
    for strategy, variant in ALL:
        a = order_questions(table, strategy, variant=variant, seed=0)["id"].tolist()
        b = order_questions(table, strategy, variant=variant, seed=1)["id"].tolist()
        if variant == "strict" and strategy in CURRICULA:
            assert a == b, strategy  # distinct difficulties: no randomness left (a placebo's shuffle has the seed)
        else:
            assert a != b, (strategy, variant)
    ties = table.assign(difficulty=0.5)
    assert (
        order_questions(ties, "curriculum", seed=0)["id"].tolist()
        != order_questions(ties, "curriculum", seed=1)["id"].tolist()
    )


def test_same_seed_gives_the_same_within_block_order_across_strategies():
    table = pd.DataFrame({"id": [f"q{i}" for i in range(30)], "category": list("ab" * 15)})
    shuffled = order_questions(table, "random", seed=3)["id"].tolist()
    blocked = order_questions(table, "blocked", seed=3)
    for cat in "ab":
        mine = set(table.loc[table["category"] == cat, "id"])
        assert blocked.loc[blocked["category"] == cat, "id"].tolist() == [i for i in shuffled if i in mine]


def test_category_orders():
    cats = pd.Series(list("bbbcccaad") + ["e"] * 3)
    assert category_sequence(cats, "size") == ["b", "c", "e", "a", "d"]
    assert category_sequence(cats, "name") == ["a", "b", "c", "d", "e"]
    shuffles = {tuple(category_sequence(cats, "shuffle", seed=s)) for s in range(6)}
    assert len(shuffles) > 1 and all(sorted(s) == list("abcde") for s in shuffles)
    assert category_sequence(cats, "shuffle", seed=4) == category_sequence(cats, "shuffle", seed=4)
    assert category_sequence(cats, ["e", "d", "x", "c", "b", "a"]) == ["e", "d", "c", "b", "a"]
    table = pd.DataFrame({"id": range(12), "category": cats})
    for seed in (0, 1):
        assert runs(order_questions(table, "blocked", category_order="name", seed=seed)["category"]) == list("abcde")
    with pytest.raises(ValueError, match="lacks 1 categories"):
        category_sequence(cats, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="category order 'alphabet'"):
        category_sequence(cats, "alphabet")


def test_tiers_and_paper_thresholds():
    assert HUMAN_THRESHOLDS == (0.06, 0.15) and LLM_THRESHOLDS == (0.66, 0.80)
    assert assign_tiers([0.05, 0.06, 0.1, 0.15, 0.5], "human").tolist() == [0, 1, 1, 2, 2]
    assert assign_tiers([0.5, 0.66, 0.7, 0.8, 0.81], (0.66, 0.8)).tolist() == [0, 1, 1, 2, 2]
    assert np.bincount(assign_tiers(np.arange(30) / 30)).tolist() == [10, 10, 10]  # terciles
    table = pd.DataFrame({"id": range(6), "difficulty": [0.9, 0.1, 0.7, 0.5, 0.95, 0.2]})
    ordered = order_questions(table, "curriculum", variant="tiers", thresholds="llm")
    assert ordered["tier"].tolist() == ["easy"] * 3 + ["medium"] + ["hard"] * 2
    assert order_questions(table, "anti_curriculum", variant="tiers", thresholds="llm")["tier"].iloc[0] == "hard"


def test_variant_is_ignored_by_strategies_without_difficulty():
    table = pd.DataFrame({"id": range(9), "category": list("aabbbcccc")})
    for strategy in ("random", "blocked", "interleaved"):
        pd.testing.assert_frame_equal(
            order_questions(table, strategy, variant="tiers"), order_questions(table, strategy)
        )


def test_columns_of_an_earlier_order_are_replaced():
    table = pd.DataFrame({"id": range(9), "category": list("aabbbcccc"), "difficulty": np.arange(9) / 9})
    again = order_questions(order_questions(table, "interleaved", repeat=2).drop_duplicates("id"), "curriculum")
    assert not {"block", "round", "pass"} & set(again.columns)
    assert again["difficulty"].is_monotonic_increasing


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(strategy="spaced"), "unknown strategy 'spaced'"),
        (dict(strategy="blocked", variant="emh"), "unknown variant 'emh'"),
        (dict(strategy="interleaved", rounds=0), "rounds must be a whole number"),
        (dict(strategy="random", repeat=1.5), "repeat must be a whole number"),
        (dict(strategy="curriculum", thresholds=(0.2, 0.4)), "thresholds apply to variant 'tiers' only"),
        (dict(strategy="curriculum", variant="tiers", thresholds=(0.8, 0.4)), "must not exceed"),
        (dict(strategy="curriculum", variant="tiers", thresholds="lek"), "thresholds 'lek'"),
        (dict(strategy="interleaved_curriculum", variant="tiers", rounds=4), "one round per tier"),
        (
            dict(strategy="curriculum", difficulty="llm_difficulty"),
            "strategy 'curriculum' needs difficulty column 'llm_difficulty'",
        ),
        (
            dict(strategy="blocked", category="cluster_label"),
            "strategy 'blocked' needs category column 'cluster_label'",
        ),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs, message):
    table = pd.DataFrame({"id": ["a", "b"], "category": ["x", "y"], "difficulty": [0.1, 0.2]})
    with pytest.raises(ValueError, match=message):
        order_questions(table, **kwargs)


def test_missing_labels_are_refused_with_the_column_strategy_and_ids():
    table = pd.DataFrame({"id": ["a", "b", "c"], "category": ["x", None, "y"], "difficulty": [0.1, None, "hard"]})
    with pytest.raises(
        ValueError,
        match=r"'blocked_curriculum' needs a number in difficulty column "
        r"'difficulty'.*2 of 3 .*e\.g\. b, c",
    ):
        order_questions(table.assign(category="x"), "blocked_curriculum")
    with pytest.raises(ValueError, match=r"'interleaved' needs a category.*is empty for 1 of 3 \(e\.g\. b\)"):
        order_questions(table, "interleaved")
    with pytest.raises(ValueError, match="'pacing' needs a number"):
        pacing(table)
    with pytest.raises(ValueError, match="empty"):
        order_questions(table.iloc[:0], "random")
