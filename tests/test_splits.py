"""Splits: deterministic, stratified, saved as id lists."""

from __future__ import annotations

import pytest

from hils_kit.data.loaders import load_questions
from hils_kit.data.splits import kfold, load_split, save_split, select, train_test_split
from tests.conftest import make_questions


def test_holdout_is_deterministic_and_stratified():
    table = load_questions("medmcqa")
    a = train_test_split(table, test_size=0.2, seed=3)
    b = train_test_split(table, test_size=0.2, seed=3)
    c = train_test_split(table, test_size=0.2, seed=4)
    assert a == b and a["test"] != c["test"]
    assert len(a["test"]) == round(0.2 * 4183) and set(a["train"]).isdisjoint(a["test"])
    test = select(table, a["test"])
    share = test["category"].value_counts() / table["category"].value_counts()
    assert share.dropna().between(0.1, 0.3).all()  # every subject keeps about a fifth in the test part


def test_kfold_partitions_the_table():
    table = make_questions(n=30)
    folds = kfold(table, k=4, seed=0)
    tests = [set(f["test"]) for f in folds]
    assert set().union(*tests) == set(table["id"]) and sum(map(len, tests)) == 30
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    for f in folds:
        assert set(f["train"]) == set(table["id"]) - set(f["test"])
        assert select(table, f["test"])["category"].nunique() == 3


def test_split_roundtrip_and_select_order(tmp_path):
    table = make_questions(n=12)
    split = train_test_split(table, test_size=3, seed=1)
    path = save_split(split, tmp_path / "split.json")
    assert load_split(path) == split
    assert list(select(table, split["test"])["id"]) == split["test"]
    with pytest.raises(KeyError, match="not in the table"):
        select(table, ["q000", "missing"])


def test_bad_test_size():
    with pytest.raises(ValueError, match="leaves no train"):
        train_test_split(make_questions(n=5), test_size=5)
