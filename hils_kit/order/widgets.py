"""ipywidgets for JupyterLab: a question browser and a strategy picker.

In a notebook the study runner executes (:func:`hils_kit.core.progress.headless`) each shows a static view instead:
nobody can move a widget there, and papermill now and then waits forever on a cell that shows one, the kernel
idle and the cell's reply never read (``benchmarks/bench_kernel_hangs.py``: 3 runs in 124 on a busy 2-core
machine; once it stopped ``make test`` in 02's strategy picker).

>>> from tests.conftest import make_questions
>>> browser = question_browser(make_questions(12))                # doctest: +SKIP
"""

from __future__ import annotations

import html

import pandas as pd

from hils_kit.core.progress import headless
from hils_kit.data.questions import LETTERS
from hils_kit.order.orderings import order_questions
from hils_kit.order.registry import STRATEGIES

STATIC_NOTE = "The study runner ran this notebook without a screen; open it in JupyterLab to {what}."


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
    """A category dropdown and a slider over that category's questions; headless, the first question."""
    if headless():
        from IPython.display import HTML

        return HTML(question_html(table.iloc[0]) + f"<p><i>{STATIC_NOTE.format(what='browse the questions')}</i></p>")
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


def adaptive_note(plan: dict) -> str:
    """HTML: an adaptive strategy's order is decided during training; what its initial plan is.

    >>> adaptive_note({"strategy": "self_paced", "examples": 8, "initial_plan": "none"}).startswith(
    ...     "<p><b>self_paced adapts during training")
    True
    """
    return (
        f"<p><b>{html.escape(plan['strategy'])} adapts during training</b>: it decides each next question from the "
        f"model's own losses ({plan['examples']} examples). Initial plan: {html.escape(plan['initial_plan'])}.</p>"
    )


def strategy_picker(table: pd.DataFrame, strategies=STRATEGIES, **order_options):
    """A strategy dropdown (and seed) that redraws the Figure-1 view of that ordering (for an adaptive strategy,
    its initial plan and a note that it adapts); headless, a note."""
    if headless():
        from IPython.display import HTML

        return HTML(f"<p><i>{STATIC_NOTE.format(what='redraw one ordering with another seed')}</i></p>")
    import ipywidgets as w
    from IPython.display import HTML, display

    from hils_kit.order.view import plot_order

    pick = w.Dropdown(options=list(strategies), description="strategy")
    seed = w.IntText(value=0, description="seed")
    out = w.Output()

    def draw(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            ordered = order_questions(table, pick.value, seed=seed.value, **order_options)
            adaptive = ordered.attrs.get("adaptive")
            title = f"{pick.value}: initial plan, adapts during training" if adaptive else pick.value
            display(plot_order(ordered, title=title))
            if adaptive:  # decided from the model's losses as it trains: say so, and what is planned
                display(HTML(adaptive_note(adaptive)))

    pick.observe(draw, names="value")
    seed.observe(draw, names="value")
    draw()
    return w.VBox([w.HBox([pick, seed]), out])
