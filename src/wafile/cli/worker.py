"""`wafile worker`: run a job worker on its own, next to or instead of `wafile serve`.

On PostgreSQL start as many as the load needs, on as many machines. SQLite is
single-process by design: `wafile serve` already runs the worker there, so this
refuses unless `--force` (docs/jobs.md says what that costs).

SIGTERM or Ctrl-C stops claiming and lets running jobs finish (WAFILE_WORKER_GRACE_SECONDS),
then releases the rest; a second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Annotated

import typer

from wafile.cli.common import clock, engine, err, errors_to_exit, run, settings_for, settle_heap
from wafile.config import Settings
from wafile.db.engine import safe_url, session_factory
from wafile.dispatch.jobs import WorkerDeps
from wafile.dispatch.worker import Worker, WorkerOptions, run_worker
from wafile.services.database import prepare_database
from wafile.services.media import open_media_store

__all__ = ["lower_priority", "worker"]

SQLITE_REFUSAL = (
    "WAFILE_DATABASE_URL is SQLite, which takes one process: `wafile serve` already runs "
    "the worker there. Use PostgreSQL to run workers apart, or pass --force to run this "
    "worker anyway (it competes with the server for SQLite's single write lock)."
)


@errors_to_exit
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Jobs run at once [WAFILE_WORKER_CONCURRENCY]."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run even on SQLite (see docs/jobs.md).")
    ] = False,
) -> None:
    """Run a job worker until SIGTERM or Ctrl-C (PostgreSQL: any number of them)."""
    settings = settings_for()
    if settings.is_sqlite and not force:
        err.print(f"[red]error:[/red] {SQLITE_REFUSAL}", highlight=False)
        raise typer.Exit(2)
    if not settings.public_url:
        # Workers build the links in fallback SMS and the SMS StatusCallback URL.
        err.print(
            f"[yellow]warning:[/yellow] WAFILE_PUBLIC_URL is not set: SMS links and status "
            f"callbacks will point at {settings.effective_public_url}; give workers the "
            "same WAFILE_PUBLIC_URL as serve",
            highlight=False,
        )
    lower_priority(settings.worker_nice)
    run(_work(settings, WorkerOptions.from_settings(settings, concurrency=concurrency)))


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by `nice` (WAFILE_WORKER_NICE): sending can
    wait a moment, a caller of the API should not. Where the system has no `nice`
    (Windows), nothing."""
    if nice and hasattr(os, "nice"):
        os.nice(nice)


async def _work(settings: Settings, options: WorkerOptions) -> None:
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    signals = 0

    def started(w: Worker) -> None:
        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                err.print(
                    f"stopping: waiting up to {options.grace:g}s for running jobs "
                    "(signal again to stop at once)",
                    highlight=False,
                )
                w.stop()
            elif main is not None:
                main.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        err.print(
            f"worker {w.owner} on {safe_url(settings.effective_database_url)}: "
            f"{options.concurrency} at once, kinds {', '.join(sorted(w.handlers))}",
            highlight=False,
        )

    try:
        async with engine(settings) as db:
            await prepare_database(db, settings)
            deps = WorkerDeps(
                sessions=session_factory(db),
                clock=clock,
                settings=settings,
                store=open_media_store(settings),
            )
            settle_heap()
            with contextlib.suppress(asyncio.CancelledError):  # the second signal
                await run_worker(db, deps, options=options, on_start=started)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
