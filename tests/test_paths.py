"""The atomic-write helper on odd targets: nothing outside the target changes; the target is whole or untouched."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hils_kit.core.paths import (
    MARKER,
    OutputPathError,
    atomic_path,
    claim_folder,
    made_by_kit,
    output_file,
    output_folder,
)

# targets relative to the working folder ``work`` of the scratch tree (see make_tree)
TARGETS = [
    "",
    ".",
    "..",
    "sub/.",
    "sub/..",
    "foreign",
    "empty",
    "kit",
    "file.txt",
    "link_file",
    "link_dir",
    "dangling",
    "new.txt",
    "new_dir/deeper/out",
    "file.txt/x",
    "readonly/out",
    "../outside.txt",
]
WRITERS = ["file", "folder", "fail", "nothing"]


def make_tree(root: Path) -> Path:
    """A scratch tree with a file outside the working folder and every kind of thing inside it."""
    (root / "outside.txt").write_text("outside")
    work = root / "work"
    (work / "sub").mkdir(parents=True)
    (work / "sub" / "inner.txt").write_text("inner")
    (work / "keep.txt").write_text("keep")
    (work / "foreign").mkdir()
    (work / "foreign" / "a.txt").write_text("theirs")
    (work / "empty").mkdir()
    (work / "kit").mkdir()
    (work / "kit" / MARKER).write_text("{}")
    (work / "kit" / "old.txt").write_text("old run")
    (work / "file.txt").write_text("file")
    (work / "link_file").symlink_to("file.txt")
    (work / "link_dir").symlink_to("foreign", target_is_directory=True)
    (work / "dangling").symlink_to("nowhere")
    (work / "readonly").mkdir()
    (work / "readonly" / "existing.txt").write_text("ro")
    (work / "readonly").chmod(0o555)
    return work


def snapshot(root: Path) -> dict:
    """Every path under ``root``: links by target, folders by mode, files by content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", path.stat().st_mode)
            else:
                out[rel] = ("file", path.read_bytes())
    return out


