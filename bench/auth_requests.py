"""Authenticated requests per second: `GET /v1/account` against `wafile serve`.

Every native API call pays this cost (key lookup + hash check + one transaction), so
it is the floor under all of them. The server is a separate process (as in
production), the load generator shares the machine's two cores with it. Runs on a
throw-away SQLite database by default; a PostgreSQL `--database-url` names a server:
the bench creates a database of its own there and drops it after (as bench.e2e does),
so the database named is never written to.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from rich.progress import Progress

from bench.e2e import fresh_database
from bench.server import prepare, serve
from tests.support import free_port


async def hammer(url: str, path: str, key: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency)
    with Progress() as progress:
        task = progress.add_task(f"GET {path}", total=total)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

            async def worker() -> None:
                while not queue.empty():
                    queue.get_nowait()
                    t0 = time.perf_counter()
                    resp = await http.get(path, headers={"X-API-Key": key})
                    latencies.append(time.perf_counter() - t0)
                    resp.raise_for_status()
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def with_wrk(url: str, key: str, seconds: int, concurrency: int) -> str:
    """wrk (a C load generator) leaves more CPU to the server than Python can."""
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"X-API-Key: {key}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    out = result.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} requests failed:\n{out}")
    return (
        f"rps={float(rps.group(1)) if rps else 0:.0f} p50={p50.group(1) if p50 else '?'} "
        f"p99={p99.group(1) if p99 else '?'} tool=wrk"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--path", default="/v1/account", help="e.g. /healthz for a baseline")
    parser.add_argument("--seconds", type=int, default=10, help="duration with wrk")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url, Path(tmp)) as url:
        key = asyncio.run(prepare(url, Path(tmp)))
        port = free_port()
        server = serve(url, Path(tmp), port)
        try:
            base = f"http://127.0.0.1:{port}"
            if use_wrk:
                figures = with_wrk(base + args.path, key, args.seconds, args.concurrency)
            else:
                t0 = time.perf_counter()
                lat = asyncio.run(hammer(base, args.path, key, args.requests, args.concurrency))
                elapsed = time.perf_counter() - t0
                q = statistics.quantiles(sorted(lat), n=100)
                figures = (
                    f"rps={len(lat) / elapsed:.0f} p50={q[49] * 1000:.1f}ms "
                    f"p99={q[98] * 1000:.1f}ms tool=httpx (client-bound; install wrk)"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    backend = url.split(":", 1)[0]
    print(
        f"auth_requests path={args.path} backend={backend} concurrency={args.concurrency} "
        f"{figures} (server and load generator share the machine's 2 cores)"
    )


if __name__ == "__main__":
    main()
