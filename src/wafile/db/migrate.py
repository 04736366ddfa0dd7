"""Apply the Alembic migrations in `migrations/` from code (`wafile migrate`, `serve`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wafile.db.engine import database_errors

__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "downgrade", "head", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, command.downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    with database_errors():
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )


async def _run(engine: AsyncEngine, fn: Any, revision: str) -> None:
    def run(sync_conn: Connection) -> None:
        cfg = alembic_config()
        # env.py uses this connection instead of opening its own, and its transaction.
        cfg.attributes["connection"] = sync_conn
        with sqlite_foreign_keys_off(sync_conn):
            fn(cfg, revision)

    with database_errors():
        async with engine.connect() as conn:
            await conn.run_sync(run)


@contextmanager
def sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """Foreign keys off while SQLite migrates (SQLite's own advice for altering tables).

    SQLite alters a table by copying it and dropping the old one; with foreign keys on,
    that drop deletes every row that refers to it (ON DELETE CASCADE): rebuilding
    `messages` would take every event, reference and delivery with it. The pragma is a
    no-op inside a transaction, so it is set on the driver's connection before the
    migration's transaction begins; env.py checks the keys before committing."""
    if conn.dialect.name != "sqlite":
        yield
        return
    _pragma(conn, "foreign_keys=OFF")
    try:
        yield
    finally:
        # Alembic has committed (or the migration failed); whatever SQLAlchemy began
        # after that holds nothing, and the pragma needs no transaction open.
        if conn.in_transaction():
            conn.rollback()
        _pragma(conn, "foreign_keys=ON")
        # The pooled connection serves the whole process afterwards: never leave it
        # without cascades.
        if _pragma(conn, "foreign_keys") != [(1,)]:
            raise RuntimeError("SQLite foreign keys could not be turned back on")


def _pragma(conn: Connection, pragma: str) -> list[Any]:
    """A PRAGMA on the driver's connection, outside SQLAlchemy's transaction handling."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA {pragma}")
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
