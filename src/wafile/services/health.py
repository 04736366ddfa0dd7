"""Readiness: can this process do its work right now?"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy.ext.asyncio import AsyncEngine

from wafile.config import Settings
from wafile.db.engine import ping
from wafile.errors import WafileError

__all__ = ["Check", "check_ready"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


async def check_ready(engine: AsyncEngine, settings: Settings) -> list[Check]:
    return [await _database(engine), await asyncio.to_thread(_media, settings)]


async def _database(engine: AsyncEngine) -> Check:
    try:
        await asyncio.wait_for(ping(engine), timeout=5)
    except (WafileError, TimeoutError) as exc:
        return Check(name="database", ok=False, detail=str(exc) or "timed out after 5 s")
    return Check(name="database", ok=True)


def _media(settings: Settings) -> Check:
    url = urlparse(settings.effective_media_url)
    if url.scheme != "file":
        # Remote stores are checked by the media layer once it exists for them.
        return Check(name="media", ok=True, detail=f"{url.scheme}:// store not probed")
    folder = Path(unquote(url.path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".ready-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check(name="media", ok=False, detail=f"media folder not writable: {exc.strerror}")
    return Check(name="media", ok=True)
