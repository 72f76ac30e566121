"""The ``mlgate`` command line: argument parsing and dispatch to subcommand modules.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``,
which registers its arguments and sets ``func`` (returns the exit status).
Errors meant for people are raised as ``UsageError`` and printed as one line
with exit status 2; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from mlgate.analyzers.core.report import version

COMMAND_MODULES: tuple[str, ...] = (
    "mlgate.controller.cli.scan",
    "mlgate.controller.cli.controller",
    "mlgate.controller.cli.mlflow",
    "mlgate.controller.cli.check",
    "mlgate.controller.cli.admission",
)

EXIT_OK = 0
EXIT_QUARANTINED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem the user can fix (bad path, bad policy, unreachable registry): one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlgate",
        description="Statically scan ML models and gate their promotion. Never executes model content.",
    )
    parser.add_argument("--version", action="version", version=f"mlgate {version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"mlgate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mlgate: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        logging.getLogger("mlgate").debug("internal error", exc_info=True)
        print(f"mlgate: internal error: {type(exc).__name__}: {exc} (run with -vv for details)", file=sys.stderr)
        return EXIT_USAGE
