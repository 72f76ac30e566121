"""``controller/cli/parser.py``: argparse without shutil formats help exactly as stock argparse does."""

from __future__ import annotations

import argparse
import shutil

import pytest

from mlgate.controller.cli import parser as cli_parser
from mlgate.controller.cli.main import build_parser
from mlgate.controller.config.environment import terminal_columns


@pytest.mark.parametrize("columns", [None, "100", "37", "0", "-5", "wide"])
def test_terminal_columns_follow_shutil(monkeypatch: pytest.MonkeyPatch, columns: str | None) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns


@pytest.mark.parametrize("columns", ["100", "60"])
def test_help_is_what_stock_argparse_prints(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    ours = build_parser(["scan", "x"])
    with monkeypatch.context() as m:
        m.setattr(cli_parser, "ArgumentParser", argparse.ArgumentParser)  # the stock parser and formatter
        stock = build_parser(["scan", "x"])
    assert type(ours) is cli_parser.ArgumentParser and type(stock) is argparse.ArgumentParser
    assert ours.format_help() == stock.format_help()
    scan_ours = ours._subparsers._group_actions[0].choices["scan"]  # type: ignore[union-attr]
    scan_stock = stock._subparsers._group_actions[0].choices["scan"]  # type: ignore[union-attr]
    assert scan_ours.formatter_class is cli_parser.HelpFormatter
    assert scan_ours.format_help() == scan_stock.format_help()
    assert scan_ours.format_usage() == scan_stock.format_usage()
