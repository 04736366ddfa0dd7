"""Messages end to end: `POST /v1/messages` → job queue → worker → Cloud API (the
WhatsApp emulator, `wafile emulator whatsapp`, a process of its own as Meta is another
machine) → signed status webhooks → delivered, against `wafile serve` as a separate
process, with its embedded worker (`--worker-processes 0`) or with N `wafile worker`
processes beside it (PostgreSQL).

Prints accepted/s and p50/p99 accept latency (client side), and delivered/s and
p50/p99 accept→delivered latency (server timestamps: created_at → the attempt's
delivered_at). `--rate R` sends at a fixed R requests/s (open loop) instead of as fast
as `--concurrency` clients can. The emulator's pair limit is off and its per-number
limit raised, so what is measured is wafile. The load generator shares the machine's
cores. The same run measures the bare stack's ceiling (bench/ceiling.py: a plain
FastAPI endpoint inserting one row per request into the same database) and prints
delivered/s as a share of it. `--webhook-batch N` has the emulator post up to N statuses
per webhook, as Meta batches them under load (`--webhook-batch-wait`: how long a batch
waits to fill); the default posts one status per webhook.

    python -m bench.e2e --messages 2000
    python -m bench.e2e --messages 2000 --database-url postgresql://USER@HOST:PORT/DB \
        --worker-processes 2 [--worker-nice 10]

`--accept-only` runs serve without a worker and sends nothing: the API's accept
latency and CPU alone, as when the workers run on other machines.

    python -m bench.e2e --accept-only --rate 200 --messages 4000 --database-url ...

`--worker-nice N` starts the worker processes with WAFILE_WORKER_NICE=N: they yield
the cores to the API (and to the load generator and the emulator) when the machine
has no spare CPU.

On PostgreSQL the URL names a server and a database to connect to; the bench creates
a database of its own beside it and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from bench import ceiling
from bench.server import cpu_seconds, prepare, serve, wait_settled, wait_until_up, worker
from tests.support import emulator_command, free_port
from wafile.core.senders import MAX_MPS
from wafile.db.engine import create_engine

PHONE = "12015550101"
WARM_UP = 20  # untimed POSTs first (warm_up)
OPEN_LOOP_CONNECTIONS = 1000  # client connections at most, at a fixed --rate
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"b" * 20_000 + b"\ntrailer<<>>\n%%EOF\n"
# The business number, as the sender wafile is given and as the emulator knows it.
NUMBER = {
    "phone_number_id": "100000000000555",
    "display_phone_number": "15550000555",
    "waba_id": "200000000000555",
    "access_token": "bench-token",
    "app_secret": "bench-app-secret",
    "verify_token": "bench-verify",
}


async def add_sender(http: httpx.AsyncClient, emulator_url: str) -> str:
    """A sender at Meta's highest tier wired to the emulator; its webhook URL."""
    body = {**NUMBER, "name": "bench", "graph_url": emulator_url, "mps": MAX_MPS, "default": True}
    created = await http.post("/v1/senders", json=body)
    created.raise_for_status()
    return str(created.json()["webhook_url"])


async def open_window(http: httpx.AsyncClient, emulator_url: str) -> None:
    """The phone writes in (through the emulator's webhook): wafile's 24-hour window opens."""
    async with httpx.AsyncClient(base_url=emulator_url) as emulator:
        wrote = await emulator.post(
            f"/_control/phones/{PHONE}/messages",
            json={"to": NUMBER["phone_number_id"], "text": "hi"},
        )
    wrote.raise_for_status()
    for _ in range(300):
        if (await http.get(f"/v1/conversations/+{PHONE}")).json()["window_open"]:
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the 24-hour window never opened")


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """`--webhook-batch` and `--webhook-batch-wait` (the emulator's status batching)."""
    parser.add_argument(
        "--webhook-batch",
        type=int,
        default=1,
        help="most statuses per webhook POST, as Meta batches them (1: one each)",
    )
    parser.add_argument(
        "--webhook-batch-wait",
        type=float,
        default=0.2,
        help="seconds a webhook batch waits to fill before it is posted",
    )


def check_batch_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.webhook_batch < 1 or args.webhook_batch_wait < 0:
        parser.error("--webhook-batch must be >= 1 and --webhook-batch-wait >= 0")


