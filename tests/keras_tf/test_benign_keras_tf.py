"""The Keras / TensorFlow part of the realistic benign suite (issue 16): every model is approved.

The folders under ``tests/fixtures/benign/keras_tf`` were saved by Keras 3 and TensorFlow exactly as
a user would register them (``build.py`` next to them); the zero-weight ResNet50 files are committed
xz-compressed and unpacked by the ``xz_fixture`` fixture first. Each folder must scan completely
with no finding at medium or above.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.walker import scan_path

SUITE = Path(__file__).resolve().parent.parent / "fixtures" / "benign" / "keras_tf"
FOLDERS = {
    "mobilenetv2_keras", "mobilenetv2_h5", "resnet50_keras", "resnet50_h5", "text_vectorization_keras",
    "registered_layer_keras", "export_savedmodel", "vocab_table_savedmodel", "tf_keras_savedmodel",
}  # fmt: skip


def test_the_suite_has_every_model_folder() -> None:
    assert {p.name for p in SUITE.iterdir() if p.is_dir() and not p.name.startswith("__")} == FOLDERS


def _folder(name: str, unpack: Callable[[Path], Path]) -> Path:
    """The model folder, with any ``.xz`` member unpacked (then the folder holds only unpacked files)."""
    folder = SUITE / name
    packed = sorted(folder.glob("*.xz"))
    if not packed:
        return folder
    unpacked = [unpack(p) for p in packed]
    assert len({p.parent for p in unpacked}) == 1 and len(list(folder.iterdir())) == len(packed)
    return unpacked[0].parent


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_benign_keras_tf_model_is_approved(name: str, xz_fixture: Callable[[Path], Path]) -> None:
    result = scan_path(_folder(name, xz_fixture), label=name)
    serious = [
        (f.rule, f.severity.label, f.location, f.message) for f in result.findings if f.severity >= Severity.MEDIUM
    ]
    assert result.complete and not serious, serious
