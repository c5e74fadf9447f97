"""The order audit's pure parts: mapping fed token sequences to rows, and comparing id sequences."""

from __future__ import annotations

from hils_kit.order.audit import audit, map_to_rows


def test_map_to_rows_hands_out_duplicates_in_sequence_and_cycles_over_epochs():
    dataset = [[1, 2], [3, 4], [1, 2], [5]]  # rows 0 and 2 are the same question repeated
    fed = [[1, 2], [3, 4], [1, 2], [5], [1, 2], [3, 4], [1, 2], [5]]  # two epochs
    assert map_to_rows(fed, dataset) == [0, 1, 2, 3, 0, 1, 2, 3]


def test_map_to_rows_marks_unknown_sequences():
    # a packed row (two examples merged) or a truncated one matches no dataset row
    assert map_to_rows([[1, 2, 3, 4], [3, 4]], [[1, 2], [3, 4]]) == [None, 1]


def test_audit_match():
    result = audit(["q1", "q2", "q1"], ["q1", "q2", "q1"])
    assert result["match"] and result["first_mismatch"] is None
    assert result["n_planned"] == result["n_fed"] == result["n_same_position"] == 3


def test_audit_reports_the_first_swap():
    result = audit(["a", "b", "c", "d"], ["a", "c", "b", "d"])
    assert not result["match"]
    assert (result["first_mismatch"], result["planned_at"], result["fed_at"]) == (1, "b", "c")
    assert result["n_same_position"] == 2


def test_audit_catches_a_dropped_or_unmapped_example():
    short = audit(["a", "b", "c"], ["a", "b"])
    assert not short["match"] and short["first_mismatch"] == 2 and short["fed_at"] is None
    unmapped = audit(["a", "b"], ["a", None])
    assert not unmapped["match"] and unmapped["first_mismatch"] == 1