def client_limits(args: argparse.Namespace, **extra: float) -> httpx.Limits:
    """Closed loop: `--concurrency` connections. Open loop (`--rate`): enough that every
    request leaves on schedule; queued in httpx's pool instead, thousands of requests
    made the load generator itself CPU-bound (its queue scans are quadratic) and its
    clock ran before the request left, so the server was blamed for the client."""
    connections = args.concurrency if not args.rate else OPEN_LOOP_CONNECTIONS
    # Idle connections close before uvicorn's 5 s keep-alive would close them under a
    # request being sent (seen as httpx.ReadError in open-loop runs).
    return httpx.Limits(max_connections=connections, **{"keepalive_expiry": 1.0, **extra})


def start_emulator(
    tmp: Path, port: int, webhook_url: str, batch: int = 1, batch_wait: float = 0.2
) -> subprocess.Popen[bytes]:
    """`wafile emulator whatsapp` (Meta is another machine): no throttling, one phone with
    the window open that reports delivered 0.5 s after a send, and never read; up to
    `batch` statuses per webhook POST, waiting `batch_wait` s for more."""
    phone = {"number": PHONE, "window_open": True, "deliver_after": 0.5, "read_after": None}
    args, env = emulator_command(tmp, port, number=NUMBER, webhook_url=webhook_url, phone=phone)
    cmd = [sys.executable, "-m", "wafile", *args]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp)
    wait_until_up(proc, f"http://127.0.0.1:{port}/_control/world")
    batching = {"webhook_batch_max": batch, "webhook_batch_wait": batch_wait}
    httpx.patch(f"http://127.0.0.1:{port}/_control/settings", json=batching).raise_for_status()
    return proc


