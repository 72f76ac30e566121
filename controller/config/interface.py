"""The configuration contract: the one error type, and typed construction of settings dataclasses.

Every settings dataclass (the controller's, each bucket's) is built by
``build_settings`` from a parsed YAML/TOML mapping or from environment strings,
every value converted to its field's declared type. A field can take over its
own conversion with ``field(metadata={"build": fn})`` where ``fn(raw, where)``
returns the value. Every mistake is one ``ConfigError`` line naming the file and
the key's full name.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Union

from mlgate.analyzers.core.compat import tomllib

__all__ = ["ConfigError", "InvalidSetting", "build_settings", "show_value", "tomllib"]


class ConfigError(Exception):
    """A configuration mistake, as one line for a person."""


class InvalidSetting(ConfigError):
    """Raised by a settings dataclass's own validation (``__post_init__``) for one of its keys;
    ``build_settings`` adds the file and the key's full name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def build_settings(cls: type, data: Any, where: str, prefix: str) -> Any:
    """A settings dataclass from a parsed YAML/TOML mapping (or env strings), every value converted to
    its field's type; ``where`` names the file, ``prefix`` the section (``"mlflow."``, ``"buckets[0]."``)
    in error messages. Raises ``ConfigError``."""
    label = prefix.rstrip(".") or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {label}: expected a mapping of settings, got {show_value(data)}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    field_builders = {f.name: f.metadata["build"] for f in fields if "build" in f.metadata}
    known = {f.name for f in fields}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: {prefix}{unknown[0]}: unknown setting (allowed: {', '.join(sorted(known))})")
    for f in fields:
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: {prefix}{f.name}: required")
    values = {}
    for name, raw in data.items():
        key = f"{prefix}{name}"
        build = field_builders.get(name)
        values[name] = build(raw, where) if build else _convert(hints[name], raw, where, key)
    try:
        return cls(**values)
    except InvalidSetting as exc:
        raise ConfigError(f"{where}: {prefix}{exc.key}: {exc.message}") from None


def _convert(kind: Any, raw: Any, where: str, key: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return build_settings(kind, raw, where, f"{key}.")
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if raw is None else _convert(options[0], raw, where, key)
    if typing.get_args(kind) == (str, ...):  # tuple[str, ...]: a list of text; one string is a one-item list
        if isinstance(raw, str):
            return (raw,)
        if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
            raise ConfigError(f"{where}: {key}: expected a list of text, got {show_value(raw)}")
        return tuple(raw)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(raw)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            raise ConfigError(f"{where}: {key}: expected one of {choices}, got {show_value(raw)}") from None
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return raw.strip().lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: {key}: expected true or false, got {show_value(raw)}")
    if kind in (int, float):
        number = isinstance(raw, (int, float)) and not isinstance(raw, bool) and (kind is float or isinstance(raw, int))
        if number:
            return kind(raw)
        if isinstance(raw, str):
            try:
                return kind(raw.strip())
            except ValueError:
                pass
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{where}: {key}: expected {expected}, got {show_value(raw)}")
    if kind is str:
        if isinstance(raw, str):
            return raw
        raise ConfigError(f"{where}: {key}: expected text, got {show_value(raw)}")
    raise ConfigError(f"{where}: {key}: unsupported setting type")  # pragma: no cover - schema bug


def show_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def signature_override(section: str) -> Callable[[Any, str], Any]:
    """A field builder for a source's ``signatures`` table: the policy's ``[signatures]`` keys
    (docs/signatures.md), relative paths resolved against the working directory."""

    def build(raw: Any, where: str) -> Any:
        from pathlib import Path

        from mlgate.analyzers.core.policy import PolicyError, parse_signatures

        if raw in (None, {}):
            return None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: {section}: expected a table of [signatures] settings")
        try:
            return parse_signatures(dict(raw), f"{where}: {section}", Path.cwd())
        except PolicyError as exc:
            raise ConfigError(str(exc)) from None

    return build
