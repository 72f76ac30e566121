"""Builders for archive test files: real zipfile/tarfile archives, plus byte-level zip surgery.

The surgery helpers parse zip records with plain ``struct`` (not with the reader
under test) to make the malformed shapes real readers disagree on.
"""

from __future__ import annotations

import io
import struct
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlgate.analyzers.core.findings import Finding, Severity
from mlgate.analyzers.core.walker import ScanOptions, TargetScan, scan_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "archives"
BENCH = Path(__file__).resolve().parents[2] / "bench"


def sparse_weights(path: Path, kind: str, size: int) -> None:
    """A large, valid weight file of about ``size`` bytes whose tensor data is a hole (sparse on disk): ``kind``
    ``safetensors`` (8 F32 tensors) or ``torch`` (a stored zip laid out like ``torch.save``, 16 storages).
    The layouts are ``bench/s3_ranged_reads.py``'s, so tests and benches scan the same files."""
    sys.path.insert(0, str(BENCH))
    try:
        from s3_ranged_reads import safetensors, torch_zip, write_sparse
    finally:
        sys.path.remove(str(BENCH))
    write_sparse(path, safetensors(size) if kind == "safetensors" else torch_zip(size, 16))


# --- scanning helpers -----------------------------------------------------------------------
def scan(path: Path, options: ScanOptions | None = None) -> TargetScan:
    return scan_path(path, options or ScanOptions(compute_digest=False))


def rules_of(scan_result: TargetScan, prefix: str = "MLG-ARC-") -> list[str]:
    """Sorted rule ids (with repeats) of findings whose id starts with ``prefix``."""
    return sorted(f.rule for f in scan_result.findings if f.rule.startswith(prefix))


def findings_of(scan_result: TargetScan, rule: str) -> list[Finding]:
    return [f for f in scan_result.findings if f.rule == rule]


def serious(scan_result: TargetScan) -> list[Finding]:
    return [f for f in scan_result.findings if f.severity >= Severity.HIGH]


# --- zip -------------------------------------------------------------------------------------
def zip_bytes(members: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def unix_info(name: str, mode: int) -> zipfile.ZipInfo:
    """A zip entry created on Unix with ``mode`` (type bits included) in its external attributes."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


@dataclass
class CentralRecord:
    offset: int  # where the record starts in the file
    raw: bytes
    name: bytes
    header_offset: int


def eocd(data: bytes) -> tuple[int, int, int, int]:
    """(eocd offset, entry count, directory size, directory offset) of a zip without a comment."""
    pos = len(data) - 22
    assert data[pos : pos + 4] == b"PK\x05\x06"
    _sig, _d, _cd, _n, count, size, offset, _c = struct.unpack("<4s4H2LH", data[pos : pos + 22])
    return pos, count, size, offset


def central_records(data: bytes) -> list[CentralRecord]:
    _pos, count, _size, offset = eocd(data)
    out = []
    at = offset
    for _ in range(count):
        fields = struct.unpack("<4s4B4HL2L5H2L", data[at : at + 46])
        name_len, extra_len, comment_len, header_offset = fields[12], fields[13], fields[14], fields[18]
        end = at + 46 + name_len + extra_len + comment_len
        out.append(CentralRecord(at, data[at:end], data[at + 46 : at + 46 + name_len], header_offset))
        at = end
    return out


def with_directory(data: bytes, records: list[bytes], count: int | None = None) -> bytes:
    """Replace the central directory (and end record) of ``data`` with ``records``."""
    _pos, _count, _size, offset = eocd(data)
    directory = b"".join(records)
    n = len(records) if count is None else count
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(directory), offset, 0)
    return data[:offset] + directory + end


def rename_record(record: bytes, new_name: bytes) -> bytes:
    name_len = struct.unpack("<H", record[28:30])[0]
    assert len(new_name) == name_len
    return record[:46] + new_name + record[46 + name_len :]


def set_flags(data: bytes, name: bytes, flags: int | None = None, method: int | None = None) -> bytes:
    """Patch the general-purpose flags / compression method of ``name`` in both its headers."""
    out = bytearray(data)
    for record in central_records(data):
        if record.name != name:
            continue
        if flags is not None:
            struct.pack_into("<H", out, record.offset + 8, flags)
            struct.pack_into("<H", out, record.header_offset + 6, flags)
        if method is not None:
            struct.pack_into("<H", out, record.offset + 10, method)
            struct.pack_into("<H", out, record.header_offset + 8, method)
    return bytes(out)


def rename_local(data: bytes, name: bytes, new_name: bytes) -> bytes:
    """Give ``name``'s local header another name of the same length (the directory keeps the old one)."""
    record = next(r for r in central_records(data) if r.name == name)
    at = record.header_offset + 30
    assert data[at : at + len(name)] == name and len(new_name) == len(name)
    return data[:at] + new_name + data[at + len(name) :]


def nested_zips(levels: int, payload: bytes = b"payload") -> bytes:
    data = zip_bytes([("leaf.txt", payload)], zipfile.ZIP_DEFLATED)
    for _ in range(levels - 1):
        data = zip_bytes([("inner.zip", data)], zipfile.ZIP_DEFLATED)
    return data


# --- tar -------------------------------------------------------------------------------------
@dataclass
class TarMember:
    name: str
    data: bytes = b"x"
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o644


def tar_bytes(members: list[TarMember], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.linkname = m.linkname
            info.mode = m.mode
            info.mtime = 315532800  # 1980-01-01, like Keras and reproducible builds
            if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(m.data)
                t.addfile(info, io.BytesIO(m.data))
            else:
                t.addfile(info)
    return buf.getvalue()


def benign_nemo_members(weights: bytes) -> list[TarMember]:
    """The layout NeMo's SaveRestoreConnector writes (tar of a directory added as '.')."""
    return [
        TarMember(".", type=tarfile.DIRTYPE, mode=0o755),
        TarMember("./model_config.yaml", b"target: nemo.collections.asr.models.EncDecCTCModel\nsample_rate: 16000\n"),
        TarMember("./model_weights.ckpt", weights),
        TarMember("./2b4a8c6d1e0f4a3b9c7d5e1f2a3b4c5d_tokenizer.model", b"\x0a\x05hello" * 8),
    ]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
