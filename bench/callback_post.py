"""The CPU one signed callback POST costs wafile's client (channels/callback_http.py,
through the SSRF guard), with `--concurrency` requests at once to a local receiver
(a process of its own that answers 200 at once): the part of a callback's cost that
is HTTP, apart from the database. CPU time of this process per POST, so the figure
holds on a busy machine better than a rate would.

    python -m bench.callback_post
    python -m bench.callback_post --posts 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from bench.server import wait_until_up
from tests.support import free_port
from wafile.channels.callback_http import CallbackPoster
from wafile.channels.guarded_http import OutboundGuard

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks test vector's
BODY = '{"id":"evt_1","type":"attempt.sent","sequence":2,"message":{"id":"msg_1"}}' * 10


async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 at once to any request (the body read and dropped)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def run(url: str, posts: int, concurrency: int) -> str:
    async with CallbackPoster(guard=OutboundGuard(loopback_by_name=True)) as poster:

        async def post() -> None:
            at = datetime.now(UTC)
            result = await poster.post(url, BODY, event_id="evt_1", secret=SECRET, at=at)
            if result.error is not None:
                raise SystemExit(f"the receiver refused a POST: {result.error}")

        for _ in range(2 * concurrency):  # open the connections first
            await post()
        slots = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with slots:
                await post()

        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.gather(*(one() for _ in range(posts)))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return (
        f"callback POST, {posts} posts, {concurrency} at once: CPU per post="
        f"{1000 * cpu / posts:.3f}ms ({posts / wall:.0f} posts/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        uvicorn.run(receiver, host="127.0.0.1", port=args.port, log_level="warning")
        return
    port = free_port()
    cmd = [sys.executable, "-m", "bench.callback_post", "--receiver", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parent.parent)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/")
        print(asyncio.run(run(f"http://127.0.0.1:{port}/events", args.posts, args.concurrency)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
