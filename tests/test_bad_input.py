"""The bad-input contract, one row per case: every input is parsed right or refused clearly.

Each :class:`Case` writes its ``files`` into a fresh folder, then runs ``run``: a ``hils`` command line (a
list; ``{d}`` stands for the folder), run in-process, or a callable taking the folder. The outcome is either an
error whose message matches ``error`` (and names the file when ``names_file``), or a value that ``expect``
accepts (the parsed answers, a refused row with its line and field, a command's output). Add rows to
:data:`CASES`; nothing else needs to change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from hils_kit.cli import main
from hils_kit.data.loaders import load_questions, read_questions, save_questions
from hils_kit.data.questions import QuestionFileError
from hils_kit.labels.label_files import read_labels
from hils_kit.stages.prepare import label_questions, prepare_data, training_questions


@dataclass
class Cli:
    """What a ``hils`` command returned and printed."""

    rc: int
    out: str
    err: str


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes]
    run: list[str] | Callable[[Path], object]
    error: str | None = None  # regex the error message must match
    expect: Callable[[object], bool] | None = None
    names_file: bool = True  # the error names the (first) input file

    @property
    def outcome(self) -> str:
        if self.error:
            return "error from hils" if isinstance(self.run, list) else "error from the loader"
        return "refused row" if self.expect.__qualname__.startswith("refused") else "parsed right"


# ----------------------------------------------------------------------------- helpers for rows


def jsonl(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def mcqa(cop, q="q", opts=("a", "b", "c", "d"), **extra) -> dict:
    return {
        "id": f"id-{q}",
        "question": f"{q}?",
        "opa": opts[0],
        "opb": opts[1],
        "opc": opts[2],
        "opd": opts[3],
        "cop": cop,
        "subject_name": "Anatomy",
        **extra,
    }


def medqa(options, answer_idx=None, **extra) -> dict:
    rec = {"question": extra.pop("question", "Which?"), "options": options, "meta_info": "step1", **extra}
    if answer_idx is not None:
        rec["answer_idx"] = answer_idx
    return rec


def lang(options="A. x\nB. y", answer="A", question="q?") -> dict:
    return {"question": question, "options": options, "answer": answer}


def kit_csv(*rows, header="question,options,answer") -> str:
    """A kit CSV; each row (question, [options], answer[, more...])."""
    lines = [header]
    for row in rows:
        q, opts, ans, *rest = row
        cells = [q, json.dumps(opts), ans, *rest]
        lines.append(",".join('"' + str(c).replace('"', '""') + '"' for c in cells))
    return "\n".join(lines) + "\n"


LEK_HEAD = "prompt,A,B,C,D,E,Answer,Category,%A,%B,%C,%D,%E"


def lek(*rows, head=LEK_HEAD) -> str:
    return "\n".join([head, *rows]) + "\n"


def load(name="q.jsonl", **kw) -> Callable[[Path], object]:
    return lambda d: read_questions(d / name, **kw)


def answers(*letters) -> Callable[[object], bool]:
    return lambda r: list(r.table["answer"]) == list(letters)


def refused(line: int, field: str, fragment: str, kept: int | None = None) -> Callable[[object], bool]:
    """A refused row at ``line`` with ``field`` and a reason containing ``fragment`` (and ``kept`` good rows)."""

    def check(r) -> bool:
        hit = any(j.line == line and j.field == field and fragment in j.reason for j in r.rejects)
        return hit and (kept is None or len(r.table) == kept)

    return check


def both(*checks) -> Callable[[object], bool]:
    return lambda r: all(c(r) for c in checks)


def column(name: str, values: list) -> Callable[[object], bool]:
    def check(r) -> bool:
        table = r.table if hasattr(r, "table") else r
        return [round(v, 6) if isinstance(v, float) else v for v in table[name]] == values

    return check


def cli_ok(*fragments) -> Callable[[object], bool]:
    return lambda r: r.rc == 0 and all(f in r.out + r.err for f in fragments)


def csv_out(name: str, check: Callable[[pd.DataFrame], bool]) -> Callable[[Path], object]:
    """Run nothing more: read ``name`` from the case folder after the command (for use with :func:`then`)."""
    return lambda d: check(pd.read_csv(d / name, dtype={"id": str}))


def then(argv: list[str], after: Callable[[Path], bool]) -> Callable[[Path], object]:
    """Run ``hils argv`` and return ``after(folder)`` (True when the files it wrote are right)."""

    def run(d: Path):
        rc = main([a.replace("{d}", str(d)) for a in argv])
        return rc == 0 and after(d)

    return run


def order(labels: str, *extra, data="q.csv") -> list[str]:
    return [
        "order",
        f"{{d}}/{data}",
        "--strategy",
        "curriculum",
        "--labels",
        f"{{d}}/{labels}",
        "-o",
        "{d}/out.csv",
        *extra,
    ]


FOUR = kit_csv(("q0?", ["a", "b"], "A"), ("q1?", ["c", "d"], "B"), ("q2?", ["e", "f"], "A"), ("q3?", ["g", "h"], "B"))
FOUR_IDS = kit_csv(
    ("q0?", ["a", "b"], "A", "X"),
    ("q1?", ["c", "d"], "B", "Y"),
    ("q2?", ["e", "f"], "A", "Z"),
    ("q3?", ["g", "h"], "B", "W"),
    header="question,options,answer,id",
)
# the authors' layout is keyed by data row: row 1 of this file is refused, yet counts
WITH_REFUSED = kit_csv(("q0?", ["a", "b"], "A"), ("", ["c", "d"], "B"), ("q2?", ["e", "f"], "A"))


def difficulty_of(d: Path) -> list:
    out = pd.read_csv(d / "out.csv", dtype={"id": str}).sort_values("source_row")
    return [round(v, 6) for v in out["difficulty"]]


def stale_rejects(d: Path):
    """Validate a bad file to out.csv (rejects written), then a good one to the same output."""
    first = main(["data", "validate", str(d / "bad.csv"), "-o", str(d / "out.csv")])
    had = (d / "out.rejects.csv").exists()
    second = main(["data", "validate", str(d / "good.csv"), "-o", str(d / "out.csv")])
    return first == 0 and had and second == 0 and not (d / "out.rejects.csv").exists()


def foreign_rejects_kept(d: Path):
    main(["data", "validate", str(d / "good.csv"), "-o", str(d / "out.csv")])
    return (d / "out.rejects.csv").read_text() == "my own notes\n"


def study_labels(d: Path):
    """The study path: questions saved and reloaded as kit CSVs keep source_row for the authors' layout."""
    table = load_questions(d / "q.csv")
    subset = load_questions(save_questions(table.iloc[[1, 0]], d / "train_holdout.csv"))
    labels = label_questions(subset, ["llm"], d, [], difficulty_file=str(d / "labels.csv"))
    return list(labels["difficulty_llm"])


