"""File symlinks that leave the model directory are high (issue 13 item 6); the HF cache layout is clean.

Registry uploads (``mlflow.log_artifacts``, ``huggingface-cli upload``), ``cp -L`` and archivers follow
file symlinks, so a link to ``/etc/passwd`` or ``~/.aws/credentials`` ships that file with the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.report import build_report
from mlgate.analyzers.core.walker import ScanOptions, TargetScan, scan_path


def _scan(path: Path) -> TargetScan:
    return scan_path(path, ScanOptions(compute_digest=False))


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    return model


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
def test_link_to_etc_passwd_is_high(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "vocab.txt").symlink_to("/etc/passwd")
    result = _scan(model)
    hits = [f for f in result.findings if f.rule == "MLG-CORE-008"]
    assert [(f.location, f.severity.label) for f in hits] == [("vocab.txt", "high")]
    assert "/etc/passwd" in hits[0].message
    assert build_report(result, Policy()).verdict is Verdict.QUARANTINED


def test_link_to_a_credentials_file_outside_is_high(tmp_path: Path) -> None:
    home = tmp_path / "home" / ".aws"
    home.mkdir(parents=True)
    (home / "credentials").write_text("[default]\naws_access_key_id = AKIAEXAMPLE\n")
    model = _model(tmp_path)
    (model / "tokenizer.json").symlink_to(home / "credentials")
    result = _scan(model)
    assert [f.severity.label for f in result.findings if f.rule == "MLG-CORE-008"] == ["high"]
    assert build_report(result, Policy()).verdict is Verdict.QUARANTINED


def test_link_inside_the_model_is_fine(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "alias.json").symlink_to("config.json")
    result = _scan(model)
    assert result.findings == [] and build_report(result, Policy()).verdict is Verdict.APPROVED


def _hf_repo(tmp_path: Path) -> Path:
    """``models--acme--bert/{blobs/<hash>, snapshots/<rev>/config.json -> ../../blobs/<hash>}``."""
    repo = tmp_path / "hub" / "models--acme--bert"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "0f3a9c").write_text('{"model_type": "bert"}')
    snap = repo / "snapshots" / "0123456789abcdef"
    snap.mkdir(parents=True)
    (snap / "config.json").symlink_to(os.path.join("..", "..", "blobs", "0f3a9c"))
    return repo


def test_hugging_face_cache_layout_stays_clean(tmp_path: Path) -> None:
    repo = _hf_repo(tmp_path)
    for target in (repo / "snapshots" / "0123456789abcdef", repo):
        result = _scan(target)
        assert [f for f in result.findings if f.rule == "MLG-CORE-008"] == []
        assert build_report(result, Policy()).verdict is Verdict.APPROVED


def test_snapshot_link_into_another_blobs_folder_is_high(tmp_path: Path) -> None:
    repo = _hf_repo(tmp_path)
    other = tmp_path / "elsewhere" / "blobs"
    other.mkdir(parents=True)
    (other / "secret").write_text("token=abc\n")
    snap = repo / "snapshots" / "0123456789abcdef"
    (snap / "tokenizer.json").symlink_to(other / "secret")
    result = _scan(snap)
    hits = [f for f in result.findings if f.rule == "MLG-CORE-008"]
    assert [(f.location, f.severity.label) for f in hits] == [("tokenizer.json", "high")]


def test_snapshot_link_into_another_repos_blobs_is_high(tmp_path: Path) -> None:
    repo = _hf_repo(tmp_path)
    neighbour = tmp_path / "hub" / "models--evil--x" / "blobs"
    neighbour.mkdir(parents=True)
    (neighbour / "abc").write_text("{}")
    snap = repo / "snapshots" / "0123456789abcdef"
    (snap / "extra.json").symlink_to(os.path.join("..", "..", "..", "models--evil--x", "blobs", "abc"))
    result = _scan(snap)
    assert [f.severity.label for f in result.findings if f.rule == "MLG-CORE-008"] == ["high"]
