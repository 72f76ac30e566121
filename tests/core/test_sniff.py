"""Content routing: magic bytes decide the kind; names only select schemas for magic-less formats."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib

import pytest

from mlgate.analyzers.core.kinds import Kind, sniff


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hi")
    return buf.getvalue()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("a.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()


def _v7_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        info = tarfile.TarInfo("a.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    data = bytearray(buf.getvalue())
    data[257:265] = b"\x00" * 8  # drop the ustar magic and version: an old v7 header
    checksum = sum(data[:148]) + 8 * 32 + sum(data[156:512])
    data[148:156] = f"{checksum:06o}\x00 ".encode()
    return bytes(data)


def _safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\x00" * 4


@pytest.mark.parametrize(
    ("data", "name", "kind"),
    [
        (_zip(), "model.pt", Kind.ZIP),
        (_tar(), "model.nemo", Kind.TAR),
        (_v7_tar(), "old.tar", Kind.TAR),
        (gzip.compress(b"x" * 100), "a.gz", Kind.GZIP),
        (bz2.compress(b"x" * 100), "a", Kind.BZIP2),
        (lzma.compress(b"x" * 100), "a", Kind.XZ),
        (lzma.compress(b"x" * 100, format=lzma.FORMAT_ALONE), "a", Kind.LZMA),
        (zlib.compress(b"x" * 100), "a.joblib", Kind.ZLIB),
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 10, "a", Kind.ZSTD),
        (b"\x04\x22\x4d\x18" + b"\x00" * 10, "a", Kind.LZ4),
        (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 26, "a", Kind.SEVENZIP),
        (pickle.dumps({"a": 1}, protocol=2), "weights.bin", Kind.PICKLE),
        (pickle.dumps({"a": 1}, protocol=5), "x", Kind.PICKLE),
        (pickle.dumps([1, "two"], protocol=0), "x", Kind.PICKLE),
        (pickle.dumps([1, "two"], protocol=1), "x", Kind.PICKLE),
        (b"\x93NUMPY\x01\x00" + b"\x00" * 10, "a.npy", Kind.NUMPY),
        (b"GGUF\x03\x00\x00\x00", "m.gguf", Kind.GGUF),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "m.h5", Kind.HDF5),
        (b"\x00" * 512 + b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "m.h5", Kind.HDF5),
        (_safetensors(), "model.safetensors", Kind.SAFETENSORS),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 50, "lib.so", Kind.EXECUTABLE),
        (b"#!/bin/sh\necho hi\n", "run", Kind.EXECUTABLE),
        (b"\x08\x07\x12\x04test", "model.onnx", Kind.ONNX),
        (b"\x08\x01\x12\x10", "saved_model.pb", Kind.SAVEDMODEL),
        (b"\n\x0bkeras", "keras_metadata.pb", Kind.KERAS_METADATA),
        (b'{"architectures": ["Bert"]}', "config.json", Kind.JSON),
        (b'{"architectures": ["Bert"]}', "no_extension", Kind.JSON),
        (b"flavors:\n  python_function: {}\n", "MLmodel", Kind.YAML),
        (b"import os\n", "modeling.py", Kind.PYTHON),
        (b"It was a day.\n", "notes", Kind.TEXT),
        (b"numpy==2.0\nscikit-learn\n", "requirements.txt", Kind.TEXT),
        (bytes(range(256)) * 4, "data/0", Kind.UNKNOWN),
    ],
)
def test_sniff(data, name, kind):
    assert sniff(data[:4096], name) is kind


def test_route_by_content_not_extension():
    assert sniff(pickle.dumps({"a": 1}, protocol=4), "model.safetensors") is Kind.PICKLE
    assert sniff(_zip(), "weights.pkl") is Kind.ZIP


def test_pickle_with_a_zip_appended_is_a_polyglot_and_both_views_are_scanned(tmp_path):
    from mlgate.analyzers.core.walker import scan_path

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../escape.txt", "x")
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([1, 2], protocol=2) + buf.getvalue())
    rules = {f.rule for f in scan_path(path).findings}
    assert "MLG-CORE-010" in rules
    assert "MLG-ARC-001" in rules  # the member name in the zip view was checked


def test_plain_pickle_is_not_a_polyglot(tmp_path):
    from mlgate.analyzers.core.walker import scan_path

    path = tmp_path / "model.pkl"
    # End-record signature bytes inside the data, but no central directory where it points.
    eocd = b"PK\x05\x06" + b"\x00" * 4 + b"\x01\x00\x01\x00" + b"\x10\x00\x00\x00" + b"\x00" * 6
    path.write_bytes(pickle.dumps([1, bytes(range(200)) + eocd], protocol=2))
    assert "MLG-CORE-010" not in {f.rule for f in scan_path(path).findings}


def test_tensor_bytes_that_start_like_a_proto_opcode_are_not_a_pickle():
    """TF variables.data files are raw floats; 1 in ~16k starts with \\x80\\x02..\\x05 by chance."""
    blob = b"\x80\x03" + bytes([0xFF, 0xFE, 0x13, 0x00, 0xC7]) * 800
    assert sniff(blob[:4096], "variables/variables.data-00000-of-00001") is Kind.UNKNOWN


def test_joblib_style_pickle_with_inline_array_bytes_is_a_pickle():
    """joblib writes raw array bytes inside the pickle stream, after a few dozen opcodes."""
    head = pickle.dumps({"wrapper": "NumpyArrayWrapper", "shape": (1000,)}, protocol=4)[:-1]
    blob = head + bytes([0xFF, 0xFE, 0x13, 0x00]) * 1000
    assert sniff(blob[:4096], "model.joblib") is Kind.PICKLE


# --- JSON is decided by the name or by parsing, never by a first "[" or "{" (issue 16) -------------------
WORDPIECE = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(2000)]) + "\n"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (WORDPIECE[:200], "vocab.txt"),  # a tiny vocabulary: the whole file is in the window
        (WORDPIECE, "vocab.txt"),  # a real-sized one: longer than the window
        (WORDPIECE, "blobs/3f2a9c"),  # the same bytes in a hub cache, where blobs have no name
        ("[INFO] 2024-05-01 training started\n[INFO] step 1 loss 0.7\n", "train.log"),
        ("[1, 2] [3, 4]\n", "pairs"),
        ('{"a": 1}\n{"a": 2}\n', "rows.jsonl"),  # JSON Lines: one value per line, not one JSON document
        ("{% for m in messages %}{{ m.content }}{% endfor %}", "template"),
        ("{{ bos_token }}" + "x" * 5000, "prompt"),
    ],
)
def test_text_opening_with_a_bracket_is_text(text, name):
    assert sniff(text.encode()[:4096], name) is Kind.TEXT


@pytest.mark.parametrize(
    "cut",
    [
        '"tok_unterminated',  # inside a string
        '"tok": 12',  # inside a number... ("12" may go on)
        '"tok": 1.5e',  # ...or its exponent
        '"tok": tr',  # inside a literal
        '"tok": ',  # between a key and its value
        '"tok"',  # between a key and its colon
        '"tok": "\\u00',  # inside a \\u escape
    ],
)
def test_long_json_cut_by_the_window_is_json(cut):
    prefix = (
        '{"model": {"type": "WordPiece", "vocab": {' + ", ".join(f'"tok{i}": {i}' for i in range(50)) + ", "
    ).encode()
    head = _pad_to_window(prefix, cut)
    assert len(head) == 4096 and head.endswith(cut.encode())
    assert sniff(head, "tokenizer") is Kind.JSON


def _pad_to_window(prefix: bytes, cut: str) -> bytes:
    """``prefix`` grown with more entries so that ``prefix + cut`` is exactly one window long."""
    filler = b""
    i = 10_000
    while len(prefix) + len(filler) + len(cut.encode()) < 4096:
        filler += f'"pad{i}": {i}, '.encode()
        i += 1
    data = prefix + filler
    # Drop whole entries until the window ends exactly after ``cut``, padding with blanks between tokens.
    while len(data) + len(cut.encode()) > 4096:
        data = data[: data.rstrip(b", ").rindex(b", ") + 2]
    data += b" " * (4096 - len(data) - len(cut.encode()))
    return data + cut.encode()


def test_short_text_that_is_only_a_json_prefix_is_not_json():
    """A file that ends inside the window must parse whole: a cut-off prefix is not an excuse."""
    assert sniff(b'{"vocab": {"a": 1, "b', "notes") is Kind.TEXT
    assert sniff(b"[1, 2", "notes") is Kind.TEXT


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b'["[PAD]", "[UNK]"]', "special_tokens"),  # a JSON list without a JSON name: it parses
        ('\ufeff{"a": 1}'.encode(), "with_bom"),  # a byte-order mark before the document
        (b"[PAD]\n[UNK]\n", "vocab.json"),  # the name says JSON: malformed JSON, analyzed as such
    ],
)
def test_json_by_name_or_by_parsing(data, name):
    assert sniff(data, name) is Kind.JSON


def test_bert_style_folder_with_a_wordpiece_vocabulary_scans_complete(tmp_path):
    """The issue-16 report: ``vocab.txt`` starting with ``[PAD]`` made every BERT-family scan incomplete."""
    from mlgate.analyzers.core.walker import scan_path

    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"], "model_type": "bert"}')
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "BertTokenizer"}')
    (tmp_path / "vocab.txt").write_text(WORDPIECE)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "vocab.txt").write_text(WORDPIECE[:300])
    result = scan_path(tmp_path)
    assert result.complete, [f.message for f in result.findings]
    assert not [f for f in result.findings if f.severity.value in ("medium", "high", "critical")]


def test_torch_checkpoint_named_tar_is_a_low_mismatch(tmp_path):
    """PyTorch's tutorials save ``torch.save`` zips as ``checkpoint.tar``: reported, but low, with the reason."""
    from mlgate.analyzers.core.walker import scan_path

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("checkpoint/data.pkl", pickle.dumps({"epoch": 3}, protocol=2))
        z.writestr("checkpoint/version", "3\n")
    (tmp_path / "checkpoint.tar").write_bytes(buf.getvalue())
    (tmp_path / "weights.safetensors").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    mismatches = {f.location: f for f in scan_path(tmp_path).findings if f.rule == "MLG-CORE-006"}
    assert mismatches["checkpoint.tar"].severity.label == "low"
    assert "PyTorch" in mismatches["checkpoint.tar"].message
    assert mismatches["weights.safetensors"].severity.label == "medium"  # no convention explains this one


@pytest.mark.parametrize(
    ("data", "name", "kind"),
    [
        (b"name: churn\nchannels: [conda-forge]\n", "environment.txt", Kind.TEXT),  # YAML-looking, not named so
        (b"name: churn\nchannels: [conda-forge]\n", "conda.yaml", Kind.YAML),
        (b"import os\nos.system('id')\n", "notes.txt", Kind.TEXT),  # Python-looking text is not imported
        (b"#version: 0.2\nt h\nth e</w>\n", "merges.txt", Kind.TEXT),  # BPE merges open with '#'
    ],
)
def test_other_text_kinds_come_from_the_name(data, name, kind):
    """Only formats loaders pick by name (YAML, Python) are routed by name; look-alikes stay text."""
    assert sniff(data, name) is kind
