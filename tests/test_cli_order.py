"""``hils order`` on a small file and on the embedded MedMCQA with a labels file."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from hils_kit.cli import main
from hils_kit.data.loaders import load_questions, save_questions
from hils_kit.order.orderings import category_sequence
from hils_kit.order.registry import STRATEGIES


def runs(values) -> list:
    return [key for key, _ in itertools.groupby(values)]


def check_structure(out: pd.DataFrame, source: pd.DataFrame, strategy: str, rounds: int = 3) -> None:
    """The output of one strategy: same questions, 0-based positions, and the strategy's shape."""
    assert sorted(out["id"].unique()) == sorted(source["id"])
    assert out["position"].tolist() == list(range(rows(source, strategy)))
    assert set(source.columns) <= set(out.columns)
    cats = category_sequence(source["category"], "size")
    diff = out["difficulty"].to_numpy()
    if strategy in ("blocked", "blocked_curriculum"):
        assert runs(out["category"]) == cats
    if strategy in ("interleaved", "interleaved_curriculum"):
        assert runs(out["round"]) == list(range(1, rounds + 1))
        for _, part in out.groupby("round"):
            assert runs(part["category"]) == [c for c in cats if c in set(part["category"])]
    if strategy == "curriculum":
        assert np.all(np.diff(diff) >= 0)
    if strategy == "anti_curriculum":
        assert np.all(np.diff(diff) <= 0)
    if strategy in ("blocked_curriculum", "interleaved_curriculum"):
        for _, block in out.groupby("block"):
            assert np.all(np.diff(block["difficulty"].to_numpy()) >= 0)


def rows(source: pd.DataFrame, strategy: str) -> int:
    """One epoch, plus the default review budget (a quarter) for random_matched."""
    return len(source) + (round(0.25 * len(source)) if strategy == "random_matched" else 0)


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str})


@pytest.fixture(scope="module")
def medmcqa_labels(tmp_path_factory):
    table = load_questions("medmcqa")
    path = tmp_path_factory.mktemp("labels") / "medmcqa_difficulty.csv"
    rng = np.random.default_rng(7)
    pd.DataFrame({"id": table["id"], "difficulty": rng.random(len(table)).round(4)}).to_csv(path, index=False)
    return table, path


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_order_small_file(questions, tmp_path, strategy, capsys):
    source = save_questions(questions, tmp_path / "small.csv")
    out = tmp_path / f"{strategy}.csv"
    assert main(["order", str(source), "--strategy", strategy, "-o", str(out)]) == 0
    assert f"wrote {out}: {rows(questions, strategy)} rows in {strategy} order" in capsys.readouterr().out
    check_structure(read(out), questions, strategy)
    assert len(load_questions(out)) == rows(questions, strategy)  # the kit reads its own output back


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_order_medmcqa_with_labels(medmcqa_labels, tmp_path, strategy):
    table, labels = medmcqa_labels
    out = tmp_path / f"{strategy}.csv"
    assert main(["order", "medmcqa", "--strategy", strategy, "--labels", str(labels), "-o", str(out)]) == 0
    ordered = read(out)
    assert len(ordered) == rows(table, strategy)
    check_structure(ordered, table.assign(difficulty=0.0), strategy)
    merged = ordered.merge(read(labels), on="id", suffixes=("", "_label"))
    assert np.allclose(merged["difficulty"], merged["difficulty_label"])


def test_missing_labels_exit_2_with_count_and_examples(medmcqa_labels, tmp_path, capsys):
    table, labels = medmcqa_labels
    short = tmp_path / "short.csv"
    read(labels).iloc[5:].to_csv(short, index=False)
    code = main(["order", "medmcqa", "--strategy", "curriculum", "--labels", str(short), "-o", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"hils: error: {short}: no labels for 5 of 4183 questions (e.g. {table['id'].iloc[0]}" in err
    assert not (tmp_path / "o.csv").exists()


def test_strategy_that_needs_difficulty_without_one_exits_2(tmp_path, capsys):
    code = main(["order", "medmcqa", "--strategy", "blocked_curriculum", "-o", str(tmp_path / "o.csv")])
    assert code == 2
    assert "strategy 'blocked_curriculum' needs difficulty column 'difficulty'" in capsys.readouterr().err


def test_labels_replace_columns_and_options_reach_the_order(questions, tmp_path, capsys):
    source = save_questions(questions, tmp_path / "small.csv")
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"id": questions["id"], "difficulty": np.linspace(1, 0, 24), "cluster": [i % 2 for i in range(24)]}
    ).to_csv(labels, index=False)
    out = tmp_path / "o.csv"
    assert (
        main(
            [
                "order",
                str(source),
                "--strategy",
                "blocked_curriculum",
                "--labels",
                str(labels),
                "--category",
                "cluster",
                "--variant",
                "tiers",
                "--thresholds",
                "0.3,0.6",
                "--repeat",
                "2",
                "--seed",
                "5",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    ordered = read(out)
    assert load_questions(out)["id"].tolist() == ordered["id"].tolist()  # repeats reload (keyed by id and pass)
    assert runs(ordered["cluster"]) == [0, 1] and (ordered["id"].value_counts() == 2).all()
    assert ordered.loc[ordered["pass"] == 1, "difficulty"].max() == pytest.approx(1.0)  # labels, not the file's
    # cluster 0 holds 3 easy, 4 medium and 5 hard questions; each tier is shown twice in a row
    assert ordered["tier"].tolist()[:24] == ["easy"] * 6 + ["medium"] * 8 + ["hard"] * 10
    assert ordered["pass"].tolist()[:6] == [1, 1, 1, 2, 2, 2]


def test_rejects_go_beside_the_output(questions, tmp_path):
    source = save_questions(questions, tmp_path / "small.csv")
    text = source.read_text(encoding="utf-8").splitlines()
    bad = text[1].replace("q000", "q999").replace(",A,", ",Z,")  # answer Z is not among the options
    source.write_text("\n".join(text + [bad]) + "\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    assert main(["order", str(source), "--strategy", "random", "-o", str(out)]) == 0
    assert len(read(out)) == 24
    assert "q999" in (tmp_path / "o.rejects.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--strategy", "curriculum", "--labels", "LABELS", "--thresholds", "low,high", "--variant", "tiers"],
            "--thresholds 'low,high'",
        ),
        (["--strategy", "curriculum", "--labels", "NOPE.csv"], "NOPE.csv"),
        (["--strategy", "interleaved", "--rounds", "0"], "rounds must be a whole number"),
    ],
)
def test_bad_options_exit_2(questions, tmp_path, capsys, argv, message):
    source = save_questions(questions, tmp_path / "small.csv")
    labels = tmp_path / "labels.csv"
    questions[["id", "difficulty"]].to_csv(labels, index=False)
    argv = [str(labels) if a == "LABELS" else a for a in argv]
    assert main(["order", str(source), *argv, "-o", str(tmp_path / "o.csv")]) == 2
    assert message in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["order", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--strategy NAME" in text and "interleaved_curriculum" in text and "--labels FILE" in text
