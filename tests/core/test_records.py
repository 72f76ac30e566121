"""``analyzers/core/records.py``: ``NamedTuple`` without importing typing builds what typing builds."""

from __future__ import annotations

import pickle
import typing

import pytest

from mlgate.analyzers.core import records
from mlgate.analyzers.core.policy import Suppression
from mlgate.analyzers.pickles.packs import Deny, Pattern


class Ours(records.NamedTuple):
    """A record."""

    name: str
    size: int = 0
    note: str = ""

    def label(self) -> str:
        return f"{self.name}:{self.size}"

    @property
    def empty(self) -> bool:
        return self.size == 0


class Theirs(typing.NamedTuple):
    """A record."""

    name: str
    size: int = 0
    note: str = ""

    def label(self) -> str:
        return f"{self.name}:{self.size}"

    @property
    def empty(self) -> bool:
        return self.size == 0


def test_a_record_behaves_as_typings_named_tuple() -> None:
    ours, theirs = Ours("a", 2), Theirs("a", 2)
    assert records.NamedTuple is not typing.NamedTuple  # the stand-in is what runs
    assert ours == theirs == ("a", 2, "")
    assert repr(ours) == repr(theirs).replace("Theirs", "Ours")
    assert Ours._fields == Theirs._fields and Ours._field_defaults == Theirs._field_defaults
    assert (ours.label(), ours.empty, Ours("b").empty) == (theirs.label(), theirs.empty, True)
    assert ours._replace(size=5) == ("a", 5, "") and Ours._make(["x", 1, "y"]).note == "y"
    assert Ours.__doc__ == "A record." and Ours.__qualname__ == "Ours" and Ours.__module__ == __name__
    assert typing.get_type_hints(Ours) == typing.get_type_hints(Theirs) == {"name": str, "size": int, "note": str}
    assert isinstance(ours, tuple) and hash(ours) == hash(theirs)
    assert pickle.loads(pickle.dumps(ours)) == ours  # worker pools send records between processes
    with pytest.raises(TypeError):
        Ours()


def test_the_mistakes_typing_refuses_are_refused() -> None:
    with pytest.raises(TypeError):

        class DefaultFirst(records.NamedTuple):
            a: int = 0
            b: int

    with pytest.raises(AttributeError):

        class OwnInit(records.NamedTuple):
            a: int

            def _replace(self) -> None: ...


def test_the_records_of_the_scan_path_keep_their_fields_and_defaults() -> None:
    assert Suppression("MLG-X-001", "*.pkl", "reviewed").matches.__name__ == "matches"
    assert Pattern._fields == ("modules", "names", "reason", "exclude") and Pattern._field_defaults == {"exclude": ""}
    assert Deny._fields == ("module", "names", "category", "note") and Deny._field_defaults == {"note": ""}
