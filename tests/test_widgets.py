"""The question browser and the strategy picker: live widgets in JupyterLab, a static view when run headless."""

from __future__ import annotations

import pytest

from hils_kit.core.progress import HEADLESS
from hils_kit.order.registry import STRATEGIES
from hils_kit.order.widgets import question_browser, strategy_picker
from tests.conftest import make_questions


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.delenv(HEADLESS, raising=False)


def test_the_browser_follows_the_category_and_the_slider(interactive):
    table = make_questions(12)
    browser = question_browser(table)
    (pick, index), view = browser.children[0].children, browser.children[1]
    assert table["question"].iloc[0] in view.value
    index.value = 3
    assert table["question"].iloc[3] in view.value
    category = sorted(table["category"].unique())[-1]
    pick.value = category
    first = table[table["category"] == category].iloc[0]
    assert (
        index.value == 0 and first["question"] in view.value and index.max == (table["category"] == category).sum() - 1
    )


def test_the_picker_offers_every_strategy_and_a_seed(interactive):
    picker = strategy_picker(make_questions(12).assign(difficulty=[i / 12 for i in range(12)]))
    pick, seed = picker.children[0].children
    assert tuple(pick.options) == STRATEGIES and seed.value == 0
    pick.value = "curriculum"  # redraws without error
    seed.value = 3


def test_headless_both_show_a_static_view(monkeypatch):
    monkeypatch.setenv(HEADLESS, "1")
    table = make_questions(12)
    browser = question_browser(table)
    assert table["question"].iloc[0] in browser.data and "open it in JupyterLab" in browser.data
    assert "open it in JupyterLab" in strategy_picker(table).data
