"""The engine outlives the database dropping its connections (PostgreSQL restarts,
failovers, idle timeouts): one transaction fails as `ServiceUnavailable`, never more."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from tests.conftest import PG_URL
from tests.support import make_settings
from wafile.db.engine import autocommit, engine_for, session_factory, transaction
from wafile.errors import ServiceUnavailable


async def _kill_connections(engine: AsyncEngine) -> int:
    """Terminate every server connection of the engine's database; how many."""
    admin = await asyncpg.connect(PG_URL, timeout=10)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                engine.url.database,
            )
        )
    finally:
        await admin.close()


async def test_a_dropped_pool_recovers_after_one_failure(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop connections")
    sessions = session_factory(engine)

    async def one() -> int:
        async with transaction(sessions) as s:
            return int(await s.scalar(text("SELECT 1")) or 0)

    # Fill the pool with several idle connections, then have the server drop them all.
    async with engine.connect(), engine.connect(), engine.connect():
        pass
    assert await one() == 1
    assert await _kill_connections(engine) >= 1

    failures = 0
    for _ in range(5):
        try:
            assert await one() == 1
        except ServiceUnavailable:
            failures += 1
    # The first checkout finds its connection dead; that invalidates the whole pool.
    assert failures <= 1, failures
    assert await one() == 1


async def test_reading_runs_each_statement_on_its_own_on_postgresql(engine: AsyncEngine) -> None:
    """`autocommit` saves a transaction's BEGIN and COMMIT on PostgreSQL (autocommit), and is
    an ordinary transaction on SQLite; the pool's connections go back as they came."""
    sessions = session_factory(engine)
    postgres = engine.dialect.name == "postgresql"
    async with autocommit(sessions) as s:
        if postgres:
            # Each statement its own transaction: each gets a transaction id of its own.
            first = await s.scalar(text("SELECT txid_current()"))
            second = await s.scalar(text("SELECT txid_current()"))
            assert first != second
        else:
            assert await s.scalar(text("SELECT 1")) == 1
    if postgres:
        # The next ordinary transaction is one transaction again (isolation reset).
        async with transaction(sessions) as s:
            first = await s.scalar(text("SELECT txid_current()"))
            second = await s.scalar(text("SELECT txid_current()"))
            assert first == second


async def test_a_write_in_reading_is_kept(engine: AsyncEngine) -> None:
    """A write in `autocommit` (an API key's last_used_at) commits: at once on PostgreSQL,
    with the session's transaction on SQLite."""
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        await s.execute(text("CREATE TABLE reading_probe (n INTEGER)"))
    async with autocommit(sessions) as s:
        await s.execute(text("INSERT INTO reading_probe (n) VALUES (7)"))
    async with transaction(sessions) as s:
        assert await s.scalar(text("SELECT n FROM reading_probe")) == 7


def test_the_pool_size_comes_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PG_URL, database_pool_size=3, database_max_overflow=1)
    engine = engine_for(settings)  # no connection is made until first use
    assert isinstance(engine.pool, QueuePool)
    assert (engine.pool.size(), engine.pool._max_overflow) == (3, 1)
