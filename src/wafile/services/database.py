"""Bringing the database to the schema this wafile needs."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from wafile.config import Settings
from wafile.db import migrate
from wafile.db.engine import safe_url
from wafile.errors import ServiceUnavailable

__all__ = ["prepare_database"]

log = logging.getLogger(__name__)


async def prepare_database(engine: AsyncEngine, settings: Settings) -> None:
    """Migrate the embedded SQLite database; check that PostgreSQL is migrated.

    PostgreSQL is shared by many processes, so its migrations are an operator's step
    (`wafile migrate`), never a side effect of starting one server.
    """
    if settings.is_sqlite:
        before = await migrate.current_revision(engine)
        await migrate.upgrade(engine)
        if before != migrate.head():
            log.info(
                "migrated %s from %s to %s", safe_url(engine.url), before or "base", migrate.head()
            )
        return
    current = await migrate.current_revision(engine)
    if current != migrate.head():
        raise ServiceUnavailable(
            f"the database {safe_url(engine.url)} is at schema revision {current or 'none'}, "
            f"this wafile needs {migrate.head()}: run `wafile migrate`"
        )
