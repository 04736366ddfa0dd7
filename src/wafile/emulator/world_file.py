"""Reading an emulator's world file (YAML or JSON, chosen by the file's extension) and
the field readers both emulators' world parsers use, each naming the field it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "Fields",
    "WorldError",
    "WorldFileError",
    "kind",
    "list_field",
    "load_document",
    "optional",
    "seconds",
    "text",
]

T = TypeVar("T")


class WorldFileError(ValueError):
    """The world file cannot be read or is not a mapping at the top level."""


class WorldError(ValueError):
    """A world document (or a control API change) that cannot be used; names the field."""


def load_document(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; JSON for `.json`, YAML (a superset) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorldFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise WorldFileError(f"{path}: not valid {_kind(path)}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WorldFileError(f"{path}: the top level must be a mapping")
    return data


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


class Fields:
    """Reads one mapping of the document, naming `where` in every error."""

    def __init__(self, data: object, where: str, allowed: Sequence[str]) -> None:
        if not isinstance(data, Mapping):
            raise WorldError(f"{where}: must be a mapping, got {kind(data)}")
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise WorldError(f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(allowed)})")
        self.data = data
        self.where = where

    def path(self, name: str) -> str:
        return f"{self.where}.{name}"

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, read: Callable[[object, str], T], default: T) -> T:
        if name not in self.data:
            return default
        return read(self.data[name], self.path(name))

    def need(self, name: str, read: Callable[[object, str], T]) -> T:
        if name not in self.data:
            raise WorldError(f"{self.path(name)}: required")
        return read(self.data[name], self.path(name))


def kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WorldError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def seconds(value: object, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")  # also refuses NaN
    ):
        raise WorldError(f"{where}: must be a number of seconds >= 0, got {value!r}")
    return float(value)


def optional(read: Callable[[object, str], T]) -> Callable[[object, str], T | None]:
    def reader(value: object, where: str) -> T | None:
        return None if value is None else read(value, where)

    return reader


def list_field(value: object, where: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WorldError(f"{where.removeprefix('world.')}: must be a list, got {kind(value)}")
    return value