async def warm_up(http: httpx.AsyncClient, media_id: str) -> None:
    """A few POSTs before the clock starts, so that the timed ones do not pay for the
    client's first connections and the server's first statements (compiled, prepared)."""
    body = {"to": f"+{PHONE}", "media_id": media_id}
    for _ in range(WARM_UP // 4):
        answers = await asyncio.gather(*(http.post("/v1/messages", json=body) for _ in range(4)))
        for answer in answers:
            answer.raise_for_status()


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

    # The load generator shares the machine; its own collector's pauses (100 ms and
    # more with thousands of requests in flight) held responses it had already
    # received and were counted as the server's latency. Its garbage waits for the end.
    gc.collect()
    gc.disable()
    try:
        took = await _post_all(post, args)
    finally:
        gc.enable()
    return latencies, took


async def _post_all(post: Callable[[], Awaitable[None]], args: argparse.Namespace) -> float:
    start = time.perf_counter()
    if not args.rate:
        await asyncio.gather(*(post() for _ in range(args.messages)))
    else:  # each request leaves on schedule, whether or not earlier ones have returned
        sent: list[asyncio.Task[None]] = []
        for i in range(args.messages):
            await asyncio.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
            sent.append(asyncio.create_task(post()))
        await asyncio.gather(*sent)
    return time.perf_counter() - start


async def wait_delivered(
    http: httpx.AsyncClient, total: int, seconds: float, progress: Progress
) -> list[dict[str, Any]]:
    found = await wait_settled(http, total, seconds, progress, "delivered")
    failed = [m for m in found if m["status"] == "failed"]
    if failed:
        raise SystemExit(f"{failed[0]['id']} failed: {failed[0]['reason']}")
    return found


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
    key = await prepare(url, tmp)  # serve never migrates PostgreSQL by itself
    port, emulator_port = free_port(), free_port()
    embedded = args.worker_processes == 0 and not args.accept_only
    procs = [
        serve(
            url,
            tmp,
            port,
            worker_concurrency=str(args.workers_concurrency),
            embedded_worker=str(embedded).lower(),
        )
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        limits = client_limits(args)
        async with httpx.AsyncClient(
            base_url=base, timeout=60, limits=limits, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            webhook_url = await add_sender(http, f"http://127.0.0.1:{emulator_port}")
            procs.append(
                start_emulator(
                    tmp, emulator_port, webhook_url, args.webhook_batch, args.webhook_batch_wait
                )
            )
            for _ in range(0 if args.accept_only else args.worker_processes):
                procs.append(
                    worker(
                        url,
                        tmp,
                        worker_concurrency=str(args.workers_concurrency),
                        worker_nice=str(args.worker_nice),
                    )
                )
            if not args.accept_only:  # a worker applies it
                await open_window(http, f"http://127.0.0.1:{emulator_port}")
            upload = await http.post("/v1/media", files={"file": ("bench.pdf", PDF)})
            upload.raise_for_status()
            ours = [procs[0], *procs[2:]]  # serve and the workers, not the emulator
            media_id = upload.json()["id"]
            await warm_up(http, media_id)
            cpu_before = [cpu_seconds(p.pid) for p in ours]  # their delivery is counted
            with Progress() as progress:
                latencies, took = await accept_all(http, media_id, args, progress)
                if args.accept_only:
                    cpu_after = [cpu_seconds(p.pid) for p in ours]
                    return _accept_only(args, latencies, took, bare, cpu_before, cpu_after)
                delivered = await wait_delivered(
                    http, args.messages + WARM_UP, args.timeout, progress
                )
            cpu_after = [cpu_seconds(p.pid) for p in ours]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    created = [datetime.fromisoformat(m["created_at"]) for m in delivered]
    reached = [datetime.fromisoformat(m["attempts"][0]["delivered_at"]) for m in delivered]
    e2e = [(r - c).total_seconds() for c, r in zip(created, reached, strict=True)]
    span = (max(reached) - min(created)).total_seconds()
    d50, d99 = quantiles(e2e)
    processes = (
        "one serve process: API + worker; the emulator apart"
        if embedded
        else f"serve (API) + {args.worker_processes} worker process(es)"
        + (f" at nice {args.worker_nice}" if args.worker_nice else "")
        + "; the emulator apart"
    )
    delivered_per_s = len(e2e) / span
    batching = (
        f"up to {args.webhook_batch} statuses per webhook ({args.webhook_batch_wait} s wait)"
        if args.webhook_batch > 1
        else "one status per webhook"
    )
    return (
        f"e2e {url.split(':', 1)[0]}, {processes}, {args.messages} messages, "
        f"POSTs {_load(args)}, worker concurrency {args.workers_concurrency}, {batching}:\n"
        f"  {_accept_line(args, latencies, took)}\n"
        f"  delivered/s={delivered_per_s:.0f} accept→delivered p50={d50:.2f}s p99={d99:.2f}s\n"
        f"  bare-insert ceiling={bare:.0f} req/s ({args.concurrency} concurrent); "
        f"delivered/s is {100 * delivered_per_s / bare:.1f}% of it\n"
        f"  {_cpu_line(cpu_before, cpu_after, args.messages)}"
    )


def _load(args: argparse.Namespace) -> str:
    return f"{args.rate} req/s" if args.rate else f"{args.concurrency} concurrent"


def _accept_line(args: argparse.Namespace, latencies: list[float], took: float) -> str:
    a50, a99 = quantiles(latencies)
    return (
        f"accepted/s={args.messages / took:.0f} accept p50={a50 * 1000:.1f}ms "
        f"p99={a99 * 1000:.1f}ms"
    )


def _accept_only(
    args: argparse.Namespace,
    latencies: list[float],
    took: float,
    bare: float,
    before: list[float | None],
    after: list[float | None],
) -> str:
    return (
        f"accept only, {args.database_url.split(':', 1)[0] or 'sqlite'}: serve (API) "
        f"without a worker, {args.messages} messages, POSTs {_load(args)}:\n"
        f"  {_accept_line(args, latencies, took)} (bare-insert ceiling={bare:.0f} req/s)\n"
        f"  {_cpu_line(before, after, args.messages)}"
    )


def _cpu_line(before: list[float | None], after: list[float | None], messages: int) -> str:
    """wafile's CPU per message (serve and workers, the bench's polling included)."""
    if None in before or None in after:
        return "CPU per message: not measured (needs /proc)"
    used = [b - a for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    parts = ", ".join(f"{1000 * u / messages:.1f}" for u in used)
    return f"CPU per message={1000 * sum(used) / messages:.1f}ms (serve, workers: {parts})"


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
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        choices=range(20),
        metavar="N",
        help="WAFILE_WORKER_NICE of the worker processes (0-19)",
    )
    parser.add_argument(
        "--accept-only",
        action="store_true",
        help="the API alone: serve without a worker, no sends (accept latency and CPU)",
    )
    add_batch_options(parser)
    parser.add_argument("--ceiling-requests", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--database-url", default="", help="PostgreSQL server (default SQLite)")
    args = parser.parse_args()
    check_batch_options(parser, args)
    if args.worker_processes and not args.database_url:
        parser.error("worker processes need PostgreSQL (--database-url)")
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url, Path(tmp)) as url:
        bare = ceiling.measure(url, requests=args.ceiling_requests, concurrency=args.concurrency)
        print(asyncio.run(main_async(args, url, Path(tmp), bare)))


if __name__ == "__main__":
    main()
