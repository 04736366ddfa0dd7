"""Readiness: can this process do its work right now?"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from wafile.db.engine import ping
from wafile.errors import WafileError
from wafile.media.store import BlobStore, BlobStoreError

__all__ = ["Check", "check_ready"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


async def check_ready(engine: AsyncEngine, store: BlobStore) -> list[Check]:
    return list(await asyncio.gather(_database(engine), _media(store)))


async def _database(engine: AsyncEngine) -> Check:
    try:
        await asyncio.wait_for(ping(engine), timeout=5)
    except (WafileError, TimeoutError) as exc:
        return Check(name="database", ok=False, detail=str(exc) or "timed out after 5 s")
    return Check(name="database", ok=True)


async def _media(store: BlobStore) -> Check:
    """Write and delete a marker object: the store takes files right now."""
    try:
        await asyncio.wait_for(store.ping(), timeout=10)
    except (BlobStoreError, TimeoutError) as exc:
        return Check(name="media", ok=False, detail=f"media store not writable: {exc}")
    return Check(name="media", ok=True)
