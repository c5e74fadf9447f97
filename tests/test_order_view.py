"""The order inspection table, its runs, and the Figure-1 style plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.collections import LineCollection, PolyCollection

from hils_kit.order.orderings import order_questions, pacing
from hils_kit.order.registry import STRATEGIES, STRATEGY
from hils_kit.order.view import category_palette, plot_order, plot_strategies, summarize_order, summarize_runs


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cats = ["Medicine"] * 12 + ["Surgery"] * 9 + ["Anatomy"] * 6
    return pd.DataFrame({"id": [f"q{i}" for i in range(27)], "category": cats, "difficulty": rng.random(27)})


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_summarize_order_marks_blocks_and_rounds(table):
    ordered = order_questions(table, "interleaved", rounds=3)
    view = summarize_order(ordered)
    assert list(view.columns[:5]) == ["position", "category", "difficulty", "block", "round"]
    assert view["position"].tolist() == list(range(27))
    assert np.flatnonzero(view["new_round"]).tolist() == [0, 9, 18]
    assert np.flatnonzero(view["new_block"]).tolist() == [0, 4, 7, 9, 13, 16, 18, 22, 25]
    assert view["difficulty"].tolist() == ordered["difficulty"].tolist()


def test_summarize_order_without_structure_or_difficulty(table):
    view = summarize_order(order_questions(table.drop(columns="difficulty"), "random").assign(position=range(5, 32)))
    assert view["position"].iloc[0] == 5
    assert view["block"].isna().all() and view["round"].isna().all() and view["difficulty"].isna().all()
    assert not view["new_block"].any() and not view["new_round"].any()


def test_summarize_runs(table):
    runs = summarize_runs(order_questions(table, "blocked_curriculum"))
    assert runs["category"].tolist() == ["Medicine", "Surgery", "Anatomy"]
    assert runs["size"].tolist() == [12, 9, 6] and runs["stop"].tolist() == [12, 21, 27]
    expected = table.groupby("category")["difficulty"].mean()
    assert np.allclose(runs["difficulty"], expected[runs["category"]].to_numpy())
    stages = summarize_runs(pacing(table, pools=3))
    assert stages.groupby("stage")["size"].sum().tolist() == [9, 18, 27]


def test_category_palette_gives_distinct_colours_largest_first():
    cats = pd.Series([f"c{i:02d}" for i in range(21) for _ in range(i + 1)])
    palette = category_palette(cats)
    assert list(palette)[:2] == ["c20", "c19"] and len(palette) == 21
    assert len({tuple(np.round(c, 3)) for c in palette.values()}) == 21


def test_plot_order_draws_the_strip_the_line_and_the_rounds(table):
    ordered = order_questions(table, "interleaved_curriculum", rounds=3)
    fig = plot_order(ordered, title="interleaved curriculum")
    ax = fig.axes[0]
    strips = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(strips) == 3  # one per category
    assert sum(len(c.get_paths()) for c in strips) == 9  # 3 categories x 3 rounds
    widths = sum(p.get_extents().width for c in strips for p in c.get_paths())
    assert widths == pytest.approx(27)
    dashed = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments()) == 2]
    assert dashed  # the two boundaries between three rounds
    assert ax.lines[0].get_ydata().shape == (27,)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Medicine", "Surgery", "Anatomy"]
    assert ax.get_title(loc="left") == "interleaved curriculum"


def test_plot_order_into_given_axes_without_difficulty(table):
    fig, ax = plt.subplots()
    assert plot_order(order_questions(table.drop(columns="difficulty"), "blocked"), ax, legend=False) is fig
    assert not ax.lines and list(ax.get_yticks()) == []


def test_plot_strategies_draws_one_row_per_strategy(table, tmp_path):
    fig = plot_strategies(table)
    assert len(fig.axes) == len(STRATEGIES)
    adapts = " (initial plan; adapts during training)"  # an adaptive strategy shows its initial plan
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        s.replace("_", " ") + (adapts if STRATEGY[s].adaptive else "") for s in STRATEGIES
    ]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Medicine", "Surgery", "Anatomy"]
    fig.savefig(tmp_path / "orders.png", dpi=60)
    assert (tmp_path / "orders.png").stat().st_size > 10_000
    fig = plot_strategies(table, ["blocked_curriculum", "curriculum"], variant="tiers", repeat=2)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlim()[1] == pytest.approx(53.5)
