"""Typed parameters: the one converter that checks a value against a field's type, and the dataclass tools
every notebook's parameters and the study file share.

- :func:`param` declares a field with its help text (and allowed values) in one line.
- :func:`convert` / :func:`build` check YAML, papermill and ``--set key=value`` values against the types.
- :func:`from_namespace` validates a notebook's globals into its parameters dataclass.
- :func:`parameters_cell` writes the papermill ``parameters`` cell of a dataclass (the notebooks' cells are
  generated from it: ``make notebook-params``).

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     rounds: int = param(3, "interleaving rounds")
...     mode: str = param("a", "a or b", choices=("a", "b"))
>>> from_namespace(Demo, {"rounds": "4", "mode": "b", "other": 1})
Demo(rounds=4, mode='b')
>>> print(parameters_cell(Demo))
# fmt: off
rounds: int = 3  # interleaving rounds
mode: str = 'a'  # a or b
# fmt: on
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Optional


def param(default, help: str, choices=None, derived: bool = False):
    """A dataclass field with its help text; ``choices`` lists the allowed values; ``derived`` marks a field the
    study runner sets for each run (a study file cannot give it). A list or dict default is copied per instance."""
    metadata = {
        "help": help,
        **({"choices": tuple(choices)} if choices else {}),
        **({"derived": True} if derived else {}),
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def default_of(f: dataclasses.Field):
    """A field's default value (a fresh copy for list and dict defaults)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _type_name(hint) -> str:
    """How an error message names a type: ``list[str]`` -> ``"a list of strings"``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    names = {
        type(None): "null",
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin is list and args:
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict and args:
        return f"a mapping of {_type_name(args[0]).removeprefix('a ')} to {_type_name(args[1]).removeprefix('a ')}"
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _from_text(text: str, kind: type):
    """A string given for a bool/int/float field, parsed strictly (YAML reads ``1e-4`` as a string; --set
    gives strings); ``None`` when it does not parse."""
    text = text.strip()
    if kind is bool:
        return {"true": True, "false": False}.get(text.lower())
    try:
        number = float(text)
    except ValueError:
        return None
    if kind is int:
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else None
    return number


def convert(value, hint, where: str):
    """``value`` checked against the type ``hint``; raises ``TypeError`` naming ``where`` and the type.

    Rules: a bool is only ``true``/``false``; a string is parsed for a bool/int/float field ("1e-4", "8",
    "true"); an int is accepted for a float field; NaN and infinities are refused; dataclasses are built
    from mappings with unknown keys refused.

    >>> convert("1e-4", float, "learning_rate"), convert("8", int, "batch"), convert(None, Optional[str], "x")
    (0.0001, 8, None)
    >>> convert("yes", bool, "debias")
    Traceback (most recent call last):
    TypeError: 'debias' should be true/false, got str 'yes'
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        for option in options:
            if option is type(None) and isinstance(value, str) and value.strip().lower() in ("null", "none"):
                return None  # "--set bf16=null"
        others = [o for o in options if o is not type(None)]
        if value is not None and len(others) == 1:
            return convert(value, others[0], where)  # Optional[X]: the error names X
        for option in options:
            try:
                return convert(value, option, where)
            except TypeError:
                pass
        raise TypeError(f"'{where}' should be {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"'{where}' should be a mapping, got {type(value).__name__} {value!r}")
        return build(hint, value, where + ".")
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    given = value
    if isinstance(value, str) and origin in (bool, int, float):
        parsed = _from_text(value, origin)
        value = value if parsed is None else parsed
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value) and origin in (int, float):
        raise TypeError(f"'{where}' should be a finite number, got {given!r}")
    ok = {
        type(None): value is None,
        bool: isinstance(value, bool),
        float: isinstance(value, float),
        int: isinstance(value, int) and not isinstance(value, bool),
        str: isinstance(value, str),
        list: isinstance(value, list),
        dict: isinstance(value, dict),
    }
    if not ok.get(origin, False):
        raise TypeError(f"'{where}' should be {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if origin is list and args:
        return [convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and args:
        return {convert(k, args[0], f"{where} (a key)"): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return value


def build(cls, data: dict, prefix: str = ""):
    """The dataclass ``cls`` from ``data``: unknown keys refused (``KeyError``), values converted (``TypeError``)."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise KeyError(f"unknown key '{prefix}{key}' (known keys: {', '.join(known)})")
    return cls(**{key: convert(value, hints[key], f"{prefix}{key}") for key, value in data.items()})


def choice_problems(instance) -> list[str]:
    """Problems with fields whose metadata lists ``choices`` (a list field: each of its values)."""
    out = []
    for f in dataclasses.fields(instance):
        allowed = f.metadata.get("choices")
        value = getattr(instance, f.name)
        if allowed is None or value is None:
            continue
        if isinstance(value, list):
            bad = [v for v in value if isinstance(v, str) and v not in allowed]
            if bad:
                out.append(f"'{f.name}' has unknown value(s) {bad} (known: {', '.join(allowed)})")
        elif isinstance(value, str) and value not in allowed:
            out.append(f"'{f.name}' {value!r} should be one of {', '.join(allowed)}")
    return out


def from_namespace(cls, namespace: dict):
    """The parameters dataclass ``cls`` from a notebook's globals (the fields only), validated.

    Raises ``ValueError`` naming the parameter, its expected type or its allowed values.
    """
    values = {f.name: namespace[f.name] for f in dataclasses.fields(cls) if f.name in namespace}
    try:
        params = build(cls, values)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{cls.__name__}: {err.args[0]}") from None
    problems = choice_problems(params)
    if problems:
        raise ValueError(f"{cls.__name__}: " + "; ".join(problems))
    return params


def describe(cls) -> str:
    """One line per field: ``name (type, default): help`` — the reference of a notebook's parameters."""
    return "\n".join(
        f"{f.name} ({type_text(f.type)}, default {default_of(f)!r}): {f.metadata.get('help', '')}"
        for f in dataclasses.fields(cls)
    )


def type_text(hint) -> str:
    """A type as a parameters cell writes it (papermill reads ``Optional[...]``, not ``X | None``).

    >>> type_text(Optional[float]), type_text(list[str]), type_text("Optional[str]")
    ('Optional[float]', 'list[str]', 'Optional[str]')
    """
    if isinstance(hint, str):
        return hint
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if type(None) in args and len(args) == 2:
            return f"Optional[{type_text(next(a for a in args if a is not type(None)))}]"
        return f"Union[{', '.join(type_text(a) for a in args)}]"
    if args:
        return f"{typing.get_origin(hint).__name__}[{', '.join(type_text(a) for a in args)}]"
    return getattr(hint, "__name__", str(hint))


def parameters_cell(cls) -> str:
    """The source of a notebook's ``parameters`` cell: one typed, commented line per field of ``cls``."""
    lines = [
        f"{f.name}: {type_text(f.type)} = {default_of(f)!r}  # {f.metadata.get('help', '')}".rstrip()
        for f in dataclasses.fields(cls)
    ]
    return "\n".join(["# fmt: off", *lines, "# fmt: on"])


def same_as(cls, name: str, derived: bool | None = None):
    """A field declared like ``cls``'s field ``name`` (default, help, allowed values): a parameter that two
    notebooks share is declared once. ``derived`` overrides whether the study runner sets it."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    metadata = dict(f.metadata)
    if derived is not None:
        metadata.pop("derived", None)
        metadata.update({"derived": True} if derived else {})
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory, metadata=metadata)
    return field(default=f.default, metadata=metadata)


def study_keys(cls) -> list[str]:
    """The fields of a parameters dataclass that a study file may give (those the runner does not derive)."""
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("derived")]


def _unset(f: dataclasses.Field) -> str:
    return f"{f.metadata.get('help', '')}; None: the preset's value"


def optional_fields(cls, exclude=()) -> list[tuple]:
    """``make_dataclass`` fields mirroring ``cls``'s as ``Optional[...] = None`` (None: not given), same help."""
    hints = typing.get_type_hints(cls)
    return [
        (f.name, Optional[hints[f.name]], field(default=None, metadata={**f.metadata, "help": _unset(f)}))
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    ]
