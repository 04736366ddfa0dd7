"""Reading an emulator's world file: YAML or JSON, chosen by the file's extension."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["WorldFileError", "load_document"]


class WorldFileError(ValueError):
    """The world file cannot be read or is not a mapping at the top level."""


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
