"""argparse without ``shutil``: the help formatter reads the terminal's width itself.

argparse builds a ``HelpFormatter`` on every ``add_argument`` (to check the metavar), and the stock
formatter imports ``shutil`` (and with it bz2, lzma and fnmatch) for ``shutil.get_terminal_size``: a
few milliseconds of every ``mlgate`` run, which a small file's scan pays in full (issue 19).
``config.environment.terminal_columns`` is that function's rule for the columns; nothing else changes.
"""

from __future__ import annotations

import argparse

from ..config.environment import terminal_columns


class HelpFormatter(argparse.HelpFormatter):
    """``argparse.HelpFormatter``, its default width taken from ``terminal_columns``."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None, **kw: bool
    ) -> None:
        width = terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width, **kw)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` formatting with ``HelpFormatter`` (subcommand parsers are built
    with the parent's class, so they do too)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
