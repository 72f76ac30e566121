"""Names read from marshalled code objects of every CPython 3.6-3.13 layout, without marshal.loads."""

from __future__ import annotations

import marshal

import pytest

from mlgate.analyzers.core.walker import Malformed
from mlgate.analyzers.embedded_code.marshal_names import code_names, dangerous_code_names, parse_code

from .helpers import FIXTURES

SAMPLES = sorted((FIXTURES / "marshal").glob("py3*.bin"))


def test_samples_cover_several_layouts():
    names = {p.stem for p in SAMPLES}
    assert {"py37", "py38", "py310", "py311", "py312"} <= names  # 3.0-3.7, 3.8-3.10 and 3.11+ layouts


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_names_from_every_layout(path):
    info = parse_code(path.read_bytes())
    assert set(info.names) == {"os", "f", "eval", "system"}
    assert "touch /tmp/mlgate-canary/marshal" in info.strings
    assert dangerous_code_names(info.names) in (["system", "eval"], ["eval", "system"])


def test_lambda_without_globals():
    assert code_names(marshal.dumps(compile("lambda x: x * 2", "k", "eval"))) == []


@pytest.mark.parametrize("version", range(5))
def test_every_marshal_version(version: int):
    data = marshal.dumps(compile("import socket\nsocket.create_connection(('h', 1))", "n", "exec"), version)
    assert dangerous_code_names(code_names(data)) == ["socket", "create_connection"]


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\xe3" + b"\x00" * 10, marshal.dumps(compile("x = 1", "t", "exec"))[:40], marshal.dumps(42)],
)
def test_garbage_raises_malformed(data: bytes):
    with pytest.raises(Malformed):
        code_names(data)


def test_benign_names_are_not_dangerous():
    assert dangerous_code_names(["os", "path", "join", "numpy", "mean"]) == []
