"""Bad output paths for every writing command, bad study YAMLs and absent study backends: one table row per
case, run in-process.

Each row runs ``hils_kit.cli.main(command)`` in a scratch folder (see ``scratch``) and expects either an error
(``hils: error: ...`` matching ``error``, exit 2, the folder untouched) or success (exit 0, ``files`` written,
nothing else changed). Model work and a study's run are replaced by a stub that fails with ``REACHED``: a row
expecting ``REACHED`` shows that the output check passed and that it ran before any model would load.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hils_kit.cli import main
from hils_kit.core.paths import MARKER, OutputPathError, claim_folder
from hils_kit.data.loaders import save_questions
from tests.conftest import make_questions

REACHED = "stub: the command went past its output checks"
LEK_HEADER = "prompt,A,B,C,D,Answer,Category"


@dataclass
class Case:
    """One row: ``command`` (argv after ``hils``) run in the scratch folder after ``setup`` (name -> text
    files to write; a name ending in ``/`` makes a folder); then ``error`` (a regex on stderr, exit 2) or
    exit 0 with ``files`` present and ``absent`` gone. ``changes``: path prefixes a successful row may write
    under. ``env``: environment variables set for the command."""

    id: str
    command: list[str]
    error: str | None = None
    setup: dict | None = None
    files: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    env: dict | None = None


EMPTY = "an empty path; give a"
DOT = r"names a folder such as '\.' or '\.\.', not a new output"
FOREIGN = "the folder exists, is not empty and was not made by the kit; give a new folder, or pass --overwrite"
ORDER = ["order", "q.csv", "--strategy", "random"]
VALIDATE = ["data", "validate", "q.csv"]
DIFFICULTY = ["label", "difficulty", "q.csv", "--models", "tiny"]
CATEGORIES = ["label", "categories", "q.csv"]
TRAIN = ["train", "q.csv", "--model", "tiny", "--preset", "tiny"]
EVALUATE = ["evaluate", "--model", "tiny", "--data", "q.csv"]
STUDY = ["study", "study.yaml", "--dry-run"]
RUN_STUDY = ["study", "study.yaml", "--out", "new"]  # no --dry-run: the backend is checked too


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT = closed_port()


def study(text: str, **files: str) -> dict:
    return {"study.yaml": text, **files}


OUTPUT_CASES = [
    # hils data validate -o FILE
    Case("validate-empty", [*VALIDATE, "-o", ""], rf"-o '': {EMPTY} file name"),
    Case("validate-dot", [*VALIDATE, "-o", "."], rf"-o '\.': {DOT}"),
    Case("validate-dotdot", [*VALIDATE, "-o", ".."], rf"-o '\.\.': {DOT}"),
    Case(
        "validate-folder",
        [*VALIDATE, "-o", "foreign"],
        r"-o 'foreign': is an existing folder; give a file path, "
        r"e\.g\. foreign/out\.csv",
    ),
    Case("validate-trailing-slash", [*VALIDATE, "-o", "new/"], r"-o 'new/': ends with '/', so it names a folder"),
    Case("validate-under-a-file", [*VALIDATE, "-o", "keep.txt/out.csv"], r"'keep\.txt' is a file, not a folder"),
    Case(
        "validate-rejects-path-is-a-folder",
        [*VALIDATE, "-o", "good.csv"],
        r"-o \(its rejects file\) 'good\.rejects\.csv': is an existing folder",
        setup={"good.rejects.csv/": ""},
    ),
    Case("validate-writes", [*VALIDATE, "-o", "out/good.csv"], files=("out/good.csv",), changes=("out",)),
    # hils order -o FILE
    Case("order-empty", [*ORDER, "-o", ""], rf"-o '': {EMPTY} file name"),
    Case("order-dot", [*ORDER, "-o", "."], rf"-o '\.': {DOT}"),
    Case("order-dotdot", [*ORDER, "-o", ".."], rf"-o '\.\.': {DOT}"),
    Case("order-dot-slash", [*ORDER, "-o", "./"], rf"-o '\./': {DOT}"),
    Case("order-folder", [*ORDER, "-o", "foreign"], r"-o 'foreign': is an existing folder"),
    Case("order-kit-folder", [*ORDER, "-o", "kitrun"], r"-o 'kitrun': is an existing folder"),
    Case("order-link-to-folder", [*ORDER, "-o", "link"], r"-o 'link': is an existing folder \(a link to a folder\)"),
    Case("order-under-a-file", [*ORDER, "-o", "keep.txt/o.csv"], r"'keep\.txt' is a file, not a folder"),
    Case("order-new-nested-file", [*ORDER, "-o", "a/b/order.csv"], files=("a/b/order.csv",), changes=("a",)),
    Case(
        "order-replaces-its-file",
        [*ORDER, "-o", "old.csv"],
        files=("old.csv",),
        setup={"old.csv": "x"},
        changes=("old.csv",),
    ),
    Case(
        "order-removes-its-stale-rejects",
        [*ORDER, "-o", "old.csv"],
        files=("old.csv",),
        absent=("old.rejects.csv",),
        setup={"old.rejects.csv": "file,line,field,reason,id\nq.csv,3,answer,empty,q1\n"},
        changes=("old.csv", "old.rejects.csv"),
    ),
    Case(
        "order-keeps-a-foreign-rejects-named-file",
        [*ORDER, "-o", "old.csv"],
        files=("old.csv", "old.rejects.csv"),
        setup={"old.rejects.csv": "my own notes\n"},
        changes=("old.csv",),
    ),
    # hils label difficulty|categories -o FILE
    Case("label-difficulty-empty", [*DIFFICULTY, "-o", ""], rf"-o '': {EMPTY} file name"),
    Case("label-difficulty-dot", [*DIFFICULTY, "-o", "."], rf"-o '\.': {DOT}"),
    Case("label-difficulty-folder", [*DIFFICULTY, "-o", "foreign"], r"-o 'foreign': is an existing folder"),
    Case(
        "label-difficulty-sidecar-is-folder",
        [*DIFFICULTY, "-o", "labels.csv"],
        r"-o \(its \.meta\.json\) 'labels\.meta\.json': is an existing folder",
        setup={"labels.meta.json/": ""},
    ),
    Case("label-difficulty-accepted", [*DIFFICULTY, "-o", "labels.csv"], REACHED),
    Case("label-categories-dotdot", [*CATEGORIES, "-o", ".."], rf"-o '\.\.': {DOT}"),
    Case("label-categories-folder", [*CATEGORIES, "-o", "empty"], r"-o 'empty': is an existing folder"),
    # hils train -o FOLDER (refused before any model loads)
    Case("train-empty", [*TRAIN, "-o", ""], rf"-o '': {EMPTY} new folder name"),
    Case("train-dot", [*TRAIN, "-o", "."], rf"-o '\.': {DOT}"),
    Case("train-dotdot", [*TRAIN, "-o", ".."], rf"-o '\.\.': {DOT}"),
    Case("train-dot-with-overwrite", [*TRAIN, "-o", ".", "--overwrite"], rf"-o '\.': {DOT}"),
    Case("train-foreign-folder", [*TRAIN, "-o", "foreign"], rf"-o 'foreign': {FOREIGN}"),
    Case("train-link-to-foreign-folder", [*TRAIN, "-o", "link"], rf"-o 'link': {FOREIGN}"),
    Case("train-a-file", [*TRAIN, "-o", "keep.txt"], r"-o 'keep\.txt': is a file, not a folder"),
    Case("train-a-file-with-overwrite", [*TRAIN, "-o", "keep.txt", "--overwrite"], r"is a file, not a folder"),
    Case("train-foreign-with-overwrite", [*TRAIN, "-o", "foreign", "--overwrite"], REACHED),
    Case("train-kit-folder", [*TRAIN, "-o", "kitrun"], REACHED),
    Case("train-empty-folder", [*TRAIN, "-o", "empty"], REACHED),
    Case("train-new-folder", [*TRAIN, "-o", "runs/new"], REACHED),
    # hils evaluate -o FOLDER
    Case("evaluate-empty", [*EVALUATE, "-o", ""], rf"-o '': {EMPTY} new folder name"),
    Case("evaluate-dot", [*EVALUATE, "-o", "."], rf"-o '\.': {DOT}"),
    Case("evaluate-dotdot", [*EVALUATE, "-o", ".."], rf"-o '\.\.': {DOT}"),
    Case("evaluate-foreign-folder", [*EVALUATE, "-o", "foreign"], rf"-o 'foreign': {FOREIGN}"),
    Case("evaluate-a-file", [*EVALUATE, "-o", "keep.txt"], r"-o 'keep\.txt': is a file, not a folder"),
    Case("evaluate-foreign-with-overwrite", [*EVALUATE, "-o", "foreign", "--overwrite"], REACHED),
    Case("evaluate-kit-folder", [*EVALUATE, "-o", "kitrun"], REACHED),
    # hils study --out FOLDER
    Case(
        "study-out-empty", [*STUDY, "--out", ""], rf"--out '': {EMPTY} new folder name", setup=study("models: [tiny]\n")
    ),
    Case("study-out-dot", [*STUDY, "--out", "."], rf"--out '\.': {DOT}", setup=study("models: [tiny]\n")),
    Case("study-out-dotdot", [*STUDY, "--out", ".."], rf"--out '\.\.': {DOT}", setup=study("models: [tiny]\n")),
    Case(
        "study-out-a-file",
        [*STUDY, "--out", "keep.txt"],
        r"--out 'keep\.txt': is a file, not a folder",
        setup=study("models: [tiny]\n"),
    ),
    Case(
        "study-out-foreign-folder",
        [*STUDY, "--out", "foreign"],
        rf"--out 'foreign': {FOREIGN}",
        setup=study("models: [tiny]\n"),
    ),
]

STUDY_CASES = [
    Case("study-empty-file", STUDY, r"study\.yaml: the study file is empty \(or only comments\)", setup=study("")),
    Case("study-comment-only", STUDY, r"the study file is empty", setup=study("# models: [tiny]\n\n# nothing\n")),
    Case("study-empty-mapping", STUDY, r"the study file is empty", setup=study("{}\n")),
    Case("study-binary", STUDY, r"study\.yaml: is not UTF-8 text", setup=study("\udcff\udcfe")),
    Case(
        "study-nan-learning-rate",
        STUDY,
        r"'train\.learning_rate' should be a finite number, got nan",
        setup=study("models: [tiny]\npreset: tiny\ntrain_overrides: {learning_rate: .nan}\n"),
    ),
    Case(
        "study-inf-weight-decay",
        STUDY,
        r"'train\.weight_decay' should be a finite number, got inf",
        setup=study("models: [tiny]\npreset: tiny\ntrain_overrides: {weight_decay: .inf}\n"),
    ),
    Case(
        "study-nan-test-fraction",
        STUDY,
        r"'split\.test_fraction' should be a finite number, got nan",
        setup=study("models: [tiny]\nsplit: {kind: holdout, test_fraction: .nan}\n"),
    ),
    Case(
        "study-unknown-model",
        STUDY,
        r"'models' 'nobody/no-such-model': unknown model",
        setup=study("models: [nobody/no-such-model]\npreset: tiny\n"),
    ),
    Case(
        "study-unknown-difficulty-model",
        STUDY,
        r"'difficulty_models' 'missing-folder': unknown model",
        setup=study("models: [tiny]\ndifficulty_models: [missing-folder]\n"),
    ),
    Case(
        "study-unknown-test-set",
        STUDY,
        r"'test_sets\[1\]' 'medqq' is neither a kit data set",
        setup=study("models: [tiny]\ntest_sets: [medqa, medqq]\n"),
    ),
    Case(
        "study-missing-train-data",
        STUDY,
        r"'train_data' 'data/lek\.csv' is neither a kit data set .* nor an "
        r"existing file",
        setup=study("models: [tiny]\ntrain_data: data/lek.csv\n"),
    ),
    Case(
        "study-missing-difficulty-file",
        STUDY,
        r"'difficulty_file' 'llm\.csv' is not an existing file",
        setup=study("models: [tiny]\ndifficulty_file: llm.csv\n"),
    ),
    Case(
        "study-difficulty-file-without-column",
        STUDY,
        r"'difficulty_file' 'llm\.csv' needs columns id,difficulty",
        setup=study("models: [tiny]\ndifficulty_file: llm.csv\n", **{"llm.csv": "id,score\na,1\n"}),
    ),
    Case(
        "study-unknown-train-format",
        STUDY,
        r"'train_format' 'xlsx' should be one of langtest",
        setup=study("models: [tiny]\ntrain_format: xlsx\n"),
    ),
    Case(
        "study-train-format-needs-mapping",
        STUDY,
        r"'train_format' 'csv' needs a column mapping",
        setup=study("models: [tiny]\ntrain_format: csv\n"),
    ),
    Case(
        "study-lora-dropout-one",
        STUDY,
        r"lora_dropout must be in \[0, 1\), got 1\.0",
        setup=study("models: [tiny]\npreset: tiny\ntrain_overrides: {lora_dropout: 1}\n"),
    ),
    Case(
        "study-lora-dropout-negative",
        STUDY,
        r"lora_dropout must be in \[0, 1\), got -0\.1",
        setup=study("models: [tiny]\npreset: tiny\ntrain_overrides: {lora_dropout: -0.1}\n"),
    ),
    Case(
        "study-unknown-optimiser",
        STUDY,
        r"'optim' 'adamw_fancy' is not a transformers optimiser",
        setup=study("models: [tiny]\npreset: tiny\ntrain_overrides: {optim: adamw_fancy}\n"),
    ),
    Case(
        "study-human-on-kit-data",
        STUDY,
        r"'scenarios' has 'human', but 'train_data' 'medmcqa' has no examinee "
        r"shares",
        setup=study("models: [tiny]\nscenarios: [human]\n"),
    ),
    Case(
        "study-human-on-csv-without-shares",
        STUDY,
        r"'train_data' 'lek\.csv' has no examinee shares",
        setup=study(
            "models: [tiny]\nscenarios: [human]\ntrain_data: lek.csv\n",
            **{"lek.csv": f"{LEK_HEADER}\nq?,a,b,c,d,A,x\n"},
        ),
    ),
    Case(
        "study-human-on-jsonl-without-shares",
        STUDY,
        r"'train_data' 'mm\.jsonl' has no examinee shares",
        setup=study(
            "models: [tiny]\nscenarios: [human]\ntrain_data: mm.jsonl\n",
            **{"mm.jsonl": '{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 1}\n'},
        ),
    ),
    Case(
        "study-category-order-empty",
        STUDY,
        r"'category_order' is an empty list",
        setup=study("models: [tiny]\ncategory_order: []\n"),
    ),
    Case(
        "study-category-order-repeats",
        STUDY,
        r"'category_order' repeats \['Anatomy'\]",
        setup=study("models: [tiny]\ncategory_order: [Anatomy, Surgery, Anatomy]\n"),
    ),
    Case(
        "study-category-order-incomplete",
        STUDY,
        r"'category_order' lacks 20 of the 21 categories of 'medmcqa'",
        setup=study("models: [tiny]\ncategory_order: [Anatomy]\n"),
    ),
    Case(
        "study-category-order-list-with-clusters",
        STUDY,
        r"scenario 'llm_clusters' orders by text clusters",
        setup=study("models: [tiny]\nscenarios: [llm_clusters]\nstrategies: [blocked]\ncategory_order: [Anatomy]\n"),
    ),
    Case(
        "study-category-order-unknown-name",
        STUDY,
        r"'category_order' 'biggest' should be one of size",
        setup=study("models: [tiny]\ncategory_order: biggest\n"),
    ),
    Case(
        "study-slurm-without-slurm",
        [*RUN_STUDY, "--backend", "slurm"],
        r"no SLURM found on this machine \(`srun` is not on PATH\); --submitit-cluster local rehearses the same "
        r"jobs",
        setup=study("models: [tiny]\n"),
        env={"PATH": "empty"},
    ),
    Case(
        "study-ray-head-not-there",
        [*RUN_STUDY, "--backend", "ray", "--address", f"127.0.0.1:{PORT}", "--connect-timeout", "5"],
        rf"no Ray head at 127\.0\.0\.1:{PORT}: .*; start one there with `ray start --head --port {PORT}`, or "
        r"drop --address to run a local Ray instance",
        setup=study("models: [tiny]\n"),
    ),
    Case(
        "study-ray-head-from-env-not-there",
        [*RUN_STUDY, "--backend", "ray", "--connect-timeout", "5"],
        rf"no Ray head at 127\.0\.0\.1:{PORT} \(\$RAY_ADDRESS\): .*, or unset RAY_ADDRESS",
        setup=study("models: [tiny]\n"),
        env={"RAY_ADDRESS": f"127.0.0.1:{PORT}"},
    ),
]

CASES = OUTPUT_CASES + STUDY_CASES


def snapshot(root: Path) -> dict:
    """Every path under ``root``: links by target, folders as such, files by content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            out[rel] = (
                ("link", os.readlink(path))
                if path.is_symlink()
                else ("dir",)
                if path.is_dir()
                else ("file", path.read_bytes())
            )
    return out


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder with data, a foreign folder with a file in it, an empty one, a kit run folder, a file,
    a link to the foreign folder, and the model steps stubbed out."""
    work = tmp_path / "work"
    work.mkdir()
    save_questions(make_questions(), work / "q.csv")
    (work / "foreign").mkdir()
    (work / "foreign" / "precious.txt").write_text("not the kit's")
    (work / "empty").mkdir()
    claim_folder(work / "kitrun", "test")
    (work / "kitrun" / "train_summary.json").write_text("{}")
    (work / "keep.txt").write_text("keep")
    (work / "link").symlink_to("foreign", target_is_directory=True)
    monkeypatch.chdir(work)

    def stub(*args, **kwargs):
        raise ValueError(REACHED)

    for target in (
        "hils_kit.train.training.train",
        "hils_kit.score.evaluation.evaluate",
        "hils_kit.labels.difficulty.label_difficulty",
        "hils_kit.labels.categories.label_categories",
        "hils_kit.models.loading.load_model",
        "hils_kit.study.runner.run_study",
    ):
        monkeypatch.setattr(target, stub)
    return work


def run_case(case: Case, work: Path, capsys) -> None:
    for name, text in (case.setup or {}).items():
        path = work / name
        if name.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = snapshot(work.parent)
    capsys.readouterr()
    code = main(case.command)
    err = capsys.readouterr().err
    after = snapshot(work.parent)
    if case.error:
        assert code == 2, f"{case.id}: exit {code}, stderr {err!r}"
        assert err.startswith("hils: error: ") and "Traceback" not in err
        assert re.search(case.error, err), f"{case.id}: {err!r}"
        assert after == before, f"{case.id}: a refused command changed the folder"
        return
    assert code == 0, f"{case.id}: exit {code}, stderr {err!r}"
    for name in case.files:
        assert (work / name).is_file(), f"{case.id}: {name} not written"
    for name in case.absent:
        assert not (work / name).exists(), f"{case.id}: {name} left behind"
    changed = [rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel)]
    allowed = [f"work/{prefix}" for prefix in case.changes]
    stray = [rel for rel in changed if not any(rel == a or rel.startswith(a + "/") for a in allowed)]
    assert not stray, f"{case.id}: changed {stray}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, scratch, capsys, monkeypatch):
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    run_case(case, scratch, capsys)


def test_the_table_covers_every_writing_command_and_enough_cases():
    commands = {c.command[0] if c.command[0] not in ("data", "label") else " ".join(c.command[:2]) for c in CASES}
    assert commands == {"data validate", "order", "label difficulty", "label categories", "train", "evaluate", "study"}
    assert len(CASES) >= 35 and len({c.id for c in CASES}) == len(CASES)


def test_study_out_new_folder_is_marked_and_a_foreign_one_needs_overwrite(scratch, capsys, monkeypatch):
    """``hils study --out``: a new folder becomes the kit's; a foreign one is written into only with --overwrite."""
    import hils_kit.study.runner as runner

    seen = []
    monkeypatch.setattr(runner, "run_study", lambda config, out, **kw: seen.append(Path(out)) or FINISHED)
    monkeypatch.setattr(runner, "summary_table", lambda run: "")
    (scratch / "study.yaml").write_text("models: [tiny]\nstrategies: [random]\n")
    assert main(["study", "study.yaml", "--out", "new"]) == 0
    assert (scratch / "new" / MARKER).is_file()
    assert main(["study", "study.yaml", "--out", "new"]) == 0  # its own folder: accepted again
    assert main(["study", "study.yaml", "--out", "foreign"]) == 2
    assert main(["study", "study.yaml", "--out", "foreign", "--overwrite"]) == 0
    assert not (scratch / "foreign" / MARKER).exists()
    assert (scratch / "foreign" / "precious.txt").read_text() == "not the kit's"
    assert seen == [Path("new"), Path("new"), Path("foreign")]


