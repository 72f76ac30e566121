"""Pickles of everyday data that the benign suite (issue 16) found quarantined, and their look-alikes.

tz-aware datetimes pickle their zone: ``zoneinfo.ZoneInfo`` reduces to its classmethod ``_unpickle``,
which pickle stores as ``getattr(ZoneInfo, '_unpickle')``; pytz zones as ``pytz._p(...)``. A getattr
that only looks up an allowlisted name on an allowlisted class is low; any other getattr stays high.
"""

from __future__ import annotations

import datetime
import pickle
import zoneinfo

import pytest

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.pickles.names import Tier, classify

from .helpers import by_rule, scan_bytes


def serious(findings):
    return [f for f in findings if f.severity >= Severity.MEDIUM]


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_zoneinfo_datetime_is_clean(tmp_path, protocol):
    value = [datetime.datetime(2024, 3, 31, 1, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")), datetime.timezone.utc]
    scan = scan_bytes(tmp_path, pickle.dumps(value, protocol=protocol))
    assert scan.complete and not serious(scan.findings), [f.message for f in scan.findings]
    for finding in by_rule(scan.findings, "MLG-PKL-005"):  # the getattr lookup, where the protocol uses one
        assert finding.severity is Severity.LOW and "zoneinfo.ZoneInfo._unpickle" in finding.message


def _getattr_pickle(owner: tuple[str, str], attribute: str, extra: bytes = b"") -> bytes:
    """Protocol 2: getattr(owner, attribute)(...) -- called with no argument (a lookup, then a call)."""
    return (
        b"\x80\x02cbuiltins\ngetattr\nq\x00c"
        + f"{owner[0]}\n{owner[1]}\n".encode()
        + b"X"
        + len(attribute).to_bytes(4, "little")
        + attribute.encode()
        + b"\x86R"
        + extra
        + b"."
    )


@pytest.mark.parametrize(
    ("owner", "attribute", "rules"),
    [
        (("zoneinfo", "ZoneInfo"), "from_file", {"MLG-PKL-005", "MLG-PKL-006"}),  # a method that reads a file
        (("zoneinfo", "ZoneInfo"), "__init_subclass__", {"MLG-PKL-005"}),
        (("collections", "OrderedDict"), "fromkeys", {"MLG-PKL-005", "MLG-PKL-011"}),
        (("os", "path"), "join", {"MLG-PKL-005"}),  # not an allowed owner
    ],
)
def test_other_getattr_lookups_stay_high(tmp_path, owner, attribute, rules):
    scan = scan_bytes(tmp_path, _getattr_pickle(owner, attribute))
    getattr_findings = by_rule(scan.findings, "MLG-PKL-005")
    assert getattr_findings and all(f.severity >= Severity.HIGH for f in getattr_findings)
    assert rules <= {f.rule for f in serious(scan.findings)}


def test_one_harmless_lookup_does_not_excuse_another_getattr(tmp_path):
    """getattr memoized once (q\\x00), used for ZoneInfo._unpickle and again (h\\x00) for os.system."""
    second = b"0h\x00cos\nsystem\nX\x02\x00\x00\x00id\x86R"  # POP, then getattr(os.system, 'id')-style reuse
    data = _getattr_pickle(("zoneinfo", "ZoneInfo"), "_unpickle", extra=second)
    findings = scan_bytes(tmp_path, data).findings
    assert any(f.rule == "MLG-PKL-005" and f.severity >= Severity.HIGH for f in findings)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("zoneinfo", "ZoneInfo"),
        ("zoneinfo", "ZoneInfo._unpickle"),
        ("pytz", "_p"),
        ("pytz", "_UTC"),
        ("pandas", "PeriodDtype"),
        ("transformers.trainer_pt_utils", "AcceleratorConfig"),
        ("mlflow.models.signature", "_TypeHints"),
    ],
)
def test_everyday_data_names_are_allowed(module, name):
    assert classify(module, name).tier is Tier.ALLOWED


@pytest.mark.parametrize(
    ("module", "name"),
    [("zoneinfo", "ZoneInfo.from_file"), ("zoneinfo", "_common.load_data"), ("pytz", "open_resource")],
)
def test_their_neighbours_are_not(module, name):
    assert classify(module, name).tier is not Tier.ALLOWED


def test_pytz_zone_pickle_is_clean(tmp_path):
    """What pandas < 3 writes for an America/New_York column: pytz._p('America/New_York', -17760, 0, 'LMT')."""
    data = (
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x04pytz\x94\x8c\x02_p\x94\x93\x94"
        b"(\x8c\x10America/New_York\x94J`\xba\xff\xffK\x00\x8c\x03LMT\x94t\x94R\x94."
    )
    scan = scan_bytes(tmp_path, data)
    assert scan.complete and not serious(scan.findings), [f.message for f in scan.findings]
