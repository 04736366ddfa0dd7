"""Messages end to end: `POST /v1/messages` → job queue → worker → Cloud API (the
embedded emulator) → signed status webhooks → delivered, against `wafile serve` in
sandbox mode as a separate process, with its embedded worker (`--worker-processes 0`)
or with N `wafile worker` processes beside it (PostgreSQL).

Prints accepted/s and p50/p99 accept latency (client side), and delivered/s and
p50/p99 accept→delivered latency (server timestamps: created_at → the attempt's
delivered_at). `--rate R` sends at a fixed R requests/s (open loop) instead of as fast
as `--concurrency` clients can. The emulator's pair limit is off and its per-number
limit raised, so what is measured is wafile. The load generator shares the machine's
cores. The same run measures the bare stack's ceiling (bench/ceiling.py: a plain
FastAPI endpoint inserting one row per request into the same database) and prints
delivered/s as a share of it.

    python -m bench.e2e --messages 2000
    python -m bench.e2e --messages 2000 --database-url postgresql://USER@HOST:PORT/DB \
        --worker-processes 2

On PostgreSQL the URL names a server and a database to connect to; the bench creates
a database of its own beside it and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from bench import ceiling
from bench.server import prepare, serve, worker
from tests.support import TEST_SECRET, free_port, make_settings
from wafile.db.engine import create_engine, session_factory, transaction
from wafile.services.api_keys import api_keys
from wafile.services.sandbox import SANDBOX_ACCOUNT, sandbox_credentials

PHONE = "12015550101"  # delivered ~0.5 s after sent
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"b" * 20_000 + b"\ntrailer<<>>\n%%EOF\n"


async def sandbox_key(database_url: str, tmp: Path) -> str:
    engine = create_engine(make_settings(tmp, database_url).effective_database_url)
    async with transaction(session_factory(engine)) as session:
        key = await api_keys.create(
            session, account_name=SANDBOX_ACCOUNT, name="bench", now=datetime.now().astimezone()
        )
    await engine.dispose()
    return key.plaintext


async def prepare_world(http: httpx.AsyncClient, mps: int) -> None:
    control = "/_emulator/whatsapp/_control"
    (await http.patch(f"{control}/settings", json={"pair_rate_limit": False})).raise_for_status()
    creds = sandbox_credentials(TEST_SECRET)
    numbers = (await http.get(f"{control}/numbers")).json()["numbers"]
    [number] = [n for n in numbers if n["phone_number_id"] == creds.whatsapp_phone_number_id]
    number["mps"] = mps
    (
        await http.put(f"{control}/numbers/{number['phone_number_id']}", json=number)
    ).raise_for_status()
    wrote = await http.post(
        f"{control}/phones/{PHONE}/messages",
        json={"to": creds.whatsapp_phone_number_id, "text": "hi"},
    )
    wrote.raise_for_status()
    await asyncio.sleep(1)  # the inbound webhook opens the window


async def accept_all(
    http: httpx.AsyncClient,
    media_id: str,
    args: argparse.Namespace,
    progress: Progress,
) -> tuple[list[float], float]:
    """POST every message; (latencies, seconds). Closed loop, or open loop at `rate`."""
    latencies: list[float] = []
    task = progress.add_task("accept", total=args.messages)
    gate = asyncio.Semaphore(args.concurrency if not args.rate else 1000)

    async def post() -> None:
        async with gate:
            t0 = time.perf_counter()
            resp = await http.post("/v1/messages", json={"to": f"+{PHONE}", "media_id": media_id})
            latencies.append(time.perf_counter() - t0)
            resp.raise_for_status()
            progress.advance(task)

    start = time.perf_counter()
    if not args.rate:
        await asyncio.gather(*(post() for _ in range(args.messages)))
    else:  # each request leaves on schedule, whether or not earlier ones have returned
        sent: list[asyncio.Task[None]] = []
        for i in range(args.messages):
            await asyncio.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
            sent.append(asyncio.create_task(post()))
        await asyncio.gather(*sent)
    return latencies, time.perf_counter() - start


async def wait_delivered(
    http: httpx.AsyncClient, total: int, seconds: float, progress: Progress
) -> list[dict[str, Any]]:
    task = progress.add_task("delivered", total=total)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/v1/messages", params=params)).json()
            done += [m for m in page["data"] if m["status"] in ("delivered", "read")]
            cursor = page["next_cursor"]
            if not cursor:
                break
        progress.update(task, completed=len(done))
        if len(done) >= total:
            return done
        await asyncio.sleep(1)
    raise SystemExit(f"only {len(done)} of {total} delivered within {seconds:.0f} s")


def quantiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(sorted(values), n=100)
    return q[49], q[98]


@contextlib.contextmanager
def fresh_database(url: str, tmp: Path) -> Iterator[str]:
    """SQLite: a file in `tmp`. PostgreSQL: a new database on that server, dropped after."""
    if not url:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    base, _, _ = url.rpartition("/")
    name = f"wafile_bench_{secrets.token_hex(4)}"
    admin = url.replace("postgresql://", "postgresql+asyncpg://", 1)  # what wafile would use
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, sql: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def main_async(args: argparse.Namespace, url: str, tmp: Path, bare: float) -> str:
    postgres = url.startswith("postgresql")
    if postgres:  # serve never migrates PostgreSQL by itself
        await prepare(url, tmp)
    port = free_port()
    embedded = args.worker_processes == 0
    server = serve(
        url,
        tmp,
        port,
        sandbox="true",
        worker_concurrency=str(args.workers_concurrency),
        embedded_worker=str(embedded).lower(),
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        key = await sandbox_key(url, tmp)
        base = f"http://127.0.0.1:{port}"
        for _ in range(args.worker_processes):
            workers.append(
                worker(url, tmp, public_url=base, worker_concurrency=str(args.workers_concurrency))
            )
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(
            base_url=base, timeout=60, limits=limits, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            await prepare_world(http, args.mps)
            upload = await http.post("/v1/media", files={"file": ("bench.pdf", PDF)})
            upload.raise_for_status()
            with Progress() as progress:
                latencies, took = await accept_all(http, upload.json()["id"], args, progress)
                delivered = await wait_delivered(http, args.messages, args.timeout, progress)
    finally:
        for proc in [*workers, server]:
            proc.terminate()
        for proc in [*workers, server]:
            proc.wait(timeout=60)
    created = [datetime.fromisoformat(m["created_at"]) for m in delivered]
    reached = [datetime.fromisoformat(m["attempts"][0]["delivered_at"]) for m in delivered]
    e2e = [(r - c).total_seconds() for c, r in zip(created, reached, strict=True)]
    span = (max(reached) - min(created)).total_seconds()
    a50, a99 = quantiles(latencies)
    d50, d99 = quantiles(e2e)
    rate = f"{args.rate} req/s" if args.rate else f"{args.concurrency} concurrent"
    processes = (
        "one serve process: API + worker"
        if embedded
        else f"serve (API) + {args.worker_processes} worker process(es)"
    )
    delivered_per_s = len(e2e) / span
    return (
        f"e2e {'postgresql' if postgres else 'sqlite'}, {processes}, {args.messages} messages, "
        f"POSTs {rate}, worker concurrency {args.workers_concurrency}:\n"
        f"  accepted/s={args.messages / took:.0f} accept p50={a50 * 1000:.1f}ms "
        f"p99={a99 * 1000:.1f}ms\n"
        f"  delivered/s={delivered_per_s:.0f} accept→delivered p50={d50:.2f}s p99={d99:.2f}s\n"
        f"  bare-insert ceiling={bare:.0f} req/s ({args.concurrency} concurrent); "
        f"delivered/s is {100 * delivered_per_s / bare:.1f}% of it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent POSTs")
    parser.add_argument("--rate", type=float, default=0, help="POSTs per second (open loop)")
    parser.add_argument("--workers-concurrency", type=int, default=32, help="sends at once")
    parser.add_argument(
        "--worker-processes", type=int, default=0, help="0: the worker embedded in serve"
    )
    parser.add_argument("--mps", type=int, default=1000, help="the emulator's per-number limit")
    parser.add_argument("--ceiling-requests", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--database-url", default="", help="PostgreSQL server (default SQLite)")
    args = parser.parse_args()
    if args.worker_processes and not args.database_url:
        parser.error("worker processes need PostgreSQL (--database-url)")
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url, Path(tmp)) as url:
        bare = ceiling.measure(url, requests=args.ceiling_requests, concurrency=args.concurrency)
        print(asyncio.run(main_async(args, url, Path(tmp), bare)))


if __name__ == "__main__":
    main()
