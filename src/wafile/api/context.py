"""What one running app holds: settings, database, clock, metrics, store and sealer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wafile.api.metrics import HttpMetrics
from wafile.clock import Clock
from wafile.config import Settings
from wafile.crypto import Sealer
from wafile.media.store import BlobStore

__all__ = ["AppContext"]


@dataclass(frozen=True, kw_only=True)
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    metrics: HttpMetrics
    store: BlobStore
    sealer: Sealer  # opens and seals the credentials stored at rest
