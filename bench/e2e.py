"""Messages end to end: `POST /v1/messages` → job queue → worker → Cloud API (the
embedded emulator) → signed status webhooks → delivered, against `wafile serve` in
sandbox mode as a separate process (API and one worker together).

Prints accepted/s and p50/p99 accept latency (client side), and delivered/s and
p50/p99 accept→delivered latency (server timestamps: created_at → the attempt's
delivered_at). The emulator's pair limit is off and its per-number limit raised, so
what is measured is wafile. The load generator shares the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from bench.server import prepare, serve
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
    http: httpx.AsyncClient, media_id: str, total: int, concurrency: int, progress: Progress
) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    ids: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    task = progress.add_task("accept", total=total)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            t0 = time.perf_counter()
            resp = await http.post("/v1/messages", json={"to": f"+{PHONE}", "media_id": media_id})
            latencies.append(time.perf_counter() - t0)
            resp.raise_for_status()
            ids.append(resp.json()["id"])
            progress.advance(task)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, ids, time.perf_counter() - start


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


async def main_async(args: argparse.Namespace, tmp: Path) -> str:
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    if args.database_url:  # serve never migrates PostgreSQL by itself
        await prepare(url, tmp)
    port = free_port()
    server = serve(url, tmp, port, sandbox="true", worker_concurrency=str(args.workers_concurrency))
    try:
        key = await sandbox_key(url, tmp)
        base = f"http://127.0.0.1:{port}"
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(
            base_url=base, timeout=30, limits=limits, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            await prepare_world(http, args.mps)
            upload = await http.post("/v1/media", files={"file": ("bench.pdf", PDF)})
            upload.raise_for_status()
            with Progress() as progress:
                latencies, _, took = await accept_all(
                    http, upload.json()["id"], args.messages, args.concurrency, progress
                )
                delivered = await wait_delivered(http, args.messages, args.timeout, progress)
    finally:
        server.terminate()
        server.wait(timeout=60)
    created = [datetime.fromisoformat(m["created_at"]) for m in delivered]
    reached = [datetime.fromisoformat(m["attempts"][0]["delivered_at"]) for m in delivered]
    e2e = [(r - c).total_seconds() for c, r in zip(created, reached, strict=True)]
    span = (max(reached) - min(created)).total_seconds()
    a50, a99 = quantiles(latencies)
    d50, d99 = quantiles(e2e)
    backend = url.split(":", 1)[0]
    return (
        f"e2e backend={backend} messages={args.messages} concurrency={args.concurrency} "
        f"worker_concurrency={args.workers_concurrency}: accepted/s={args.messages / took:.0f} "
        f"accept p50={a50 * 1000:.1f}ms p99={a99 * 1000:.1f}ms; delivered/s={len(e2e) / span:.0f} "
        f"accept→delivered p50={d50:.2f}s p99={d99:.2f}s (one serve process: API + worker)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent POSTs")
    parser.add_argument("--workers-concurrency", type=int, default=32, help="sends at once")
    parser.add_argument("--mps", type=int, default=1000, help="the emulator's per-number limit")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(asyncio.run(main_async(args, Path(tmp))))


if __name__ == "__main__":
    main()
