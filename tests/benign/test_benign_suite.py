"""The benign suite: every real-world clean model is approved with no finding at medium or above.

The models under ``tests/fixtures/benign/`` were written by the real libraries (see the builders in this
folder); a gate that quarantines any of them is a gate people switch off. Each model is scanned once per
session through ``mlgate scan --format json``; each test then checks one model.
"""

from __future__ import annotations

import tarfile
import zipfile

import pytest

from mlgate.analyzers.core.kinds import SNIFF_BYTES, Kind, sniff

from .suite import GROUPS, SERIOUS, SUITE, Outcome, model_folders, name_of, scan

MODELS = model_folders()


@pytest.fixture(scope="session")
def outcomes() -> dict[str, Outcome]:
    return {outcome.name: outcome for outcome in scan(MODELS)}


def describe(outcome: Outcome) -> str:
    lines = [f"{outcome.name}: {outcome.report['verdict']}, scan_complete={outcome.report['scan_complete']}"]
    for finding in outcome.report["findings"]:
        if finding["severity"] in SERIOUS:
            lines.append(f"  {finding['severity']} {finding['rule']} {finding['location']}: {finding['message']}")
    for dep in outcome.report.get("dependencies", []):
        if dep.get("verdict") != "approved":
            lines.append(f"  dependency {dep.get('ref')}: {dep.get('verdict')} {dep.get('reason', '')}")
    return "\n".join(lines)


def test_suite_is_large_enough() -> None:
    assert len(MODELS) >= 60, f"the benign suite has {len(MODELS)} models; it needs at least 60"


@pytest.mark.parametrize("model", MODELS, ids=name_of)
def test_benign_model_is_approved_without_serious_findings(model, outcomes) -> None:
    outcome = outcomes[name_of(model)]
    assert not outcome.false_positive, describe(outcome)


# Kinds no library of the field writes models as: zstd streams and 7z archives. Keras HDF5 files and
# Keras-2 SavedModel metadata come from the keras_tf group when it is present.
# joblib's "ZF" format is its pre-0.10 compression: current joblib still reads it but never writes it.
NOT_WRITTEN_BY_MODEL_LIBRARIES = {Kind.ZSTD, Kind.SEVENZIP, Kind.JOBLIB_ZF, Kind.EXECUTABLE, Kind.UNKNOWN}
FROM_KERAS_GROUP = {Kind.HDF5, Kind.KERAS_METADATA}


def test_suite_covers_every_format_mlgate_analyses() -> None:
    """Every kind an analyzer reads appears in the suite (top-level files, and members of its archives)."""
    seen: set[Kind] = set()
    for model in MODELS:
        files = [model] if model.is_file() else [p for p in model.rglob("*") if p.is_file()]
        for path in files:
            with open(path, "rb") as fh:
                seen.add(sniff(fh.read(SNIFF_BYTES), path.name))
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    for info in archive.infolist()[:50]:
                        seen.add(sniff(archive.read(info)[:SNIFF_BYTES], info.filename))
            elif path.name.endswith((".tar.gz", ".tgz", ".tar")) and tarfile.is_tarfile(path):
                seen.add(Kind.TAR)
    expected = set(Kind) - NOT_WRITTEN_BY_MODEL_LIBRARIES
    if not any((SUITE / group).is_dir() for group in GROUPS):
        expected -= FROM_KERAS_GROUP
    assert expected <= seen, f"kinds no benign model exercises: {sorted(k.value for k in expected - seen)}"
