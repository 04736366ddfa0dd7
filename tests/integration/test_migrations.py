"""Migrations on SQLite and PostgreSQL: up, down to nothing, up again; and the
migrated schema is exactly what `db/tables.py` declares."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from wafile.config import Settings
from wafile.db import migrate
from wafile.db.engine import create_engine
from wafile.db.tables import Base


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(conn), Base.metadata)


async def test_upgrade_downgrade_upgrade(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head()
        async with engine.connect() as conn:
            assert {"accounts", "api_keys"} <= await conn.run_sync(_tables)
            assert await conn.run_sync(_diff) == []

        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) <= {"alembic_version"}

        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head()
        await migrate.upgrade(engine)  # idempotent
    finally:
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with engine.connect() as conn:
            mode = await conn.exec_driver_sql("PRAGMA journal_mode")
            assert mode.scalar() == "wal"
            fk = await conn.exec_driver_sql("PRAGMA foreign_keys")
            assert fk.scalar() == 1
    finally:
        await engine.dispose()
