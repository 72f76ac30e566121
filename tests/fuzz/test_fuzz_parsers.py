"""Mutation fuzzing of every parser, seeded from the committed fixtures (issue 17, item 4).

A mutant is a fixture with bytes flipped, replaced, inserted, deleted, or cut. Property, for
every parser: the scan of a mutant ends within its budget with findings or an incomplete scan --
never an exception (MLG-CORE-004), never a hang -- and a mutated pickle the scanner approves
reaches no dangerous global in a real (recording) unpickler. Short run in CI (profile ``ci``);
``MLGATE_FUZZ=long`` for the long run (README, "Security").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hardening.recording import record
from hypothesis import given
from hypothesis import strategies as st

from mlgate.analyzers.core.artifact import Artifact
from mlgate.analyzers.core.budget import Budgets
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import ScanContext, ScanOptions, scan_artifacts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUDGETS = Budgets(max_seconds=10, max_native_seconds=5, max_bytes=256 << 20)
WALL_LIMIT = 30.0  # generous for a loaded CI machine; a hang is unbounded

# target -> (fixture globs, name the mutant is scanned under)
TARGETS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "pickle": (("pickles/**/*.pkl",), None),
    "torch": (("pickles/**/*.pt", "pickles/**/*.pth"), None),
    "numpy": (("pickles/**/*.npy", "pickles/**/*.npz"), None),
    "joblib": (("pickles/**/*.joblib",), None),
    "archives": (("<built>",), None),
    "keras_zip": (("keras_tf/keras/*.keras",), None),
    "keras_h5": (("keras_tf/keras/*.h5",), None),
    "savedmodel": (("keras_tf/savedmodel/*/saved_model.pb", "backdoors/savedmodel/*/saved_model.pb"), "saved_model.pb"),
    "keras_metadata": (("keras_tf/**/keras_metadata.pb",), "keras_metadata.pb"),
    "onnx": (("keras_tf/onnx/*.onnx", "backdoors/**/*.onnx"), None),
    "tensors": (("**/*.safetensors", "**/*.gguf"), None),
    "configs": (("deps/**/*.json", "deps/**/*.yaml", "deps/**/MLmodel", "**/config.json"), None),
    "python": (("deps/**/*.py",), None),
}
SLOW = {"keras_h5": 4, "keras_zip": 8}  # one child process per HDF5 read: fewer mutants in the short run

DANGEROUS_MODULES = {"os", "posix", "nt", "subprocess", "runpy", "pty", "socket", "shutil", "ctypes", "importlib"}
DANGEROUS_BUILTINS = {"eval", "exec", "compile", "open", "getattr", "__import__", "setattr", "globals", "breakpoint"}


def _archive_seeds(out: Path) -> list[Path]:
    """Small containers holding a pickle, written by the standard libraries (archive fixtures are built by tests)."""
    import bz2
    import gzip
    import io
    import lzma
    import pickle
    import tarfile
    import zipfile

    import lz4.frame
    import py7zr
    import zstandard

    inner = pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=2)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out / "model.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", inner)
        zf.writestr("archive/version", "3\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("model/data.pkl")
        info.size = len(inner)
        tf.addfile(info, io.BytesIO(inner))
    (out / "model.tar").write_bytes(buf.getvalue())
    (out / "model.pkl.gz").write_bytes(gzip.compress(inner))
    (out / "model.pkl.bz2").write_bytes(bz2.compress(inner))
    (out / "model.pkl.xz").write_bytes(lzma.compress(inner))
    (out / "model.pkl.zst").write_bytes(zstandard.ZstdCompressor().compress(inner))
    (out / "model.pkl.lz4").write_bytes(lz4.frame.compress(inner))
    with py7zr.SevenZipFile(out / "model.7z", "w") as sz:
        sz.writestr(inner, "data.pkl")
    return sorted(out.iterdir())


def _seeds(globs: tuple[str, ...]) -> list[Path]:
    if globs == ("<built>",):
        import tempfile

        return _archive_seeds(Path(tempfile.mkdtemp(prefix="mlgate-fuzz-")))
    found = sorted({p for g in globs for p in FIXTURES.glob(g) if p.is_file() and p.stat().st_size < 4 << 20})
    return [p for p in found if "fixtures/hardening" not in p.as_posix()]


@st.composite
def mutants(draw: st.DrawFn, seeds: list[Path]) -> tuple[Path, bytes]:
    seed = draw(st.sampled_from(seeds))
    data = bytearray(seed.read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "flip", "insert", "delete", "cut", "interesting"]))
        if op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "cut":
            del data[max(pos, 1) :]
        else:
            data[pos : pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"]))
    return seed, bytes(data)


def _dangerous(imports: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (m, n)
        for m, n in imports
        if n and m.split(".")[0] in DANGEROUS_MODULES or (m in ("builtins", "__builtin__") and n in DANGEROUS_BUILTINS)
    ]


def _check(seed: Path, data: bytes, name: str | None) -> None:
    artifact_name = name or seed.name
    ctx = ScanContext(artifact_name, ScanOptions(budgets=BUDGETS, compute_digest=False))
    started = time.monotonic()
    scan = scan_artifacts([Artifact.from_bytes(data, artifact_name)], ctx, None)
    elapsed = time.monotonic() - started
    assert elapsed < WALL_LIMIT, f"{seed.name} mutant took {elapsed:.1f} s"
    crashes = [f.message for f in scan.findings if f.rule == "MLG-CORE-004"]
    assert not crashes, f"{seed.name} mutant crashed an analyzer: {crashes}"
    verdict = Policy(budgets=BUDGETS).decide(scan.findings, scan.complete, [])
    if verdict is Verdict.APPROVED and artifact_name.endswith((".pkl", ".pt", ".pth", ".joblib", ".bin")):
        for python in (False, True):
            reached = _dangerous(record(data, python=python).imports)
            assert not reached, f"approved a {seed.name} mutant that reaches {reached}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutants_end_in_findings_or_incomplete_never_a_crash(target: str) -> None:
    globs, name = TARGETS[target]
    seeds = _seeds(globs)
    assert seeds, f"no fixtures for {target}"
    limit = SLOW.get(target)

    @given(mutant=mutants(seeds))
    def run(mutant: tuple[Path, bytes]) -> None:
        _check(mutant[0], mutant[1], name)

    if limit is not None:
        from hypothesis import settings

        run = settings(max_examples=min(limit, settings.default.max_examples))(run)
    run()
