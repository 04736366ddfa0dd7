"""The app factory: one FastAPI app per `Settings`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from wafile import __version__
from wafile.api.context import AppContext
from wafile.api.dialects import mount_dialects
from wafile.api.metrics import HttpMetrics
from wafile.api.middleware import RequestContextMiddleware
from wafile.api.problems import install_problem_handlers
from wafile.api.routers import (
    account,
    conversations,
    endpoints,
    health,
    media,
    messages,
    providers,
    senders,
    sms_senders,
    usage,
    webhooks,
)
from wafile.api.sandbox import mount_sandbox, sandbox_emulators
from wafile.clock import Clock, SystemClock
from wafile.config import Settings
from wafile.crypto import Sealer
from wafile.db.engine import engine_for, session_factory
from wafile.dispatch.worker import run_embedded_worker
from wafile.services.media import open_media_store

__all__ = ["create_app"]

DESCRIPTION = """
wafile sends files to people over WhatsApp, falls back to SMS, keeps the files in its
own media store and reports what happened to every message.

Authenticate with an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
Every error is an RFC 9457 `application/problem+json` document with a stable `code`.
"""


def create_app(
    settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None
) -> FastAPI:
    engine = engine or engine_for(settings)
    store = open_media_store(settings)
    metrics = HttpMetrics()
    emulators = sandbox_emulators(settings) if settings.sandbox else None
    ctx = AppContext(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        clock=clock or SystemClock(),
        metrics=metrics,
        store=store,
        sealer=Sealer(settings.secret_key),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # One worker in-process (sends, deadlines, sweeps); `wafile worker` runs more.
        worker = run_embedded_worker(engine, ctx.sessions, store, ctx.clock, settings)
        tasks = [asyncio.create_task(worker, name="embedded-worker")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if emulators is not None:
                await emulators.aclose()
            await engine.dispose()

    app = FastAPI(
        title="wafile",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(health.router)
    app.include_router(account.router)
    app.include_router(media.router)
    app.include_router(media.links)
    app.include_router(senders.router)
    app.include_router(providers.router)
    app.include_router(sms_senders.router)
    app.include_router(conversations.router)
    app.include_router(messages.router)
    app.include_router(webhooks.router)
    app.include_router(endpoints.router)
    app.include_router(usage.router)
    if emulators is not None:
        mount_sandbox(app, emulators)
    mount_dialects(app, ctx)  # last: a dialect at the root comes after every native route
    return app