def prepared_study_labels(d: Path):
    """A study's prepare step (split, kit CSVs) then its labels from the authors' file of the source."""
    prepare_data(str(d / "q.csv"), {"kind": "holdout", "test_fraction": 0.5, "seed": 0}, {"holdout": []}, [], d)
    train = training_questions(d, ["holdout"])
    labels = label_questions(train, ["llm"], d, [], difficulty_file=str(d / "labels.csv"))
    return sorted(zip(train["source_row"], labels["difficulty_llm"]))


BIG = "x" * 200_000

CASES: list[Case] = [
    # --- MedMCQA cop: base decided per file, never per row
    Case(
        "cop 0-based hub export",
        {"q.jsonl": jsonl(mcqa(0, "a"), mcqa(1, "b"), mcqa(2, "c"), mcqa(3, "d"))},
        load(),
        expect=answers("A", "B", "C", "D"),
    ),
    Case(
        "cop 1-based official",
        {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(4, "b"), mcqa(2, "c"))},
        load(),
        expect=answers("A", "D", "B"),
    ),
    Case(
        "cop base unknown",
        {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(2, "b"))},
        load(),
        error=r"no row has cop 0 or 4; give --cop-base 0 or --cop-base 1",
    ),
    Case(
        "cop base given 1", {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(2, "b"))}, load(cop_base=1), expect=answers("A", "B")
    ),
    Case(
        "cop base given 0", {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(2, "b"))}, load(cop_base=0), expect=answers("B", "C")
    ),
    Case(
        "cop 0 and 4 in one file",
        {"q.jsonl": jsonl(mcqa(0, "a"), mcqa(4, "b"))},
        load(),
        error=r"'cop' takes both 0 and 4",
    ),
    Case(
        "cop 4 refused in a file declared 0-based",
        {"q.jsonl": jsonl(mcqa(0, "a"), mcqa(4, "b"))},
        load(cop_base=0),
        expect=refused(2, "cop", "cop 4 is outside 0-3", kept=1),
    ),
    Case(
        "cop 2.5 refused",
        {"q.jsonl": jsonl(mcqa(0, "a"), mcqa(2.5, "b"))},
        load(),
        expect=refused(2, "cop", "cop 2.5 is not a whole number", kept=1),
    ),
    Case(
        "cop true refused",
        {"q.jsonl": jsonl(mcqa(4, "a"), mcqa(True, "b"))},
        load(),
        expect=refused(2, "cop", "cop true is not a whole number", kept=1),
    ),
    Case(
        "cop text refused",
        {"q.jsonl": jsonl(mcqa(4, "a"), mcqa("two", "b"))},
        load(),
        expect=refused(2, "cop", "not a whole number"),
    ),
    Case(
        "cop null refused",
        {"q.jsonl": jsonl(mcqa(4, "a"), mcqa(None, "b"))},
        load(),
        expect=refused(2, "cop", "cop null is not a whole number"),
    ),
    Case(
        "cop 5 refused in 1-based file",
        {"q.jsonl": jsonl(mcqa(4, "a"), mcqa(5, "b"))},
        load(),
        expect=refused(2, "cop", "outside 1-4"),
    ),
    Case("cop as digit string", {"q.jsonl": jsonl(mcqa("0", "a"), mcqa("3", "b"))}, load(), expect=answers("A", "D")),
    Case(
        "hils data validate --cop-base 0",
        {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(2, "b"))},
        ["data", "validate", "{d}/q.jsonl", "--cop-base", "0"],
        expect=cli_ok("2 usable questions, 0 refused"),
    ),
    Case(
        "hils data show without cop base",
        {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(2, "b"))},
        ["data", "show", "{d}/q.jsonl"],
        error=r"--cop-base",
    ),
    Case(
        "hils data show --cop-base 2",
        {"q.jsonl": jsonl(mcqa(1, "a"))},
        ["data", "show", "{d}/q.jsonl", "--cop-base", "2"],
        error=r"--cop-base: invalid choice",
        names_file=False,
    ),
    Case(
        "hils order --cop-base 1",
        {"q.jsonl": jsonl(mcqa(1, "a"), mcqa(2, "b"))},
        ["order", "{d}/q.jsonl", "--strategy", "random", "--cop-base", "1", "-o", "{d}/o.csv"],
        expect=cli_ok("2 rows in random order"),
    ),
    # --- MedQA: answer_idx checked against the answer text; option keys in their real order
    Case(
        "medqa answer_idx agrees with answer",
        {"q.jsonl": jsonl(medqa({"A": "x", "B": "y"}, "B", answer="y"))},
        load(),
        expect=answers("B"),
    ),
    Case(
        "medqa answer_idx contradicts answer",
        {
            "q.jsonl": jsonl(
                medqa({"A": "x", "B": "y"}, "B", answer="x", question="one?"),
                medqa({"A": "u", "B": "v"}, "A", question="two?"),
            )
        },
        load(),
        expect=refused(1, "answer", "answer_idx 'B' is option 'y' but answer is 'x'", kept=1),
    ),
    Case(
        "medqa numeric keys sort as numbers",
        {"q.jsonl": jsonl(medqa({str(k): f"opt{k}" for k in range(1, 11)}, "10", answer="opt10"))},
        load(),
        expect=both(
            answers("J"), lambda r: r.table.loc[0, "options"][9] == "opt10" and r.table.loc[0, "options"][1] == "opt2"
        ),
    ),
    Case(
        "medqa lower-case keys",
        {"q.jsonl": jsonl(medqa({"b": "y", "a": "x"}, "b"))},
        load(),
        expect=both(answers("B"), lambda r: r.table.loc[0, "options"] == ["x", "y"]),
    ),
    Case(
        "medqa keys out of order",
        {"q.jsonl": jsonl(medqa({"C": "z", "A": "x", "B": "y"}, "C"))},
        load(),
        expect=both(answers("C"), lambda r: r.table.loc[0, "options"] == ["x", "y", "z"]),
    ),
    Case(
        "medqa mixed keys refused",
        {
            "q.jsonl": jsonl(
                medqa({"A": "x", "2": "y"}, "A", question="one?"), medqa({"A": "u", "B": "v"}, "A", question="two?")
            )
        },
        load(),
        expect=refused(1, "options", "neither letters A-J nor numbers"),
    ),
    Case(
        "medqa answer_idx not a key",
        {
            "q.jsonl": jsonl(
                medqa({"A": "x", "B": "y"}, "F", question="one?"), medqa({"A": "u", "B": "v"}, "A", question="two?")
            )
        },
        load(),
        expect=refused(1, "answer_idx", "answer_idx 'F' is not an option key"),
    ),
    Case(
        "medqa answer text only",
        {"q.jsonl": jsonl(medqa({"A": "x", "B": "y"}, answer="y"))},
        load(),
        expect=answers("B"),
    ),
    Case(
        "medqa lower-case answer_idx", {"q.jsonl": jsonl(medqa({"A": "x", "B": "y"}, "b"))}, load(), expect=answers("B")
    ),
    # --- CSV structure
    Case(
        "duplicated header column",
        {"q.csv": 'question,options,answer,answer\nq,"[""a"",""b""]",A,B\n'},
        load("q.csv"),
        error=r"column 'answer' appears more than once in the header \(columns 3, 4\)",
    ),
    Case(
        "CR-only line endings",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,90,2,3,3,2", "q2?,a,b,c,d,e,B,X,5,90,2,2,1").replace("\n", "\r")},
        load("q.csv"),
        expect=answers("A", "B"),
    ),
    Case("CRLF line endings", {"q.csv": FOUR.replace("\n", "\r\n")}, load("q.csv"), expect=answers("A", "B", "A", "B")),
    Case(
        "field over the csv limit",
        {"q.csv": kit_csv((BIG, ["a", "b"], "A"))},
        load("q.csv"),
        expect=lambda r: len(r.table.loc[0, "question"]) == 200_000,
    ),
    Case(
        "unclosed quote",
        {"q.csv": 'question,options,answer\nq1,"[""a"",""b""]",A\n"q2,"[""c""]",B\n'},
        load("q.csv"),
        error=r"line 3: CSV error.*unbalanced quote",
    ),
    Case(
        "quote never closed to end of file",
        {"q.csv": 'question,options,answer\nq1,"[""a"",""b""]",A\nq2,"[""c"",""d""],B\n'},
        load("q.csv"),
        error=r"line 3: CSV error.*never closes",
    ),
    Case(
        "semicolon separated",
        {"q.csv": "question;options;answer\nq;a|b;A\n"},
        load("q.csv"),
        error=r"separated by semicolons: save the file with commas",
    ),
    Case("tab separated", {"q.csv": "question\toptions\tanswer\nq\ta\tA\n"}, load("q.csv"), error=r"separated by tabs"),
    Case(
        "capitalised header",
        {"q.csv": "Question,Options,Answer\nq,x,A\n"},
        load("q.csv"),
        error=r"case-sensitive \(Question, Options, Answer\).*--format csv",
    ),
    Case(
        "capitalised header through the CLI advises flags",
        {"q.csv": "Question,Options,Answer\nq,x,A\n"},
        ["data", "validate", "{d}/q.csv"],
        error=r"--map question=COLUMN",
    ),
    Case(
        "capitalised header read with --map",
        {"q.csv": kit_csv(("q?", ["a", "b"], "B"), header="Question,Options,Answer")},
        [
            "data",
            "validate",
            "{d}/q.csv",
            "--format",
            "csv",
            "--map",
            "question=Question",
            "--map",
            "options=Options",
            "--map",
            "answer=Answer",
        ],
        expect=cli_ok("1 usable questions, 0 refused"),
    ),
    Case(
        "missing answer column named",
        {"q.csv": 'question,options,category\nq,"[]",x\n'},
        load("q.csv"),
        error=r"missing column\(s\) answer of the kit's CSV",
    ),
    Case(
        "LEK lower-case option columns",
        {"q.csv": "prompt,a,b,c,Answer\nq,x,y,z,A\n"},
        load("q.csv"),
        error=r"missing column\(s\) A, B of a LEK CSV .*rename a, b, c to A, B, C",
    ),
    Case(
        "LEK without Answer named",
        {"q.csv": "prompt,A,B,C\nq,a,b,c\n"},
        load("q.csv"),
        error=r"missing column\(s\) Answer of a LEK CSV",
    ),
    Case("unknown header", {"q.csv": "stem,key\nq,A\n"}, load("q.csv"), error=r"cannot tell the format.*--map"),
    Case(
        "row with extra fields",
        {"q.csv": FOUR + '"q4?","[""x"",""y""]","A","extra"\n'},
        load("q.csv"),
        expect=refused(6, "row", "the row has 4 fields, the header 3", kept=4),
    ),
    Case(
        "row with too few fields",
        {"q.csv": FOUR + '"q4?","[""x"",""y""]"\n'},
        load("q.csv"),
        expect=refused(6, "row", "the row has 2 fields, the header 3", kept=4),
    ),
    Case("empty file", {"q.csv": ""}, load("q.csv"), error=r"the file is empty"),
    Case("header only", {"q.csv": "question,options,answer\n"}, load("q.csv"), error=r"holds no questions"),
    Case("UTF-8 with BOM", {"q.csv": "\ufeff" + FOUR}, load("q.csv"), expect=answers("A", "B", "A", "B")),
    Case(
        "latin-1 question file",
        {"q.csv": 'question,options,answer\n"caf\xe9","[]",A\n'.encode("latin-1")},
        load("q.csv"),
        error=r"is not UTF-8 text \(byte 0xe9 on line 2\)",
    ),
    Case(
        "excel file named .csv",
        {"q.csv": b"PK\x03\x04" + b"\x00" * 40},
        load("q.csv"),
        error=r"zip file \(an Excel .xlsx\?\); export it as CSV",
    ),
    Case("binary file", {"q.jsonl": b"\x00\x01\x02" * 100}, load(), error=r"binary file \(NUL bytes\)"),
    Case("gzip file", {"q.jsonl": b"\x1f\x8b\x08\x00" + b"\x00" * 30}, load(), error=r"gzip-compressed"),
    Case(
        "blank lines between rows",
        {"q.csv": FOUR.replace('"A"\n', '"A"\n\n')},
        load("q.csv"),
        expect=both(answers("A", "B", "A", "B"), column("source_row", [0, 1, 2, 3])),
    ),
    Case(
        "no usable row", {"q.csv": kit_csv(("", ["a", "b"], "A"))}, load("q.csv"), error=r"none of its 1 rows is usable"
    ),
    Case("unknown file type", {"q.txt": "hello"}, load("q.txt"), error=r"unknown file type '.txt'"),
    Case(
        "missing file",
        {},
        lambda d: read_questions(d / "nope.csv"),
        error=r"nope.csv: file does not exist",
        names_file=False,
    ),
    # --- LEK examinee shares: scale per file, rows must sum to 100 ± 2
    Case(
        "LEK percent shares",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,90,2,3,3,2")},
        load("q.csv"),
        expect=column("human_p_correct", [0.9]),
    ),
    Case(
        "LEK fraction shares",
        {"q.csv": lek("q1?,a,b,c,d,e,B,X,0.05,0.9,0.02,0.02,0.01", "q2?,a,b,c,d,e,A,X,0.6,0.1,0.1,0.1,0.1")},
        load("q.csv"),
        expect=both(column("human_p_correct", [0.9, 0.6]), column("%B", [90.0, 10.0])),
    ),
    Case(
        "LEK percent row not summing",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,80,2,3,3,2", "q2?,a,b,c,d,e,A,X,90,2,3,3,2")},
        load("q.csv"),
        expect=refused(2, "%A-%E", "examinee shares sum to 90, not 100", kept=1),
    ),
    Case(
        "LEK fraction row not summing",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,0.5,0.1,0.1,0.1,0.1", "q2?,a,b,c,d,e,A,X,0.6,0.1,0.1,0.1,0.1")},
        load("q.csv"),
        expect=refused(2, "%A-%E", "sum to 0.9, not 1", kept=1),
    ),
    Case(
        "LEK shares within tolerance",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,91.5,2,3,3,2")},
        load("q.csv"),
        expect=column("human_p_correct", [0.915]),
    ),
    Case(
        "LEK share not a number",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,n/a,2,3,3,2", "q2?,a,b,c,d,e,A,X,90,2,3,3,2")},
        load("q.csv"),
        expect=refused(2, "%A", "examinee share 'n/a' is not a number"),
    ),
    Case(
        "LEK shares all NaN",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,nan,nan,nan,nan,nan")},
        load("q.csv"),
        error=r"q.csv:2: %A: examinee share nan is outside 0-100",
    ),
    Case(
        "LEK share negative",
        {"q.csv": lek("q1?,a,b,c,d,e,A,X,-5,2,3,3,2", "q2?,a,b,c,d,e,A,X,90,2,3,3,2")},
        load("q.csv"),
        expect=refused(2, "%A", "outside 0-100"),
    ),
    Case(
        "LEK correct share missing",
        {"q.csv": lek("q1?,a,b,c,d,e,B,X,96,,2,1,1", "q2?,a,b,c,d,e,A,X,90,2,3,3,2")},
        load("q.csv"),
        expect=refused(2, "%B", "share of the correct option is missing"),
    ),
    Case(
        "LEK four options in five columns",
        {"q.csv": lek("q1?,a,b,c,d,,D,X,2,2,2,94,")},
        load("q.csv"),
        expect=both(answers("D"), lambda r: len(r.table.loc[0, "options"]) == 4),
    ),
    Case(
        "LEK without shares",
        {"q.csv": "prompt,A,B,Answer\nq?,x,y,B\n"},
        load("q.csv"),
        expect=both(answers("B"), lambda r: "human_p_correct" not in r.table),
    ),
    # --- rows: repeats, control characters, answers
    Case(
        "same question under two ids",
        {
            "q.csv": kit_csv(
                ("q?", ["a", "b"], "A", "x1"), ("q?", ["a", "b"], "B", "x2"), header="question,options,answer,id"
            )
        },
        load("q.csv"),
        expect=refused(3, "question", "the same question as id 'x1' (line 2); the first is kept", kept=1),
    ),
    Case(
        "same text other options kept",
        {"q.csv": kit_csv(("Which is true?", ["a", "b"], "A"), ("Which is true?", ["c", "d"], "B"))},
        load("q.csv"),
        expect=answers("A", "B"),
    ),
    Case(
        "two identical options",
        {"q.csv": kit_csv(("q?", ["a", "b", "a"], "B"), ("r?", ["c", "d"], "A"))},
        load("q.csv"),
        expect=refused(2, "option C", "options A and C are identical ('a')", kept=1),
    ),
    Case(
        "NUL in question",
        {"q.jsonl": jsonl(lang(question="q\x00?"), lang(question="ok?"))},
        load(),
        expect=refused(1, "question", "control character U+0000", kept=1),
    ),
    Case(
        "bell in an option",
        {"q.jsonl": jsonl(lang(options="A. x\nB. y\x07"), lang(question="ok?"))},
        load(),
        expect=refused(1, "option B", "control character U+0007"),
    ),
    Case("tab and line break allowed", {"q.jsonl": jsonl(lang(question="a\tb\nc?"))}, load(), expect=answers("A")),
    Case("answer as option text", {"q.jsonl": jsonl(lang(answer="y"))}, load(), expect=answers("B")),
    Case(
        "answer text up to case and spaces",
        {"q.jsonl": jsonl(lang(options="A. Aspirin\nB. Beta  blocker", answer="beta blocker"))},
        load(),
        expect=answers("B"),
    ),
    Case(
        "answer text that is no option",
        {"q.jsonl": jsonl(lang(answer="zebra"), lang(question="ok?"))},
        load(),
        expect=refused(1, "answer", "'zebra' is neither a letter A-B nor the text of one of the options"),
    ),
    Case(
        "answer true",
        {"q.jsonl": jsonl(lang(answer=True), lang(question="ok?"))},
        load(),
        expect=refused(1, "answer", "answer is a boolean (True)"),
    ),
    Case(
        "answer null",
        {"q.jsonl": jsonl(lang(answer=None), lang(question="ok?"))},
        load(),
        expect=refused(1, "answer", "answer is empty"),
    ),
    Case(
        "answer list",
        {"q.jsonl": jsonl(lang(answer=["A"]), lang(question="ok?"))},
        load(),
        expect=refused(1, "answer", "answer is a JSON list"),
    ),
    Case(
        "answer 1.5",
        {"q.jsonl": jsonl(lang(answer=1.5), lang(question="ok?"))},
        load(),
        expect=refused(1, "answer", "answer 1.5 is not a whole number"),
    ),
    Case(
        "answer number in CSV",
        {"q.csv": kit_csv(("q?", ["a", "b"], "2"), ("r?", ["c", "d"], "A"))},
        load("q.csv"),
        expect=refused(2, "answer", "answer '2' is a number; write the letter (A-B)"),
    ),
    Case(
        "answer letter beyond options",
        {"q.csv": kit_csv(("q?", ["a", "b"], "E"), ("r?", ["c", "d"], "A"))},
        load("q.csv"),
        expect=refused(2, "answer", "answer letter 'E' is not among the options A-B"),
    ),
    Case(
        "answer letter with wrong text",
        {"q.csv": kit_csv(("q?", ["a", "b"], "B. a"), ("r?", ["c", "d"], "A"))},
        load("q.csv"),
        expect=refused(2, "answer", "answer text 'a' does not match option B 'b'"),
    ),
    # --- answers: letters when a file's answers are letters throughout, else letters or option texts
    Case(
        "letter answers throughout: D is letter D",
        {"q.csv": kit_csv(("Vitamin for clotting?", ["A", "C", "D", "K"], "D"), ("r?", ["c", "d"], "(a)"))},
        load("q.csv"),
        expect=both(answers("D", "A"), lambda r: r.table.loc[0, "options"][3] == "K"),
    ),
    Case(
        "letter answers throughout: blood group B",
        {"q.csv": kit_csv(("Blood group?", ["A", "B", "AB", "O"], "B"), ("r?", ["c", "d"], "a"))},
        load("q.csv"),
        expect=both(answers("B", "A"), lambda r: r.table.loc[0, "options"][1] == "B"),
    ),
    Case(
        "letters and texts mixed: the clashing letter refused",
        {
            "q.csv": kit_csv(
                ("Vitamin for clotting?", ["A", "C", "D", "K"], "D"),
                ("r?", ["cat", "dog"], "dog"),
                ("s?", ["e", "f"], "A"),
            )
        },
        load("q.csv"),
        expect=both(
            refused(2, "answer", "answer 'D' is ambiguous: letter D or the text of option C; write it as 'D. K'"),
            answers("B", "A"),
        ),
    ),
    Case(
        "option texts throughout: read as texts",
        {
            "q.csv": kit_csv(
                ("Vitamin for clotting?", ["A", "C", "D", "K"], "K"),
                ("Universal donor?", ["A", "B", "AB", "O"], "O"),
                ("Universal recipient?", ["A", "B", "AB", "O"], "AB"),
                ("Night blindness?", ["A", "C", "D", "K"], "A"),
            )
        },
        load("q.csv"),
        expect=answers("D", "D", "C", "A"),
    ),
    Case(
        "letter answers throughout in a mapped JSONL",
        {"q.jsonl": jsonl({"stem": "Vitamin for clotting?", "o": ["A", "C", "D", "K"], "key": "D"})},
        load(format="jsonl", mapping={"question": "stem", "options": "o", "answer": "key"}),
        expect=answers("D"),
    ),
    Case(
        "hils data validate --map: letter answers throughout",
        {"q.csv": "stem,o1,o2,o3,o4,key\nVitamin for clotting?,A,C,D,K,D\nBlood group?,A,B,AB,O,B\n"},
        then(
            [
                *("data", "validate", "{d}/q.csv", "--format", "csv", "-o", "{d}/out.csv"),
                *("--map", "question=stem", "--map", "options=o1,o2,o3,o4", "--map", "answer=key"),
            ],
            csv_out("out.csv", lambda t: list(t["answer"]) == ["D", "B"]),
        ),
        expect=lambda r: r is True,
    ),
    Case("answer in parentheses", {"q.csv": kit_csv(("q?", ["a", "b"], "(b)"))}, load("q.csv"), expect=answers("B")),
    Case(
        "answer option text starting like a letter",
        {"q.jsonl": jsonl(lang(options="A. A bacterium\nB. A virus", answer="A virus"))},
        load(),
        expect=answers("B"),
    ),
    Case(
        "lower-case option lines",
        {"q.jsonl": jsonl(lang(options="a. x\nb. y\nc. z", answer="c"))},
        load(),
        expect=both(answers("C"), lambda r: r.table.loc[0, "options"] == ["x", "y", "z"]),
    ),
    Case(
        "options without letter lines",
        {"q.jsonl": jsonl(lang(options="x | y"), lang(question="ok?"))},
        load(),
        expect=refused(1, "options", "no option lines 'A. text' found"),
    ),
    Case(
        "one option only",
        {"q.jsonl": jsonl(lang(options="A. x"), lang(question="ok?"))},
        load(),
        expect=refused(1, "options", "wrong option count: 1 (need 2 to 10)"),
    ),
    Case(
        "options JSON broken",
        {"q.csv": kit_csv(("q?", ["a", "b"], "A")) + '"r?","[""c"", ""d""","A"\n'},
        load("q.csv"),
        expect=refused(3, "options", "options are not a JSON list"),
    ),
    Case(
        "options cell empty",
        {"q.csv": kit_csv(("q?", ["a", "b"], "A")) + '"r?","","A"\n'},
        load("q.csv"),
        expect=refused(3, "options", "options are empty"),
    ),
    Case(
        "empty option text",
        {"q.csv": kit_csv(("q?", ["a", " "], "A"), ("r?", ["c", "d"], "A"))},
        load("q.csv"),
        expect=refused(2, "option B", "option text is empty"),
    ),
    Case(
        "empty question",
        {"q.csv": kit_csv(("  ", ["a", "b"], "A"), ("r?", ["c", "d"], "A"))},
        load("q.csv"),
        expect=refused(2, "question", "question is empty"),
    ),
    Case(
        "duplicate id",
        {
            "q.csv": kit_csv(
                ("q?", ["a", "b"], "A", "x"), ("r?", ["c", "d"], "A", "x"), header="question,options,answer,id"
            )
        },
        load("q.csv"),
        expect=refused(3, "id", "duplicate id 'x' (first on line 2)"),
    ),
    Case("invalid JSON line", {"q.jsonl": jsonl(lang()) + "{oops\n"}, load(), expect=refused(2, "row", "invalid JSON")),
    Case(
        "JSON array with item lines",
        {"q.json": json.dumps([lang(question="one?"), lang(question="two?", answer=7)], indent=1)},
        load("q.json"),
        expect=lambda r: [(j.line, j.field) for j in r.rejects] == [(7, "answer")],
    ),
    Case("JSON that is not a list", {"q.json": "[1, 2]"}, load("q.json"), error=r"no line is a JSON object"),
    Case(
        "JSON fields unknown",
        {"q.jsonl": jsonl({"stem": "q", "key": "A"})},
        load(),
        error=r"line 1: cannot tell the format from its fields \(stem, key\); pass --format jsonl with --map",
    ),
    Case(
        "mapped CSV with JSON options",
        {"q.csv": 'stem,opts,key\nq?,"[""a"",""b""]",b\n'},
        load("q.csv", mapping={"question": "stem", "options": "opts", "answer": "key"}),
        expect=answers("B"),
    ),
    Case(
        "source_row counts refused rows",
        {"q.csv": WITH_REFUSED},
        load("q.csv"),
        expect=both(column("source_row", [0, 2]), lambda r: r.data_rows == 3),
    ),
    # --- hils data show / validate
    Case("data show misspelt name", {}, ["data", "show", "medmcqq"], error=r"did you mean medmcqa\?", names_file=False),
    Case(
        "data show unknown name",
        {},
        ["data", "show", "zzz"],
        error=r"zzz: no such file, and not an embedded data set \(medmcqa, medqa, mmlu_medical\)$",
        names_file=False,
    ),
    Case(
        "data show negative samples",
        {"q.csv": FOUR},
        ["data", "show", "{d}/q.csv", "--samples", "-1"],
        error=r"--samples must be 0 or more, not -1",
        names_file=False,
    ),
    Case(
        "data show samples not a number",
        {"q.csv": FOUR},
        ["data", "show", "{d}/q.csv", "--samples", "x"],
        error=r"--samples takes a whole number, not 'x'",
        names_file=False,
    ),
    Case(
        "data show zero samples",
        {"q.csv": FOUR},
        ["data", "show", "{d}/q.csv", "--samples", "0"],
        expect=cli_ok("4 questions in 1 categories"),
    ),
    Case(
        "data validate empty --map",
        {"q.csv": FOUR},
        ["data", "validate", "{d}/q.csv", "--map", "question="],
        error=r"--map 'question=': use FIELD=COLUMN",
        names_file=False,
    ),
    Case(
        "data validate --strict",
        {"q.csv": WITH_REFUSED},
        ["data", "validate", "{d}/q.csv", "--strict"],
        expect=lambda r: r.rc == 1 and "q.csv:3: question: question is empty" in r.out,
    ),
    Case(
        "data validate folder without files",
        {"sub/readme.md": "x"},
        ["data", "validate", "{d}/sub"],
        error=r"/sub: holds no .jsonl files",
        names_file=False,
    ),
    Case("stale rejects removed", {"bad.csv": WITH_REFUSED, "good.csv": FOUR}, stale_rejects, expect=bool),
    Case(
        "foreign rejects file kept",
        {"good.csv": FOUR, "out.rejects.csv": "my own notes\n"},
        foreign_rejects_kept,
        expect=bool,
    ),
    Case(
        "order removes its stale rejects",
        {"q.csv": FOUR, "out.rejects.csv": "file,line,field,reason,id\n"},
        then(
            ["order", "{d}/q.csv", "--strategy", "random", "-o", "{d}/out.csv"],
            lambda d: not (d / "out.rejects.csv").exists(),
        ),
        expect=bool,
    ),
    # --- labels: hils order --labels, the labels module, a study's difficulty_file
    Case(
        "labels id layout",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,0.9\nY,0.1\nZ,0.5\nW,0.3\n"},
        then(order("l.csv"), difficulty_of),
        expect=lambda r: r == [0.9, 0.1, 0.5, 0.3],
    ),
    Case(
        "labels authors layout by data row",
        {"q.csv": WITH_REFUSED, "l.csv": "Index,llm_difficulty\n0,0.7\n1,0.5\n2,0.2\n"},
        then(order("l.csv"), difficulty_of),
        expect=lambda r: r == [0.7, 0.2],
    ),
    Case(
        "labels authors layout row count",
        {"q.csv": WITH_REFUSED, "l.csv": "Index,llm_difficulty\n0,0.7\n2,0.2\n"},
        order("l.csv"),
        error=r"l.csv: 2 label rows \(Index,llm_difficulty\) but the question file has 3 data rows",
        names_file=False,
    ),
    Case(
        "labels above 1",
        {"q.csv": FOUR, "l.csv": "Index,llm_difficulty\n0,0.7\n1,57\n2,0.2\n3,0.1\n"},
        order("l.csv"),
        error=r"l.csv: line 3, Index 1: llm_difficulty 57 is outside \[0, 1\] .*--difficulty-scale "
        r"100",
        names_file=False,
    ),
    Case(
        "labels rescaled on request",
        {"q.csv": FOUR, "l.csv": "Index,llm_difficulty\n0,70\n1,57\n2,20\n3,10\n"},
        then(order("l.csv", "--difficulty-scale", "100"), difficulty_of),
        expect=lambda r: r == [0.7, 0.57, 0.2, 0.1],
    ),
    Case(
        "labels scale still out of range",
        {"q.csv": FOUR, "l.csv": "Index,llm_difficulty\n0,0.7\n1,570\n2,2\n3,1\n"},
        order("l.csv", "--difficulty-scale", "100"),
        error=r"llm_difficulty 570 is outside \[0, 1\] after dividing "
        r"by 100",
        names_file=False,
    ),
    Case(
        "labels scale zero",
        {"q.csv": FOUR, "l.csv": "id,difficulty\n"},
        order("l.csv", "--difficulty-scale", "0"),
        error=r"--difficulty-scale must be a positive number, not 0",
        names_file=False,
    ),
    Case(
        "labels inf",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,inf\nY,0.1\nZ,0.5\nW,0.3\n"},
        order("l.csv"),
        error=r"l.csv: line 2, id X: difficulty is inf",
        names_file=False,
    ),
    Case(
        "labels NaN",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,0.2\nY,NaN\nZ,0.5\nW,0.3\n"},
        order("l.csv"),
        error=r"line 3, id Y: difficulty is NaN",
        names_file=False,
    ),
    Case(
        "labels negative",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,-0.2\nY,0.1\nZ,0.5\nW,0.3\n"},
        order("l.csv"),
        error=r"id X: difficulty -0.2 is outside \[0, 1\]",
        names_file=False,
    ),
    Case(
        "labels not a number",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,hard\nY,0.1\nZ,0.5\nW,0.3\n"},
        order("l.csv"),
        error=r"id X: difficulty 'hard' is not a number",
        names_file=False,
    ),
    Case(
        "labels value empty",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,\nY,0.1\nZ,0.5\nW,0.3\n"},
        order("l.csv"),
        error=r"line 2, id X: no difficulty value",
        names_file=False,
    ),
    Case(
        "labels blank id rows skipped",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,0.9\nY,0.1\nZ,0.5\nW,0.3\n,\n,\n"},
        ["order", "{d}/q.csv", "--strategy", "curriculum", "--labels", "{d}/l.csv", "-o", "{d}/out.csv"],
        expect=cli_ok("4 rows in curriculum order", "2 row(s) without id skipped (line 6, 7)"),
    ),
    Case(
        "labels authors layout blank rows",
        {"q.csv": FOUR, "l.csv": "Index,llm_difficulty\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n,\n"},
        then(order("l.csv"), difficulty_of),
        expect=lambda r: r == [0.1, 0.2, 0.3, 0.4],
    ),
    Case(
        "labels duplicate id",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,0.9\nX,0.1\n"},
        order("l.csv"),
        error=r"line 3, id X: duplicate id \(first on line 2\)",
        names_file=False,
    ),
    Case(
        "labels duplicate Index",
        {"q.csv": FOUR, "l.csv": "Index,llm_difficulty\n0,0.1\n0,0.2\n2,0.3\n3,0.4\n"},
        order("l.csv"),
        error=r"line 3, Index 0: duplicate Index",
        names_file=False,
    ),
    Case(
        "labels Index not a row number",
        {"q.csv": FOUR, "l.csv": "Index,llm_difficulty\n0,0.1\n1.5,0.2\n"},
        order("l.csv"),
        error=r"Index 1.5: Index must be a row number",
        names_file=False,
    ),
    Case(
        "labels latin-1",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\ncaf\xe9,0.2\n".encode("latin-1")},
        order("l.csv"),
        error=r"l.csv: is not UTF-8 text \(byte 0xe9 on line 2\)",
        names_file=False,
    ),
    Case(
        "labels binary",
        {"q.csv": FOUR_IDS, "l.csv": b"PK\x03\x04\x00\x00"},
        order("l.csv"),
        error=r"l.csv: is not a text file",
        names_file=False,
    ),
    Case(
        "labels unknown header",
        {"q.csv": FOUR, "l.csv": "question_id,score\n1,0.2\n"},
        order("l.csv"),
        error=r"l.csv: the header \(question_id, score\) is neither the kit's 'id,difficulty' nor the authors'",
        names_file=False,
    ),
    Case(
        "labels missing a question",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty\nX,0.9\nY,0.1\n"},
        order("l.csv"),
        error=r"l.csv: no labels for 2 of 4 questions \(e.g. Z, W\)",
        names_file=False,
    ),
    Case(
        "labels may not replace questions",
        {"q.csv": FOUR_IDS, "l.csv": "id,difficulty,answer\nX,0.9,A\nY,0.1,A\nZ,0.5,A\nW,0.3,A\n"},
        order("l.csv"),
        error=r"labels may not replace question columns answer",
        names_file=False,
    ),
    Case(
        "labels empty",
        {"q.csv": FOUR, "l.csv": "id,difficulty\n,\n"},
        order("l.csv"),
        error=r"l.csv: holds no label rows",
        names_file=False,
    ),
    Case(
        "labels duplicated header",
        {"q.csv": FOUR, "l.csv": "id,difficulty,difficulty\nX,0.1,0.2\n"},
        order("l.csv"),
        error=r"column 'difficulty' appears more than once",
        names_file=False,
    ),
    Case(
        "labels Index on an embedded folder",
        {"l.csv": "Index,llm_difficulty\n0,0.5\n"},
        ["order", "medmcqa", "--strategy", "curriculum", "--labels", "{d}/l.csv", "-o", "{d}/out.csv"],
        error=r"l.csv: labels keyed by Index \(row number\) need questions read from one file",
        names_file=False,
    ),
    Case(
        "labels extra columns ride along",
        {
            "q.csv": FOUR_IDS,
            "l.csv": "id,difficulty,p_correct_tiny\nX,0.9,0.1\nY,0.1,0.9\nZ,0.5,0.5\nW,0.3,0.7\nother,0.2,0.8\n",
        },
        lambda d: read_labels(d / "l.csv", load_questions(d / "q.csv")),
        expect=both(column("p_correct_tiny", [0.1, 0.9, 0.5, 0.7]), column("id", ["X", "Y", "Z", "W"])),
    ),
    Case(
        "labels other difficulty column checked",
        {"q.csv": FOUR_IDS, "l.csv": "id,hardness\nX,2\n"},
        order("l.csv", "--difficulty", "hardness"),
        error=r"id X: hardness 2 is outside \[0, 1\]",
        names_file=False,
    ),
    Case(
        "order negative seed",
        {"q.csv": FOUR},
        ["order", "{d}/q.csv", "--strategy", "random", "--seed", "-3", "-o", "{d}/o.csv"],
        error=r"--seed must be 0 or more, not -3",
        names_file=False,
    ),
    Case(
        "study difficulty_file in the authors' layout",
        {"q.csv": WITH_REFUSED, "labels.csv": "Index,llm_difficulty\n0,0.7\n1,0.5\n2,0.2\n"},
        study_labels,
        expect=lambda r: r == [0.2, 0.7],
    ),
    Case(
        "study prepare then the authors' labels",
        {"q.csv": FOUR, "labels.csv": "Index,llm_difficulty\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n"},
        prepared_study_labels,
        expect=lambda r: len(r) == 2 and all(abs(v - (row + 1) / 10) < 1e-9 for row, v in r),
    ),
    Case(
        "study difficulty_file id layout",
        {"q.csv": FOUR_IDS, "labels.csv": "id,difficulty\nX,0.9\nY,0.1\nZ,0.5\nW,0.3\n"},
        lambda d: list(
            label_questions(load_questions(d / "q.csv"), ["llm"], d, [], difficulty_file=str(d / "labels.csv"))[
                "difficulty_llm"
            ]
        ),
        expect=lambda r: r == [0.9, 0.1, 0.5, 0.3],
    ),
    Case(
        "study difficulty_file out of range",
        {"q.csv": FOUR_IDS, "labels.csv": "id,difficulty\nX,9\n"},
        lambda d: label_questions(load_questions(d / "q.csv"), ["llm"], d, [], difficulty_file=str(d / "labels.csv")),
        error=r"labels.csv: line 2, id X: difficulty 9 is outside \[0, 1\]",
        names_file=False,
    ),
]


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


