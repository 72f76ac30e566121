"""Member names shells expand are high in every container kind (issue 13 item 5), with benign twins.

Containers are built with the real libraries (zipfile, tarfile, py7zr, numpy for ``.npz`` members);
each carries one member whose name a shell expands (``~``, ``$VAR``, ``${VAR}``, ``$(...)``, ``%VAR%``).
Python's extractors keep such names literal, but ``tar -xf``/``unzip`` driven from scripts and
``eval``-style tooling expand them, so the seeds classify them with ``..`` as traversal.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile

import numpy as np
import py7zr
import pytest

from archives.builders import TarMember, benign_nemo_members, findings_of, scan, tar_bytes, write
from archives.test_7z import rename
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.report import build_report

EXPANDING = ["~/.bashrc", "$HOME/.profile", "${HOME}/x.txt", "$(id)/x.txt", "%APPDATA%/x.txt", "./~/cfg"]
ORDINARY = ["tokenizer/vocab.txt", "model-00001-of-00002.safetensors", "ckpt/model~backup.bin", "100%/done.txt"]


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype="<f4"))
    return buf.getvalue()


def _container(kind: str, name: str) -> tuple[str, bytes]:
    """(file name, bytes) of a ``kind`` container holding a member called ``name``."""
    body = b"data\n"
    if kind == "zip":
        return "model.zip", _zip([("config.json", b"{}"), (name, body)])
    if kind == "tar":
        return "model.tar", tar_bytes([TarMember("config.json", b"{}"), TarMember(name, body)])
    if kind == "nemo":
        members = [*benign_nemo_members(pickle.dumps({"w": 1}, protocol=2)), TarMember(name, body)]
        return "model.nemo", gzip.compress(tar_bytes(members), mtime=0)
    if kind == "torch":
        data = pickle.dumps({"w": 1}, protocol=2)
        return "model.pt", _zip([("archive/data.pkl", data), ("archive/version", b"3\n"), (name, body)])
    if kind == "keras":
        return "model.keras", _zip(
            [("metadata.json", b'{"keras_version": "3.15.1"}'), ("config.json", b"{}"), (name, body)]
        )
    if kind == "npz":
        return "arrays.npz", _zip([("a.npy", _npy()), (name, _npy())])
    if kind == "7z":
        buf = io.BytesIO()
        placeholder = "p" * len(name)
        with py7zr.SevenZipFile(buf, "w") as z:
            z.set_encoded_header_mode(False)
            z.writestr(b"{}", "config.json")
            z.writestr(body, placeholder)
        return "model.7z", rename(buf.getvalue(), placeholder, name)
    if kind == "nested":
        inner = _zip([("config.json", b"{}"), (name, body)])
        return "outer.zip", _zip([("inner/model.zip", inner)])
    raise AssertionError(kind)


KINDS = ["zip", "tar", "nemo", "torch", "keras", "npz", "7z", "nested"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("member", EXPANDING)
def test_expanding_member_names_are_high_in_every_container(tmp_path, kind: str, member: str) -> None:
    filename, data = _container(kind, member)
    result = scan(write(tmp_path / filename, data))
    hits = findings_of(result, "MLG-ARC-015")
    assert len(hits) == 1 and hits[0].severity.label == "high", [(f.rule, f.location) for f in result.findings]
    assert build_report(result, Policy()).verdict is Verdict.QUARANTINED


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("member", ORDINARY)
def test_ordinary_member_names_stay_clean(tmp_path, kind: str, member: str) -> None:
    filename, data = _container(kind, member)
    result = scan(write(tmp_path / filename, data))
    assert findings_of(result, "MLG-ARC-015") == [] and findings_of(result, "MLG-ARC-014") == []
    assert [f for f in result.findings if f.severity.label in ("high", "critical")] == []
