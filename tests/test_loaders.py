"""Loaders: the embedded data sets, the published formats, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hils_kit.cli import main
from hils_kit.data.formats import parse_option_block
from hils_kit.data.loaders import load_questions, read_questions, save_questions
from hils_kit.data.questions import QuestionFileError, rejects_path

FIX = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "name, n, n_categories, n_options",
    [
        ("medmcqa", 4183, 21, 4),
        ("medqa", 1273, 1, 5),
        ("mmlu_medical", 1089, 1, 4),
    ],
)
def test_embedded_datasets(name, n, n_categories, n_options):
    result = read_questions(name)
    table = result.table
    assert (len(table), table["category"].nunique(), len(result.rejects)) == (n, n_categories, 0)
    assert table["options"].map(len).eq(n_options).all()
    assert table["id"].is_unique
    assert set(table["answer"]) == set("ABCDE"[:n_options])


def test_medmcqa_subjects_are_categories():
    counts = load_questions("medmcqa")["category"].value_counts()
    assert counts["Dental"] == 1318 and counts["Pathology"] == 337 and counts["Unknown"] == 2


def test_an_embedded_set_is_read_once_and_each_load_is_a_copy():
    """The second load comes from memory; changing one load's table, options lists included, leaves the next."""
    first = load_questions("medqa")
    first.loc[0, "question"] = "changed"
    first["options"].iloc[1].append("an extra option")
    again = load_questions("medqa")
    assert again["question"].iloc[0] != "changed" and len(again["options"].iloc[1]) == 5
    assert again.attrs["data_rows"] == 1273 and again.attrs["rejects"] == []


def test_lek_fixture_loads_human_statistics():
    table = load_questions(FIX / "lek_sample.csv")
    assert len(table) == 8 and table["options"].map(len).eq(5).all()
    first = table.iloc[0]
    assert first["answer"] == "A" and first["category"] == "ID"
    assert first["human_p_correct"] == pytest.approx(0.921)
    assert table.loc[5, "human_p_correct"] == pytest.approx(0.94)
    assert {"%A", "%E"} <= set(table.columns)


def test_official_medmcqa_json():
    table = load_questions(FIX / "medmcqa_official.jsonl")
    assert list(table["answer"]) == ["C", "C", "D"]  # cop is 1-based
    assert list(table["category"]) == ["Anatomy", "Biochemistry", "Surgery"]
    assert table.loc[0, "id"] == "e9ad821a-c438-4965-9f77-760819dfa155"
    assert "topic_name" in table.columns  # other columns are kept


def test_official_medqa_json():
    table = load_questions(FIX / "medqa_official.jsonl")
    assert list(table["answer"]) == ["E", "A"]
    assert list(table["category"]) == ["step2&3", "step1"]
    assert table.loc[0, "options"][4] == "Nitrofurantoin"


def test_option_block_quirks():
    assert parse_option_block('A. x\nB. y\nC. z\n"') == ["x", "y", "z"]
    assert parse_option_block("A. first line\ncontinued\nB. y") == ["first line\ncontinued", "y"]


