"""Shared fixtures: databases (SQLite and PostgreSQL as equals), settings, live servers.

PostgreSQL: 127.0.0.1:5432, user postgres, database test (override the server with
WAFILE_TEST_POSTGRES_URL). Every test gets a database of its own, created for it and
dropped after, so runs never collide. With CI=true an unreachable server fails the
run; elsewhere the PostgreSQL tests skip and the summary says so loudly.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import LiveServer, make_settings
from wafile.config import Settings
from wafile.db import migrate
from wafile.db.engine import create_engine

PG_URL = os.environ.get("WAFILE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
RUN_ID = secrets.token_hex(3)

_pg_state: dict[str, Any] = {}


def _pg_reason() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per run)."""
    if "reason" not in _pg_state:

        async def probe() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.close()

        try:
            asyncio.run(probe())
            _pg_state["reason"] = None
        except Exception as exc:
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} unreachable: {exc!r}"
    return _pg_state["reason"]


def require_postgres() -> None:
    reason = _pg_reason()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    _pg_state["skipped"] = _pg_state.get("skipped", 0) + 1
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _pg_state.get("skipped"):
        terminalreporter.write_sep("!", "POSTGRESQL TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(
            f"{_pg_state['skipped']} PostgreSQL tests did not run: {_pg_state['reason']}. "
            "CI=true makes this a failure.",
            red=True,
        )


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_database_url(name: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wafile.db'}"
        return
    require_postgres()
    name = f"wafile_t_{RUN_ID}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_database_url(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Settings:
    # `@pytest.mark.no_embedded_worker`: the test runs (or records) the jobs itself.
    if request.node.get_closest_marker("no_embedded_worker") is not None:
        return make_settings(tmp_path, database_url, embedded_worker=False)
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head."""
    eng = create_engine(settings.effective_database_url)
    await migrate.upgrade(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def live_server(settings: Settings, engine: AsyncEngine) -> Iterator[LiveServer]:
    """A running server on a migrated database (the `engine` fixture migrated it)."""
    with LiveServer(settings) as server:
        yield server
