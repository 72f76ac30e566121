"""The ``mlgate`` command line: argument parsing and dispatch to subcommand modules.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``,
which registers its arguments and sets ``func`` (returns the exit status).
Only the module of the subcommand being run is imported (``mlgate scan`` never
loads the controller, MLflow or boto3); the full list is built for help and for
an unknown command's error message. A bare ``mlgate --version`` is answered
before argparse and logging are imported, and a scan of local files loads logging
only with ``-v`` (nothing on its path logs at warning level; ``configure_logging``).
Errors meant for people are raised as ``UsageError`` and printed as one line
with exit status 2; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mlgate.analyzers import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    import argparse

COMMANDS: dict[str, str] = {  # subcommand -> the module that defines it, in help order
    "scan": "mlgate.controller.cli.scan",
    "controller": "mlgate.controller.cli.controller",
    "mlflow": "mlgate.controller.cli.mlflow",
    "check": "mlgate.controller.cli.check",
    "admission-server": "mlgate.controller.cli.admission",
    "report": "mlgate.controller.cli.report",
    "exception": "mlgate.controller.cli.exception",
}

EXIT_OK = 0
EXIT_QUARANTINED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem the user can fix (bad path, bad policy, unreachable registry): one line, exit 2."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` given, only the subcommand it names is loaded (all of them otherwise)."""
    import importlib

    from .parser import ArgumentParser  # argparse, without shutil

    parser = ArgumentParser(
        prog="mlgate",
        description="Statically scan ML models and gate their promotion. Never executes model content.",
    )
    parser.add_argument("--version", action="version", version=f"mlgate {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _needed_commands(argv):
        importlib.import_module(COMMANDS[name]).add_parser(subparsers)
    return parser


def _needed_commands(argv: Sequence[str] | None) -> list[str]:
    """The subcommand ``argv`` runs, none for a bare ``--version``, else all (help, errors)."""
    if argv is None:
        return list(COMMANDS)
    words = [a for a in argv if not a.startswith("-")]
    if words and words[0] in COMMANDS:
        return [words[0]]
    if not words and "--version" in argv and not {"-h", "--help"} & set(argv):
        return []
    return list(COMMANDS)


def configure_logging(verbose: int) -> None:
    """Log to stderr: warnings, and info and debug with ``-v`` and ``-vv``. Subcommands that set
    ``logging_when_needed`` call it themselves when their work logs (a scan of a remote target)."""
    import logging

    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        print(f"mlgate {__version__}")
        return EXIT_OK
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.verbose or not getattr(args, "logging_when_needed", False):
        configure_logging(args.verbose)
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
        import logging

        logging.getLogger("mlgate").debug("internal error", exc_info=True)
        print(f"mlgate: internal error: {type(exc).__name__}: {exc} (run with -vv for details)", file=sys.stderr)
        return EXIT_USAGE
