"""The ``mlgate`` command line: ``main`` parses and dispatches, one module per subcommand."""

from .main import main

__all__ = ["main"]
