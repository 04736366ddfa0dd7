"""What every `wafile` command shares: consoles, settings, errors to exit codes, sessions."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from wafile.clock import SystemClock
from wafile.config import Settings, load_settings
from wafile.db.engine import engine_for, session_factory, transaction
from wafile.errors import ConfigError, WafileError
from wafile.logs import setup_logging
from wafile.services.database import prepare_database

__all__ = [
    "clock",
    "engine",
    "err",
    "errors_to_exit",
    "out",
    "run",
    "session",
    "settings_for",
    "when",
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
clock = SystemClock()

P = ParamSpec("P")
R = TypeVar("R")


def errors_to_exit(fn: Callable[P, R]) -> Callable[P, R]:
    """A planned error becomes one line on stderr and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except WafileError as exc:
            err.print(f"[red]error:[/red] {exc.detail}", markup=True, highlight=False)
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper


def settings_for(**overrides: Any) -> Settings:
    settings = load_settings().with_overrides(**overrides)
    setup_logging(settings.log_level, settings.log_format)
    return settings


def settle_heap() -> None:
    """Take what a long-running process has loaded out of the garbage collector's sight.

    Once the code is imported and the app built, most of the heap (modules, classes,
    SQLAlchemy's tables and mappers, FastAPI's routes) lives as long as
    the process. Every full collection walked all of it again: in a busy server,
    pauses of 100 ms and more, straight into a request's latency, and about a tenth
    of a worker's CPU. `gc.freeze` moves it to a generation the collector skips; what
    is made later is collected as before."""
    gc.collect()  # garbage of the start-up is not kept for ever
    gc.freeze()


def run(coro: Coroutine[Any, Any, R]) -> R:
    """Run a command's coroutine on uvloop where it is installed (uvicorn[standard]
    brings it on Linux and macOS), as `serve` does: a worker process spends much of
    its time in the event loop and in socket calls, which uvloop makes cheaper."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coro)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without uvicorn's extras
        return None
    return uvloop.new_event_loop


@asynccontextmanager
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = engine_for(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One unit of work on a database whose schema is current (SQLite: migrated)."""
    async with engine(settings) as db:
        await prepare_database(db, settings)
        async with transaction(session_factory(db)) as unit:
            yield unit


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"
