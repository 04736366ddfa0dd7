"""Vendor dialects: each seed vendor's API, exactly as its page shows it, mounted over
the same services under `/<name>` (see docs/dialects.md and `base.py`).

`WAFILE_DIALECT_AT_ROOT=<name>` mounts one of them at the root as well, for clients
whose base URL cannot carry a path; the native routes come first there.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from fastapi import FastAPI

from wafile.api.context import AppContext
from wafile.api.dialects import commbox, digital99, insider, sinch, telesign

__all__ = ["DIALECTS", "mount_dialects"]

# name -> module with `create_app(ctx)`; the URL prefix is the name.
DIALECTS: dict[str, ModuleType] = {
    "insider": insider,
    "commbox": commbox,
    "99digital": digital99,
    "telesign": telesign,
    "sinch": sinch,
}


def mount_dialects(app: FastAPI, ctx: AppContext) -> None:
    """Mount every dialect under its prefix, and the chosen one at the root."""
    factories: dict[str, Callable[[AppContext], FastAPI]] = {
        name: module.create_app for name, module in DIALECTS.items()
    }
    for name, create in factories.items():
        app.mount(f"/{name}", create(ctx), name=f"dialect-{name}")
    root = ctx.settings.dialect_at_root
    if root:
        # Last: every native route and prefix has matched before this catch-all.
        app.mount("", factories[root](ctx), name=f"dialect-{root}-at-root")
