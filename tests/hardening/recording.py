"""A recording unpickler: what a real ``pickle.Unpickler`` imports and calls, with nothing run.

``find_class`` records the global and returns a stub; calling a stub (REDUCE, NEWOBJ, INST, OBJ)
records the call and returns another stub, so the real unpickler's opcode loop (C or Python
implementation) runs to the end and reports exactly which globals a load would reach. Tests use it
to confirm that a reproducer is reachable by a real loader and to compare the pickle VM with it.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field


@dataclass
class Recording:
    """What one load reached: globals in lookup order, calls in call order, and how it ended."""

    imports: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


class _Stub:
    def __init__(self, rec: Recording, name: tuple[str, str]) -> None:
        self._rec = rec
        self._name = name

    def __call__(self, *args: object, **kwargs: object) -> _Stub:
        self._rec.calls.append(self._name)
        return _Stub(self._rec, (self._name[0], self._name[1] + "()"))

    def __reduce__(self) -> tuple[object, ...]:  # never pickled back
        raise TypeError("stub")

    def __setstate__(self, state: object) -> None:
        pass

    def __getattr__(self, name: str) -> _Stub:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(self._rec, (self._name[0], f"{self._name[1]}.{name}"))

    def extend(self, items: object) -> None:
        pass

    def append(self, item: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass


def _make(base: type) -> type:
    class _Recorder(base):  # type: ignore[misc, valid-type]
        def __init__(self, data: bytes, rec: Recording) -> None:
            super().__init__(io.BytesIO(data), encoding="latin-1")
            self.rec = rec

        def find_class(self, module: str, name: str) -> object:
            self.rec.imports.append((module, name))
            return _Stub(self.rec, (module, name))

        def persistent_load(self, pid: object) -> object:
            return None

    return _Recorder


C_RECORDER = _make(pickle.Unpickler)
PY_RECORDER = _make(pickle._Unpickler)  # type: ignore[attr-defined]


def record(data: bytes, python: bool = False) -> Recording:
    """Load ``data`` with the C (default) or Python unpickler, recording globals and calls."""
    rec = Recording()
    try:
        (PY_RECORDER if python else C_RECORDER)(data, rec).load()
    except Exception as exc:  # noqa: BLE001 - a broken stream still reached what it recorded
        rec.error = f"{type(exc).__name__}: {exc}"
    return rec


def reaches(data: bytes, module: str, name: str) -> bool:
    """Whether both unpickler implementations look up ``module.name`` while loading ``data``."""
    return all((module, name) in record(data, python=py).imports for py in (False, True))
