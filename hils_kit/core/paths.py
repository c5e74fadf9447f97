"""Where the kit keeps things (project root, model cache) and how it writes outputs safely.

Output rules, for every command and library function that writes:

- a file output must name a file: an empty path, ``.``, ``..``, a path ending in ``/`` and an existing
  folder are refused (:func:`output_file`);
- a folder output must not be ``""``, ``.`` or ``..``, nor a file, nor a non-empty folder the kit did not
  make, unless ``overwrite`` is given (:func:`output_folder`); the kit marks the folders it makes with a
  :data:`MARKER` file, so it knows its own run folders from yours;
- writes are atomic (:func:`atomic_path`): the output is complete or untouched, and nothing the kit did not
  write itself is ever removed. ``overwrite`` writes into a foreign folder by replacing only the files the
  output has.

>>> from hils_kit.core.paths import write_text_atomic
>>> write_text_atomic("/tmp/hils_kit_paths_doc.txt", "written whole or not at all").read_text()
'written whole or not at all'
>>> output_file("", flag="-o")                                  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
hils_kit.core.paths.OutputPathError: -o '': an empty path; give a file name such as out.csv ...
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = PROJ_ROOT / "params"
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
REPORTS_DIR = PROJ_ROOT / "reports"
RUNS_DIR = PROJ_ROOT / "runs"
MARKER = ".hils-kit"  # a small JSON file in every output folder the kit made; its own folders carry it


class OutputPathError(ValueError):
    """An output path the kit refuses: the message names the path, the reason and the flag to use."""


def cache_dir() -> Path:
    """The kit's cache (converted models, labels): ``$HILS_CACHE`` or ``~/.cache/hils_kit``."""
    env = os.environ.get("HILS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hils_kit"


# ----------------------------------------------------------------------------- checks before any work


def _last_part(text: str) -> str:
    """The last component of a path as typed: ``"runs/x/"`` -> ``"x"``, ``"a/."`` -> ``"."``."""
    return text.rstrip("/" + os.sep).replace(os.sep, "/").rpartition("/")[2]


def _refuse_non_names(text: str, flag: str, example: str) -> None:
    if text == "":
        raise OutputPathError(
            f"{flag} '': an empty path; give a {example} (an unset shell variable gives an empty path)"
        )
    if _last_part(text) in ("", ".", ".."):
        raise OutputPathError(
            f"{flag} '{text}': names a folder such as '.' or '..', not a new output; give a {example}"
        )


def made_by_kit(folder: str | Path) -> bool:
    """True for a folder the kit made as an output (it holds the :data:`MARKER` file)."""
    return (Path(folder) / MARKER).is_file()


def mark_folder(folder: str | Path, made_by: str) -> Path:
    """Create ``folder`` if needed and mark it as the kit's (``made_by`` says which command made it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = {"made_by": made_by, "created": datetime.now().isoformat(timespec="seconds")}
    (folder / MARKER).write_text(json.dumps(stamp) + "\n", encoding="utf-8")
    return folder


def claim_folder(folder: str | Path, made_by: str) -> Path:
    """Make ``folder``, or take an empty one, and mark it as the kit's; a non-empty folder is left as it is.

    For outputs written file by file into a folder (``hils evaluate``, ``hils study``).
    """
    folder = Path(folder)
    if not folder.exists() or _is_empty_folder(folder):
        mark_folder(folder, made_by)
    return folder


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def output_file(path: str | Path, flag: str = "output") -> Path:
    """``path`` as a file output, refused (:class:`OutputPathError`) unless it names a file that can be written.

    Refused: ``""``, ``.``, ``..``, a path ending in ``/``, an existing folder (or a link to one), and a path
    under an existing file. A missing parent folder is fine (it is made on write); an existing file is replaced.

    >>> output_file("results/out.csv")
    PosixPath('results/out.csv')
    >>> output_file("/tmp", flag="-o")
    Traceback (most recent call last):
    ...
    hils_kit.core.paths.OutputPathError: -o '/tmp': is an existing folder; give a file path, e.g. /tmp/out.csv
    """
    text = os.fspath(path)
    _refuse_non_names(text, flag, "file name such as out.csv")
    if text.endswith(("/", os.sep)):
        raise OutputPathError(
            f"{flag} '{text}': ends with '/', so it names a folder; give a file path, e.g. {text}out.csv"
        )
    target = Path(text)
    if target.is_dir():
        link = " (a link to a folder)" if target.is_symlink() else ""
        raise OutputPathError(
            f"{flag} '{text}': is an existing folder{link}; give a file path, e.g. {target / 'out.csv'}"
        )
    _check_parent(target, flag)
    return target


def _check_parent(target: Path, flag: str) -> None:
    for parent in target.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(f"{flag} '{target}': '{parent}' is a file, not a folder; give another path")
            return


def output_folder(
    path: str | Path, flag: str = "output", overwrite: bool = False, overwrite_flag: str = "--overwrite"
) -> Path:
    """``path`` as an output folder, refused (:class:`OutputPathError`) unless the kit may write into it.

    Accepted: a missing folder, an empty one, one the kit made (:func:`made_by_kit`), or with ``overwrite``
    any folder. Refused: ``""``, ``.``, ``..`` (and the root) and an existing file.

    >>> output_folder("..", flag="--out")                       # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hils_kit.core.paths.OutputPathError: --out '..': names a folder such as '.' or '..', not a new output; ...
    """
    text = os.fspath(path)
    _refuse_non_names(text, flag, "new folder name such as runs/my-run")
    target = Path(text)
    if (target.exists() or target.is_symlink()) and not target.is_dir():
        raise OutputPathError(f"{flag} '{text}': is a file, not a folder; give a folder path")
    if target.is_dir() and not (overwrite or _is_empty_folder(target) or made_by_kit(target)):
        raise OutputPathError(
            f"{flag} '{text}': the folder exists, is not empty and was not made by the kit; give a new folder, "
            f"or pass {overwrite_flag} to write into it (only the files this command writes are replaced)"
        )
    _check_parent(target, flag)
    return target


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(target: str | Path, overwrite: bool = False):
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    The block writes a file or a folder at the yielded path. Afterwards ``target`` holds it whole, or, when
    the block fails, everything is as before (parent folders made for it are removed again). A file
    replaces a file or a link, never a folder. A folder replaces a missing, empty or kit-made folder (and is
    marked as the kit's); with ``overwrite`` it is merged into any other folder, replacing only the files it
    has. Nothing else is ever removed: refusals raise :class:`OutputPathError` before anything changes.

    >>> with atomic_path("/tmp/hils_kit_paths_doc") as tmp:
    ...     tmp.mkdir()
    ...     _ = (tmp / "a.txt").write_text("a")
    >>> sorted(p.name for p in Path("/tmp/hils_kit_paths_doc").iterdir())
    ['.hils-kit', 'a.txt']
    """
    text = os.fspath(target)
    target = Path(text)
    if _last_part(text) in ("", ".", ".."):
        raise OutputPathError(
            f"output '{text}': not a file or folder name (empty, '.', '..' or the root); nothing was written"
        )
    foreign = target.is_symlink() or not (_is_empty_folder(target) or made_by_kit(target))
    if target.is_dir() and foreign and not overwrite:
        raise OutputPathError(
            f"output '{target}': is a folder the kit did not make (or a link to one); nothing "
            "was written (give another path, or overwrite=True to write a folder into it)"
        )
    if target.is_symlink() and target.is_dir():
        target = target.resolve()  # overwrite: merge into the folder the link points to
    _check_parent(target, "output")
    made = [p for p in reversed(target.parents) if not p.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.", suffix=".tmp", dir=target.parent))
    except OSError as err:
        _remove_made(made)
        raise OutputPathError(f"output '{target}': cannot write in '{target.parent}' ({err.strerror})") from None
    tmp = workdir / "new" / target.name
    try:
        tmp.parent.mkdir()
        yield tmp
        _put_in_place(tmp, target, workdir / "old", overwrite)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        _remove_made(made)
        raise
    shutil.rmtree(workdir, ignore_errors=True)


def _remove_made(folders: list[Path]) -> None:
    """Remove the parent folders made for an output that was not written (deepest first, only if empty)."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _put_in_place(tmp: Path, target: Path, old: Path, overwrite: bool) -> None:
    if not tmp.exists() and not tmp.is_symlink():
        raise OutputPathError(f"output '{target}': nothing was written (the writer left no file or folder)")
    if not tmp.is_dir() or tmp.is_symlink():
        if target.is_dir():
            raise OutputPathError(f"output '{target}': is a folder; a file cannot replace it (nothing was written)")
        os.replace(tmp, target)
        return
    if not target.exists() and not target.is_symlink():
        mark_folder(tmp, "hils_kit")
        os.replace(tmp, target)
    elif not target.is_symlink() and made_by_kit(target):
        mark_folder(tmp, "hils_kit")
        os.replace(target, old)  # the kit's own folder: swap it for the new one, then drop it with the workdir
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
    elif target.is_dir() and (overwrite or _is_empty_folder(target)):
        conflicts = _merge_conflicts(tmp, target)
        if conflicts:
            raise OutputPathError(f"output '{target}': cannot write into it: {conflicts[0]} (nothing was written)")
        if _is_empty_folder(target):
            mark_folder(tmp, "hils_kit")
        _merge(tmp, target)
    else:
        raise OutputPathError(
            f"output '{target}': is a file (or a folder the kit did not make); a folder cannot "
            "replace it (nothing was written)"
        )


def _merge_conflicts(src: Path, dst: Path) -> list[str]:
    """Where a file of ``src`` would land on a folder of ``dst`` or the other way round."""
    out = []
    for entry in src.iterdir():
        there = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if there.is_symlink() or there.exists() and not there.is_dir():
                out.append(f"'{there}' is a file where the output has a folder")
            elif there.is_dir():
                out += _merge_conflicts(entry, there)
        elif there.is_dir() and not there.is_symlink():
            out.append(f"'{there}' is a folder where the output has a file")
    return out


def _merge(src: Path, dst: Path) -> None:
    """Move every file of ``src`` to the same place under ``dst``, replacing only those files."""
    for entry in src.iterdir():
        there = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            there.mkdir(exist_ok=True)
            _merge(entry, there)
        else:
            os.replace(entry, there)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)
