"""LISTEN on PostgreSQL: an `asyncio.Event` set whenever jobs may have become due.

The job repository sends `NOTIFY wafile_jobs` with every change that makes a job
claimable; a sleeping worker wakes on it instead of waiting out its poll interval.
LISTEN needs a connection of its own that stays open, outside SQLAlchemy's pool, so
this module talks to asyncpg directly.

Notifications are a hint, never the record: the worker still polls, so a lost
connection only makes it slower. The listener reconnects in the background and sets
the event after every (re)connect, since notifications sent while it was away are
gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL, make_url

from wafile.db.engine import safe_url
from wafile.db.jobs import NOTIFY_CHANNEL

__all__ = ["listen", "supports_listen"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 5.0
RECONNECT_FIRST: Final = 0.5
RECONNECT_MAX: Final = 30.0


def supports_listen(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _dsn(url: str | URL) -> str:
    # asyncpg takes the plain libpq form of SQLAlchemy's postgresql+asyncpg URL.
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def listen(
    url: str | URL, channel: str = NOTIFY_CHANNEL, *, first_wait: float = CONNECT_TIMEOUT
) -> AsyncIterator[asyncio.Event]:
    """LISTEN on `channel` while the block runs; yields the event to wait on.

    Returns once the first LISTEN is active (or `first_wait` seconds have passed, the
    reason logged), so a notification committed after entry is not missed.
    """
    wake = asyncio.Event()
    listening = asyncio.Event()
    task = asyncio.create_task(_keep_listening(url, channel, wake, listening), name="job-listen")
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening.wait(), first_wait)
        yield wake
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep_listening(
    url: str | URL, channel: str, wake: asyncio.Event, listening: asyncio.Event
) -> None:
    delay = RECONNECT_FIRST
    where = safe_url(url)
    while True:
        try:
            conn = await asyncpg.connect(_dsn(url), timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("cannot LISTEN on %s (%s); polling only, retry in %.0fs", where, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)
            continue
        lost = asyncio.Event()

        def on_notify(*_args: Any) -> None:
            wake.set()

        def on_lost(_conn: Any, lost: asyncio.Event = lost) -> None:
            lost.set()

        try:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(channel, on_notify)
            delay = RECONNECT_FIRST
            listening.set()
            wake.set()  # what was notified while we were away is lost: look now
            await lost.wait()
            log.warning("LISTEN connection to %s lost; reconnecting", where)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN on %s failed (%s); reconnecting", where, exc)
            await asyncio.sleep(delay)
        finally:
            await _close(conn)


async def _close(conn: Any) -> None:
    try:
        await asyncio.shield(conn.close(timeout=CLOSE_TIMEOUT))
    except Exception:
        conn.terminate()
