"""Chat templates (Jinja lint, parse only) and GGUF metadata (bounded parse).

The malicious templates would run ``touch /tmp/mlgate-canary/...`` if any
runtime rendered them unsandboxed; the session canary proves the lint never
renders. Crafted GGUF files carry the lengths and counts that overflowed ggml's
parser; mlgate must bound every one by the bytes left in the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.embedded_code.templates import lint_template
from mlgate.controller.scanning import scan_target

GGUF_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "deps" / "gguf"

# The published "Llama Drama" style payload (CVE-2024-34359), as published.
SSTI = (
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('touch /tmp/mlgate-canary/tpl-ssti') }}"
    "{% endif %}{% endfor %}"
)
BENIGN = (
    "{%- set ns = namespace(found=false) -%}{% for m in messages %}{% if loop.index0 > 8 %}{% break %}{% endif %}"
    "{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('bad role') }}{% endif %}"
    "{% generation %}{{ m['content'] | trim }}{% endgeneration %}{{ m.content.strip().split('\\n') }}{% endfor %}"
    "{{ strftime_now('%Y-%m-%d') }}{{ tools | tojson }}{{ '<__media__>' if images }}"
)


def test_ssti_payload_names_every_gadget():
    by_rule = {f.rule: f for f in lint_template(SSTI, "t.jinja")}
    assert set(by_rule) == {"MLG-TPL-001", "MLG-TPL-002"}
    escape = by_rule["MLG-TPL-001"]
    assert escape.severity.label == "critical"
    names = escape.message.split(": ", 1)[1].split(" (e.g.")[0].split(", ")
    assert names == ["__base__", "__builtins__", "__class__", "__import__", "__name__", "__subclasses__", "_module"]
    assert "popen" in by_rule["MLG-TPL-002"].message


def test_benign_template_features_pass():
    assert lint_template(BENIGN, "t") == []


@pytest.mark.parametrize(
    ("template", "rule"),
    [
        ("{{ messages|attr('__class__') }}", "MLG-TPL-001"),
        ("{{ messages|attr('_' ~ '_class_' ~ '_') }}", "MLG-TPL-003"),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", "MLG-TPL-001"),
        ("{{ '{0.__class__}'.format(messages) }}", "MLG-TPL-001"),
        ("{% set k = '__globals__' %}{{ lipsum[k] }}", "MLG-TPL-001"),
        ("{% include 'other.jinja' %}", "MLG-TPL-004"),
        ("{% for %}", "MLG-TPL-005"),
    ],
)
def test_template_gadgets(template, rule):
    assert rule in {f.rule for f in lint_template(template, "t")}


def test_unparseable_template_is_incomplete():
    (finding,) = lint_template("{% if %}", "cfg.json#chat_template")
    assert finding.incomplete and finding.location == "cfg.json#chat_template:1"


def test_template_list_in_tokenizer_config_and_jinja_files(tmp_path):
    import json

    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": [{"name": "default", "template": BENIGN}, {"name": "tool_use", "template": SSTI}]})
    )
    (tmp_path / "chat_template.jinja").write_text(SSTI)
    scan = scan_path(tmp_path)
    assert {(f.rule, f.location) for f in scan.findings} == {
        ("MLG-TPL-001", "tokenizer_config.json#chat_template[tool_use]:1"),
        ("MLG-TPL-002", "tokenizer_config.json#chat_template[tool_use]:1"),
        ("MLG-TPL-001", "chat_template.jinja:1"),
        ("MLG-TPL-002", "chat_template.jinja:1"),
    }


# --- GGUF -----------------------------------------------------------------------------------


def test_gguf_fixtures():
    plain = scan_target(GGUF_DIR / "plain.gguf", Policy())
    assert plain.findings == [] and plain.verdict is Verdict.APPROVED
    bad = scan_target(GGUF_DIR / "template-escape.gguf", Policy())
    assert bad.verdict is Verdict.QUARANTINED
    assert {f.rule for f in bad.findings} == {"MLG-TPL-001", "MLG-TPL-002"}
    assert all(
        f.location.startswith("template-escape.gguf@") and "#tokenizer.chat_template:" in f.location
        for f in bad.findings
    )


def _s(text: str | bytes, n: int | None = None) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data) if n is None else n) + data


def gguf_bytes(
    kvs: list[bytes],
    tensors: list[tuple[str, list[int], int, int]],
    data: bytes = b"",
    kv_count: int | None = None,
    tensor_count: int | None = None,
) -> bytes:
    """A GGUF v3 file: header, the given raw KV entries, tensor infos, alignment padding, data."""
    out = b"GGUF" + struct.pack(
        "<IQQ", 3, len(tensors) if tensor_count is None else tensor_count, len(kvs) if kv_count is None else kv_count
    )
    out += b"".join(kvs)
    for name, dims, ggml_type, offset in tensors:
        out += _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
    out += b"\x00" * (-len(out) % 32)
    return out + data


def kv_string(key: str, value: str) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def scan_bytes(tmp_path: Path, data: bytes):
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    return scan_path(path)


def test_crafted_gguf_clean(tmp_path):
    data = gguf_bytes(
        [kv_string("general.architecture", "llama"), kv_u32("general.alignment", 32)],
        [("a", [8, 2], 0, 0), ("b", [8], 0, 64)],
        data=b"\x00" * 96,
    )
    scan = scan_bytes(tmp_path, data)
    assert scan.findings == [] and scan.complete


@pytest.mark.parametrize(
    ("kvs", "tensors", "extra", "rule"),
    [
        ([kv_string("a", "x"), kv_string("a", "y")], [], {}, "MLG-GGUF-003"),
        ([], [("t", [1, 1, 1, 1, 1], 0, 0)], {}, "MLG-GGUF-001"),
        ([], [("t", [8], 0, 4096)], {}, "MLG-GGUF-001"),  # past the end of the file
        ([], [("t", [8], 0, 0), ("u", [8], 0, 0)], {}, "MLG-GGUF-001"),  # overlapping
        ([], [("t", [8], 0, 3)], {}, "MLG-GGUF-001"),  # misaligned
        ([], [("t", [1 << 62, 1 << 62], 0, 0)], {}, "MLG-GGUF-001"),  # element count overflow
        ([], [("t", [31], 2, 0)], {}, "MLG-GGUF-001"),  # Q4_0 row not a multiple of its 32-element block
        ([kv_u32("general.alignment", 24)], [], {}, "MLG-GGUF-001"),
        ([], [], {"kv_count": 1 << 20}, "MLG-GGUF-002"),
        ([], [("t", [8], 77, 0)], {}, "MLG-GGUF-002"),  # unknown ggml type: sizes unchecked, incomplete
    ],
)
def test_crafted_gguf_findings(tmp_path, kvs, tensors, extra, rule):
    scan = scan_bytes(tmp_path, gguf_bytes(kvs, tensors, data=b"\x00" * 64, **extra))
    assert rule in {f.rule for f in scan.findings}


@pytest.mark.parametrize(
    "data",
    [
        gguf_bytes([_s("general.name") + struct.pack("<I", 8) + _s(b"x", n=1 << 60)], []),  # string longer than file
        gguf_bytes([_s("k", n=1 << 62)], []),  # key longer than file
        gguf_bytes([_s("arr") + struct.pack("<IIQ", 9, 8, 1 << 40)], []),  # array count larger than file
        gguf_bytes([_s("x") + struct.pack("<I", 99)], []),  # unknown value type
        b"GGUF" + struct.pack("<I", 7) + b"\x00" * 16,  # unknown version
        gguf_bytes([kv_string("general.name", "tiny")], [])[:30],  # truncated
        gguf_bytes([], [], tensor_count=1 << 19),  # tensor infos cannot fit
    ],
)
def test_lengths_are_bounded_by_the_file(tmp_path, data):
    scan = scan_bytes(tmp_path, data)
    assert not scan.complete
    assert {f.rule for f in scan.findings} <= {"MLG-CORE-003", "MLG-GGUF-002"}


def test_gguf_reads_metadata_only(tmp_path):
    tensor = b"\x00" * (8 << 20)
    data = gguf_bytes([kv_string("tokenizer.chat_template", BENIGN)], [("w", [1 << 21], 0, 0)], data=tensor)
    scan = scan_bytes(tmp_path, data)
    assert scan.findings == []
    assert scan.bytes_read < 256 << 10  # the sniff head plus buffered metadata, never the 8 MiB tensor


def test_big_endian_gguf_is_read(tmp_path):
    def s(text: str) -> bytes:
        return struct.pack(">Q", len(text)) + text.encode()

    template = "{{ cycler.__init__.__globals__.os.popen('touch /tmp/mlgate-canary/gguf-be').read() }}"
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + s("tokenizer.chat_template") + struct.pack(">I", 8) + s(template)
    scan = scan_bytes(tmp_path, data)
    assert {f.rule for f in scan.findings} == {"MLG-TPL-001", "MLG-TPL-002"} and scan.complete