def write(tmp: Path, writer: str, content: str) -> None:
    if writer == "file":
        tmp.write_bytes(content.encode())
    elif writer == "folder":
        (tmp / "adapter").mkdir(parents=True)
        (tmp / "data.txt").write_bytes(content.encode())
        (tmp / "adapter" / "w.bin").write_bytes(content.encode() * 2)
    elif writer == "fail":
        tmp.write_bytes(content.encode()[: len(content) // 2])
        raise RuntimeError("the writer failed half way")
    # "nothing": the block writes nothing at all


def region(root: Path, work: Path, target: str) -> list[str]:
    """The paths (relative to ``root``) a write to ``target`` may change: the target and, for a link to a
    folder, the folder it points to."""
    lexical = Path(os.path.normpath(work / target)) if target else work
    paths = [lexical]
    if lexical.is_symlink() and lexical.is_dir():
        paths.append(lexical.resolve())
    return [p.relative_to(root).as_posix() if p != root else "" for p in paths]


def inside(rel: str, regions: list[str]) -> bool:
    return any(r == "" or rel == r or rel.startswith(r + "/") for r in regions)


@settings(max_examples=150, deadline=None)
@given(
    target=st.sampled_from(TARGETS),
    writer=st.sampled_from(WRITERS),
    overwrite=st.booleans(),
    content=st.text(min_size=1, max_size=40),
)
def test_atomic_path_changes_only_its_target_and_writes_it_whole_or_not_at_all(target, writer, overwrite, content):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        work = make_tree(root)
        try:
            regions = region(root, work, target)
            before = snapshot(root)
            error = None
            with contextlib.chdir(work):
                try:
                    with atomic_path(target, overwrite=overwrite) as tmp:
                        write(tmp, writer, content)
                except (OutputPathError, OSError, RuntimeError) as err:
                    error = err
            after = snapshot(root)
        finally:
            (work / "readonly").chmod(0o755)

        assert not [rel for rel in after if rel.rsplit("/", 1)[-1].endswith(".tmp")], "a temporary was left behind"
        if target in ("", ".", "..", "sub/.", "sub/..") or writer in ("fail", "nothing"):
            assert error is not None
        if error is not None:
            assert after == before, f"{target!r} failed ({error}) but changed the tree"
            return
        for rel, entry in before.items():
            if not inside(rel, regions):
                assert after.get(rel) == entry, f"{rel} outside the target {target!r} changed"
        ancestors = {Path(regions[0]).parents[i].as_posix() for i in range(len(Path(regions[0]).parents))}
        new = [rel for rel in after if rel not in before and not inside(rel, regions)]
        assert all(rel in ancestors and after[rel][0] == "dir" for rel in new), new
        written = (work / target).resolve() if regions[1:] else Path(os.path.normpath(work / target))
        if writer == "file":
            assert not written.is_symlink() and written.read_bytes() == content.encode()
        else:
            assert (written / "data.txt").read_bytes() == content.encode()
            assert (written / "adapter" / "w.bin").read_bytes() == content.encode() * 2


def test_a_kit_folder_is_replaced_whole_and_a_foreign_one_only_merged_into(tmp_path):
    with atomic_path(tmp_path / "run") as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("first")
        (tmp / "stale.txt").write_text("first")
    assert made_by_kit(tmp_path / "run")
    with atomic_path(tmp_path / "run") as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("second")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [MARKER, "a.txt"]

    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="did not make"):
        with atomic_path(tmp_path / "theirs") as tmp:
            tmp.mkdir()
    with atomic_path(tmp_path / "theirs", overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("written")
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "theirs" / "a.txt").read_text() == "written"
    assert not made_by_kit(tmp_path / "theirs")


def test_a_failed_write_removes_the_parent_folders_it_made(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a" / "b" / "out.csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "path, message",
    [
        ("", "an empty path"),
        (".", "names a folder such as '.'"),
        ("..", "names a folder such as '.'"),
        ("out/", "ends with '/'"),
        ("folder", "is an existing folder"),
        ("file.csv/x.csv", "'file.csv' is a file, not a folder"),
    ],
)
def test_output_file_refusals(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.csv").write_text("x")
    with pytest.raises(OutputPathError, match=f"-o '{path}': {message}"):
        output_file(path, "-o")


def test_output_folder_accepts_new_empty_and_kit_folders_and_refuses_the_rest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "x").write_text("x")
    (tmp_path / "empty").mkdir()
    claim_folder(tmp_path / "kit", "test")
    (tmp_path / "kit" / "y").write_text("y")
    (tmp_path / "file").write_text("f")
    for ok in ("new/run", "empty", "kit"):
        assert output_folder(ok, "-o") == Path(ok)
    assert output_folder("theirs", "-o", overwrite=True) == Path("theirs")
    with pytest.raises(
        OutputPathError,
        match="-o 'theirs': the folder exists, is not empty and was not made by "
        "the kit; give a new folder, or pass --overwrite",
    ):
        output_folder("theirs", "-o")
    with pytest.raises(OutputPathError, match="-o 'file': is a file, not a folder"):
        output_folder("file", "-o", overwrite=True)
    for bad in ("", ".", "..", "kit/.."):
        with pytest.raises(OutputPathError, match="an empty path|names a folder such as"):
            output_folder(bad, "-o", overwrite=True)


def test_claim_folder_leaves_a_non_empty_foreign_folder_unmarked(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    claim_folder(tmp_path, "test")
    assert not made_by_kit(tmp_path)
    assert made_by_kit(claim_folder(tmp_path / "new", "test"))


def test_a_folder_written_into_an_existing_empty_folder_is_marked_as_the_kit_s(tmp_path):
    """An empty folder (made by ``mkdir`` or left by a cleared run) takes the output, and the kit marks it as its own."""
    target = tmp_path / "run"
    target.mkdir()
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("written")
    assert (target / "a.txt").read_text() == "written" and made_by_kit(target)
