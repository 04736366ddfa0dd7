"""Alembic environment: runs on a connection handed in by `wafile.db.migrate`, or, for
`alembic` on the command line (alembic.ini at the repository root), on the database
that wafile's own settings name."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from wafile.db.tables import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            # Foreign keys are off while SQLite migrates (wafile.db.migrate): make sure
            # no migration left a row pointing nowhere before this commits.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


async def run_from_settings() -> None:
    from wafile.config import load_settings
    from wafile.db.engine import create_engine
    from wafile.db.migrate import sqlite_foreign_keys_off

    engine = create_engine(load_settings(ensure_secret=False).effective_database_url)

    def run(sync_conn: Connection) -> None:
        with sqlite_foreign_keys_off(sync_conn):
            run_on(sync_conn)

    try:
        async with engine.connect() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("wafile migrations run online only: use `wafile migrate`")

given = context.config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    asyncio.run(run_from_settings())
