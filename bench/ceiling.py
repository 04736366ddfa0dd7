"""The bare stack's ceiling: a plain FastAPI endpoint that inserts one row per request
into the same database, through the same engine settings and server as wafile.

What one accepted-and-delivered message costs is compared with this: the ratio says
how much of the machine wafile's own work takes, whatever the machine.

`python -m bench.ceiling --database-url URL --port N` serves it (as a separate
process, like `wafile serve`); `measure()` starts it, loads it and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, func, insert

from bench.server import wait_until_up
from tests.support import free_port
from wafile.config import Settings
from wafile.db.engine import create_engine, session_factory, transaction
from wafile.ids import new_id

__all__ = ["create_ceiling_app", "measure"]

_rows = Table(
    "bench_ceiling",
    MetaData(),
    Column("id", String(40), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def create_ceiling_app(database_url: str) -> FastAPI:
    # The driver wafile picks for this URL (aiosqlite, asyncpg), and its engine settings.
    settings = Settings.model_validate({"database_url": database_url, "secret_key": "x" * 40})
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(_rows.metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/rows", status_code=201)
    async def add_row(body: dict[str, str]) -> dict[str, str]:
        row_id = new_id("row")
        async with transaction(sessions) as session:
            await session.execute(insert(_rows).values(id=row_id, body=body))
        return {"id": row_id}

    return app


async def _load(base: str, requests: int, concurrency: int) -> float:
    """Requests per second that the endpoint sustains under `concurrency` clients."""
    left = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def client() -> None:
            for i in left:
                (await http.post("/rows", json={"to": f"+1201555{i:04d}"})).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)


def measure(database_url: str, *, requests: int, concurrency: int) -> float:
    """Start the ceiling app as its own process, load it, stop it: requests per second."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.ceiling", "--database-url", database_url]
    proc = subprocess.Popen([*cmd, "--port", str(port)], cwd=Path(__file__).parent.parent)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/docs")
        return asyncio.run(_load(f"http://127.0.0.1:{port}", requests, concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_ceiling_app(args.database_url),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
