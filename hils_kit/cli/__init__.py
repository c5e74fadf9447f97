"""The ``hils`` command line. Each module in this package adds one command group with ``register``.

hils data list | show NAME | validate FILE
hils --help

May import: every layer (the top of the package).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from hils_kit import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hils", description="HILS Kit: human-inspired learning strategies for LLM fine-tuning."
    )
    parser.add_argument("--version", action="version", version=f"hils-kit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hils_kit.study.papermill_run import without_iri_check

    without_iri_check()  # 2 s less wherever papermill is imported (hils study, hils analyse)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    from hils_kit.data.assets import MissingAssetError
    from hils_kit.data.questions import QuestionFileError

    try:
        return int(args.func(args) or 0)
    except (QuestionFileError, MissingAssetError, ValueError, KeyError, OSError) as err:
        print(f"hils: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