def _run(case: Case, folder: Path, capsys, caplog) -> tuple[object, str | None]:
    """``(result, error message)`` of a case; an argparse exit counts as an error with its message; log
    records (the notes a command prints) count as its stderr."""
    if isinstance(case.run, list):
        try:
            rc = main([a.replace("{d}", str(folder)) for a in case.run])
        except SystemExit as exit_:
            rc = int(exit_.code or 0)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        result = Cli(rc, captured.out, captured.err + caplog.text)
        return result, (captured.err if rc == 2 else None)
    try:
        return case.run(folder), None
    except (QuestionFileError, ValueError) as err:
        return None, str(err)


def test_cases_have_unique_names():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(CASES) >= 90


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys, caplog):
    _write(tmp_path, case.files)
    result, error = _run(case, tmp_path, capsys, caplog)
    if case.error:
        assert error is not None, f"expected an error, got {result}"
        assert re.search(case.error, error.strip(), re.S), error
        if case.names_file and case.files:
            assert next(iter(case.files)) in error, error
    else:
        assert error is None, error
        assert case.expect(result), result if not hasattr(result, "rejects") else (result.table, result.rejects)


def test_outcome_counts():
    """The contract's size by outcome (printed with -s; the README's Bad input section quotes it)."""
    counts = pd.Series([c.outcome for c in CASES]).value_counts().to_dict()
    print(counts)
    assert sum(counts.values()) == len(CASES)