class _FinishedRun:
    ok = True
    index = "index.html"


FINISHED = _FinishedRun()


def test_train_refuses_a_foreign_folder_before_building_the_trainer(questions, tmp_path, monkeypatch):
    """The library call refuses too, before any model loads (the trainer builder is never reached)."""
    import hils_kit.train.training as training

    monkeypatch.setattr(training, "build_trainer", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="pass overwrite=True to write into it"):
        training.train(questions, model="tiny", out_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_ray_head_that_never_answers_is_given_up_after_the_connect_timeout():
    """A port whose queue is full takes no more connections: the wait ends at ``--connect-timeout``."""
    from hils_kit.study.ray_backend import ray_head

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port, queued = server.getsockname()[1], []
        try:
            for _ in range(16):  # fill the queue until a connection waits
                queued.append(socket.socket())
                queued[-1].settimeout(0.5)
                queued[-1].connect(("127.0.0.1", port))
        except TimeoutError:
            start = time.monotonic()
            with pytest.raises(ValueError, match=rf"127\.0\.0\.1:{port}: no answer within 1 s \(--connect-timeout\)"):
                ray_head(f"127.0.0.1:{port}", timeout=1)
            assert time.monotonic() - start < 5
        else:
            pytest.fail("the listening queue never filled")
        finally:
            for client in queued:
                client.close()
