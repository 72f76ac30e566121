"""Parse JSON and YAML configs the way their loaders do, keeping what the loaders hide.

Python's ``json`` and PyYAML's ``safe_load`` silently keep the last of two
equal keys; mlgate keeps the last too (that is what the victim loader sees) and
records every duplicate with its path, because a reviewer reading the file sees
the first. YAML Python tags (``!!python/object/apply:os.system``) are recorded,
never constructed; other unknown tags are read as plain data.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..core.budget import BudgetExceeded
from ..core.walker import Malformed


class ConfigDict(dict):  # type: ignore[type-arg]
    """A mapping as the loader sees it (last value wins), plus the keys that appeared twice."""

    duplicates: list[str]


@dataclass(frozen=True)
class PythonTag:
    """A YAML node tagged ``!!python/...``: what an unsafe YAML loader would construct."""

    tag: str
    line: int


@dataclass
class Document:
    """A parsed config: its data (mappings are ``ConfigDict``s with their duplicate keys) and YAML Python tags."""

    data: Any
    python_tags: list[PythonTag] = field(default_factory=list)
    mappings: list[ConfigDict] = field(default_factory=list)  # every mapping constructed, once each


def parse_json(data: bytes) -> Document:
    """Parse JSON like ``json.loads`` (last duplicate wins); raise ``Malformed`` when it does not parse."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Malformed(f"JSON is not UTF-8 ({exc.reason})", exc.start) from None
    mappings: list[ConfigDict] = []

    def mapping(pairs: list[tuple[str, Any]]) -> ConfigDict:
        out = ConfigDict(pairs)
        out.duplicates = []
        if len(out) != len(pairs):
            seen: set[str] = set()
            out.duplicates = [key for key, _ in pairs if key in seen or seen.add(key)]
        mappings.append(out)
        return out

    try:
        value = json.loads(text, object_pairs_hook=mapping)
    except json.JSONDecodeError as exc:
        raise Malformed(f"JSON syntax error: {exc.msg} at line {exc.lineno} column {exc.colno}", exc.pos) from None
    return Document(value, mappings=mappings)


class _Loader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys and Python tags instead of failing or constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.python_tags: list[PythonTag] = []
        self.mappings: list[ConfigDict] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> ConfigDict:
    loader.flatten_mapping(node)
    out = ConfigDict()
    out.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            )
        if key in out:
            out.duplicates.append(str(key))
        out[key] = loader.construct_object(value_node, deep=True)
    loader.mappings.append(out)
    return out


def _construct_python(loader: _Loader, suffix: str, node: yaml.Node) -> object:
    loader.python_tags.append(PythonTag(f"tag:yaml.org,2002:python/{suffix}", node.start_mark.line + 1))
    return _plain(loader, node)


def _construct_unknown(loader: _Loader, node: yaml.Node) -> object:
    return _plain(loader, node)


def _plain(loader: _Loader, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return _construct_mapping(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return [loader.construct_object(child, deep=True) for child in node.value]
    return loader.construct_scalar(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_python)
_Loader.add_constructor(None, _construct_unknown)


def parse_yaml(data: bytes) -> Document:
    """Parse one YAML document like ``yaml.safe_load``; raise ``Malformed`` when it does not parse."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Malformed(f"YAML is not UTF-8 ({exc.reason})", exc.start) from None
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses non-printable characters here (ReaderError)
        value = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise Malformed(f"YAML error{where}: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return Document(value, python_tags=loader.python_tags, mappings=loader.mappings)


MAX_NODES = 1_000_000
"""Mappings and lists visited per document; YAML aliases can make a small file a huge tree."""
MAX_DEPTH = 256
"""Nesting depth visited; deeper (or self-referencing) structures stop the walk."""


class FieldPath:
    """Where a value sits in a config (``a.b[3]``); built lazily, since most are never printed."""

    __slots__ = ("parent", "key")

    def __init__(self, parent: FieldPath | None, key: object) -> None:
        self.parent = parent
        self.key = key

    def __str__(self) -> str:
        keys = []
        node: FieldPath | None = self
        while node is not None and node.parent is not None:
            keys.append(node.key)
            node = node.parent
        out = ""
        for key in reversed(keys):
            out = join(out, key)
        return out


ROOT = FieldPath(None, None)


def walk(value: Any) -> Iterator[tuple[FieldPath, dict]]:
    """Yield ``(path, mapping)`` for every mapping in ``value`` (lists are traversed), bounded."""
    stack: list[tuple[FieldPath, Any, int]] = [(ROOT, value, 0)]
    visited = 0
    while stack:
        path, node, depth = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise BudgetExceeded("config_nodes", f"a config expands to more than {MAX_NODES} mappings and lists")
        if depth > MAX_DEPTH:
            raise BudgetExceeded("config_depth", f"a config nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            yield path, node
            items: Iterable[tuple[object, Any]] = node.items()
        else:
            items = enumerate(node)
        children = [
            (FieldPath(path, key), child, depth + 1)
            for key, child in items
            if isinstance(child, (dict, list)) and child
        ]
        stack.extend(reversed(children))  # first child on top: document order


def join(path: str, key: object) -> str:
    """Child path: ``a.b``, ``a[3]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)