def test_generic_csv_with_mapping(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("qid,stem,o1,o2,o3,key,topic\n7,What?,x,y,z,B,t1\n8,Why?,u,v,w,z. w,t2\n")
    result = read_questions(
        path,
        mapping={"id": "qid", "question": "stem", "options": ["o1", "o2", "o3"], "answer": "key", "category": "topic"},
    )
    assert list(result.table["id"]) == ["7"] and result.table.loc[0, "answer"] == "B"
    assert [(r.line, r.field) for r in result.rejects] == [(3, "answer")]


def test_kit_csv_roundtrip_keeps_extra_columns(tmp_path, questions):
    path = save_questions(questions, tmp_path / "q.csv")
    back = load_questions(path)
    assert back["options"].tolist() == questions["options"].tolist()
    assert back["difficulty"].tolist() == pytest.approx(questions["difficulty"].tolist())


def test_bad_rows_are_reported_with_file_line_and_field():
    result = read_questions(FIX / "bad_rows.csv")
    assert list(result.table["question"]) == ["Good question one?", "Good question six?"]
    got = {(r.line, r.field) for r in result.rejects}
    assert got == {(3, "question"), (4, "answer"), (5, "option B"), (6, "options"), (8, "answer")}
    assert all(r.file.endswith("bad_rows.csv") for r in result.rejects)
    reasons = " | ".join(r.reason for r in result.rejects)
    assert "question is empty" in reasons and "not among the options" in reasons
    assert "wrong option count" in reasons and "option text is empty" in reasons


def test_duplicate_ids_are_rejected(tmp_path, questions):
    dup = questions.head(3).copy()
    dup.loc[2, "id"] = dup.loc[0, "id"]
    path = save_questions(dup, tmp_path / "dup.csv")
    result = read_questions(path)
    assert len(result.table) == 2
    assert [(r.line, r.field) for r in result.rejects] == [(4, "id")]
    assert "duplicate id" in result.rejects[0].reason


def test_wrong_option_count_for_a_fixed_format(tmp_path):
    path = tmp_path / "medmcqa_like.jsonl"
    path.write_text(json.dumps({"question": "q?", "options": "A. a\nB. b\nC. c", "answer": "A. a"}) + "\n")
    from hils_kit.data.loaders import read_file

    with pytest.raises(QuestionFileError, match="wrong option count: 3, this format has 4"):
        read_file(path, format="langtest", expected_options=4)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"prompt,A,B,Answer\n", "holds no questions"),
        (b"question,answer\nq,A\n", r"missing column\(s\) options of the kit's CSV"),
        (b"stem,key\nq,A\n", "cannot tell the format"),
        (b"prompt,A,Answer\nq,x,A\n", "missing column"),
    ],
)
def test_unusable_csv_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(QuestionFileError, match=message) as err:
        read_questions(path)
    assert "bad.csv" in str(err.value)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "lek.csv"
    path.write_text("prompt,A,C,Answer\nq,x,y,A\n")
    with pytest.raises(QuestionFileError, match=r"lek.csv: missing column\(s\) B"):
        read_questions(path)


def test_bad_encoding_names_the_line():
    with pytest.raises(QuestionFileError, match=r"latin1.csv: is not UTF-8 text \(byte 0xe9 on line 2\)"):
        read_questions(FIX / "latin1.csv")


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(QuestionFileError, match="does not exist"):
        read_questions(tmp_path / "nope.csv")
    with pytest.raises(QuestionFileError, match="is a folder"):
        read_questions(tmp_path, format="lek")


def test_invalid_json_lines_become_rejects(tmp_path):
    path = tmp_path / "x.jsonl"
    good = {"question": "q?", "options": "A. a\nB. b", "answer": "B. b"}
    path.write_text(json.dumps(good) + "\n{not json\n")
    result = read_questions(path)
    assert len(result.table) == 1 and result.rejects[0].line == 2 and "invalid JSON" in result.rejects[0].reason


def test_validate_cli_writes_rejects_beside_output(tmp_path, capsys):
    out = tmp_path / "clean.csv"
    assert main(["data", "validate", str(FIX / "bad_rows.csv"), "-o", str(out)]) == 0
    assert main(["data", "validate", str(FIX / "bad_rows.csv"), "--strict"]) == 1
    assert len(load_questions(out)) == 2
    rejects = rejects_path(out).read_text().splitlines()
    assert len(rejects) == 1 + 5 and rejects[0] == "file,line,field,reason,id"
    assert "bad_rows.csv:3: question: question is empty" in capsys.readouterr().out


def test_validate_cli_unusable_file_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "empty.csv"
    bad.write_text("")
    out = tmp_path / "clean.csv"
    assert main(["data", "validate", str(bad), "-o", str(out)]) == 2
    assert "empty.csv: the file is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad]


def test_data_show_cli(capsys):
    assert main(["data", "show", "medmcqa"]) == 0
    out = capsys.readouterr().out
    assert "medmcqa: 4,183 questions in 21 categories" in out
    assert "4 options: 4,183" in out and "A 32.2%" in out


def test_data_list_cli(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "4,183" in out and "1,273" in out and "1,089" in out
