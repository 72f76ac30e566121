"""The lenient zip reader other analyzers import: read_zip_entries / open_zip_member / ZipEntry."""

from __future__ import annotations

import io
import zipfile

import pytest

from archives.builders import FIXTURES, central_records, rename_local, set_flags, zip_bytes
from mlgate.analyzers.archives.zip_and_streams import ZipEntry, open_zip_member, read_zip_entries
from mlgate.analyzers.core.budget import BudgetExceeded, Budgets, MiB
from mlgate.analyzers.core.walker import Malformed, ScanContext, ScanOptions


def ctx(**budgets) -> ScanContext:
    return ScanContext("test", ScanOptions(budgets=Budgets(**budgets), compute_digest=False))


def test_entries_match_zipfile_and_keep_duplicates():
    data = (FIXTURES / "torch_dup_data_pkl.pt").read_bytes()
    entries = read_zip_entries(io.BytesIO(data))
    reference = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert [e.name for e in entries] == [i.filename for i in reference]
    assert [e.index for e in entries] == list(range(len(reference)))
    assert [e.header_offset for e in entries] == [i.header_offset for i in reference]
    assert [e.name for e in entries].count("archive/data.pkl") == 2
    assert all(isinstance(e, ZipEntry) and e.local_name == e.name for e in entries)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_open_member_returns_the_bytes_and_charges_them(compression):
    payload = b"model bytes " * 5000
    data = zip_bytes([("a/b.bin", payload), ("c.txt", b"x")], compression)
    scan_ctx = ctx()
    stream = io.BytesIO(data)
    entry = read_zip_entries(stream)[0]
    assert (entry.compress_type, entry.file_size) == (compression, len(payload))
    with open_zip_member(stream, entry, scan_ctx) as member:
        assert member.read() == payload
        member.seek(100)  # seekable, also when decoded
        assert member.read(12) == payload[100:112]
    if compression != zipfile.ZIP_STORED:
        assert scan_ctx.tracker.bytes_read >= len(payload)


def test_reader_ignores_flags_and_local_names_like_pytorch():
    data = zip_bytes([("archive/data.pkl", b"\x80\x02N."), ("archive/version", b"3\n")])
    data = set_flags(rename_local(data, b"archive/data.pkl", b"archive/other.pk"), b"archive/data.pkl", flags=0x1)
    entry = read_zip_entries(io.BytesIO(data))[0]
    assert (entry.name, entry.local_name, entry.flag_bits & 1) == ("archive/data.pkl", "archive/other.pk", 1)
    with open_zip_member(io.BytesIO(data), entry, ctx()) as member:
        assert member.read() == b"\x80\x02N."
    with pytest.raises(zipfile.BadZipFile):  # what a zipfile-based scanner would hit instead
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")


def test_bad_crc_is_ignored():
    data = bytearray(zip_bytes([("w.bin", b"weights")]))
    record = central_records(bytes(data))[0]
    data[record.offset + 16 : record.offset + 20] = b"\0\0\0\0"
    entry = read_zip_entries(io.BytesIO(bytes(data)))[0]
    assert open_zip_member(io.BytesIO(bytes(data)), entry, ctx()).read() == b"weights"


def test_not_a_zip_raises_malformed():
    with pytest.raises(Malformed):
        read_zip_entries(io.BytesIO(b"just some bytes, no directory" * 10))
    with pytest.raises(Malformed):
        read_zip_entries(io.BytesIO(b""))


def test_decoded_member_bomb_stops_with_budget_exceeded():
    data = zip_bytes([("zeros.bin", b"\0" * (8 * MiB))], zipfile.ZIP_DEFLATED)
    entry = read_zip_entries(io.BytesIO(data))[0]
    scan_ctx = ctx(ratio_floor=1 * MiB)
    member = open_zip_member(io.BytesIO(data), entry, scan_ctx)
    with pytest.raises(BudgetExceeded) as exc:
        while member.read(1 << 16):
            pass
    assert exc.value.budget == "max_ratio"
    assert scan_ctx.tracker.bytes_read < 2 * MiB  # stopped within a chunk of the floor


def test_zip_directory_is_parsed_once_for_every_zip_analyzer(tmp_path, monkeypatch):
    """The archive, Keras and PyTorch analyzers all read a torch zip's directory: one parse serves them."""
    import pickle
    import zipfile

    from mlgate.analyzers.archives import zip_reader as archive_zip
    from mlgate.analyzers.core.walker import scan_path

    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\x00" * 16)
    real = archive_zip.read_zip_directory
    calls = []

    def counting(stream, max_entries):
        calls.append(max_entries)
        return real(stream, max_entries)

    monkeypatch.setattr(archive_zip, "read_zip_directory", counting)
    result = scan_path(path)
    assert result.complete and not result.findings
    assert len(calls) == 1
