"""Engines and sessions for SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg).

SQLite gets one pooled connection: SQLite has a single write lock, and several pooled
connections fighting over it were measured slower than one (DESIGN.md). Transactions
on SQLite start with BEGIN IMMEDIATE, so a transaction that reads and then writes
waits for the lock up front (busy_timeout) instead of failing half-way when another
process (the CLI, a second server) wrote in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from wafile.config import Settings
from wafile.errors import ServiceUnavailable

__all__ = [
    "ReferenceGone",
    "autocommit",
    "create_engine",
    "database_errors",
    "engine_for",
    "ping",
    "safe_url",
    "session_factory",
    "transaction",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(
    url: str, *, pool_size: int = 20, max_overflow: int = 5, **kwargs: Any
) -> AsyncEngine:
    """An engine for `url`; `pool_size` and `max_overflow` apply to PostgreSQL only."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        # (":memory:" gets SQLAlchemy's StaticPool: one connection by construction.)
        engine = _create_async_engine(parsed, **pool, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pool_pre_ping: it cost a round trip at every checkout (7-13 % of a worker's
    # CPU in a profile). A dropped connection fails its one transaction instead (a 503,
    # or a job retried) and SQLAlchemy then discards every connection pooled before it.
    return _create_async_engine(parsed, pool_size=pool_size, max_overflow=max_overflow, **kwargs)


def engine_for(settings: Settings) -> AsyncEngine:
    """The engine a process of wafile uses, as its settings say."""
    return create_engine(
        settings.effective_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work for an edge (request, CLI command, job): commit or roll back."""
    with database_errors():
        async with sessions() as session, session.begin():
            yield session


@asynccontextmanager
async def autocommit(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Statements that each stand alone: reads that need no snapshot shared between
    them (authenticating a key, what a send job needs) and single-statement writes (a
    send slot, a claim of jobs). On PostgreSQL each statement commits on its own
    (autocommit), which saves a transaction's BEGIN and COMMIT round trips. On SQLite
    a transaction as usual: SQLAlchemy's autocommit switch there would hand
    transaction control back to the driver."""
    engine: AsyncEngine = sessions.kw["bind"]
    with database_errors():
        if engine.dialect.name != "postgresql":
            async with sessions() as session, session.begin():
                yield session
            return
        # The session still connects only on its first statement: a request refused
        # before it reads anything (a malformed key) never needs the database.
        async with sessions(bind=_autocommit_engine(engine)) as session:
            yield session


@lru_cache(maxsize=8)  # a process has one engine; tests make many, hence a bound
def _autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, checked out in autocommit (and reset on return). Made once: each
    `execution_options` call builds an engine and registers an event listener, which
    cost about 4% of an accepted message's CPU when done per session."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


class ReferenceGone(Exception):
    """A row a new one refers to (an account, a sender, a file) was deleted after it
    was read, in another transaction: the insert broke a foreign key. The repositories
    that insert rows with fresh ids raise it; services say what was removed."""


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn driver failures to reach the database into `ServiceUnavailable`."""
    try:
        yield
    except (OperationalError, OSError, ConnectionError) as exc:
        raise ServiceUnavailable(f"the database cannot be reached: {_reason(exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ServiceUnavailable("the database connection was lost") from exc
        raise


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text_ = str(inner).strip().splitlines()
    return text_[0] if text_ else type(inner).__name__


async def ping(engine: AsyncEngine) -> None:
    with database_errors():
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
