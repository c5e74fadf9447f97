"""ipywidgets for JupyterLab: a question browser and a strategy picker.

>>> from tests.conftest import make_questions
>>> browser = question_browser(make_questions(12))                # doctest: +SKIP
"""

from __future__ import annotations

import html

import pandas as pd

from hils_kit.orderings import STRATEGIES, order_questions
from hils_kit.questions import LETTERS


def question_html(row: pd.Series) -> str:
    """One question as HTML, the correct option in bold."""
    options = "".join(
        f"<li>{'<b>' if l == row['answer'] else ''}{l}) {html.escape(str(o))}{'</b>' if l == row['answer'] else ''}</li>"
        for l, o in zip(LETTERS, row["options"])
    )
    return (
        f"<p><code>{html.escape(str(row['id']))}</code> · {html.escape(str(row['category']))}</p>"
        f"<p>{html.escape(str(row['question']))}</p><ul style='list-style:none'>{options}</ul>"
    )


def question_browser(table: pd.DataFrame):
    """A category dropdown and a slider over that category's questions."""
    import ipywidgets as w

    categories = ["(all)"] + sorted(table["category"].unique())
    pick = w.Dropdown(options=categories, description="category")
    index = w.IntSlider(min=0, max=len(table) - 1, description="question")
    view = w.HTML()

    def rows() -> pd.DataFrame:
        return table if pick.value == "(all)" else table[table["category"] == pick.value]

    def show(_=None) -> None:
        subset = rows()
        index.max = len(subset) - 1
        view.value = question_html(subset.iloc[min(index.value, index.max)])

    pick.observe(lambda _: (setattr(index, "value", 0), show()), names="value")
    index.observe(show, names="value")
    show()
    return w.VBox([w.HBox([pick, index]), view])


def strategy_picker(table: pd.DataFrame, strategies=STRATEGIES, **order_options):
    """A strategy dropdown (and seed) that redraws the Figure-1 view of that ordering."""
    import ipywidgets as w
    from IPython.display import display

    from hils_kit.order_view import plot_order

    pick = w.Dropdown(options=list(strategies), description="strategy")
    seed = w.IntText(value=0, description="seed")
    out = w.Output()

    def draw(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            ordered = order_questions(table, pick.value, seed=seed.value, **order_options)
            display(plot_order(ordered, title=pick.value))

    pick.observe(draw, names="value")
    seed.observe(draw, names="value")
    draw()
    return w.VBox([w.HBox([pick, seed]), out])
