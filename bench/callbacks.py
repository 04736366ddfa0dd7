"""Customer callbacks under load: how many signed callback deliveries per second reach
a local receiver, and how long after the status change each one arrives.

Messages go end to end as in bench/e2e.py (`wafile serve` with its embedded worker,
or N `wafile worker` processes on PostgreSQL; the WhatsApp emulator as a process of
its own, its phone reporting `delivered` 0.5 s after each send and never `read`), with
one webhook endpoint for every event. Each message makes EVENTS_PER_MESSAGE events
(attempt.queued, attempt.sent, message.in_progress, attempt.delivered,
message.delivered), so `--rate 500` (events/s) posts 100 messages/s, open loop.
`--endpoints K` registers K endpoints, so each event is K deliveries: the callback
path at K times the rate the message path makes events.

The receiver is a process of its own (`--receiver`): it verifies every signature with
the `standardwebhooks` package, answers 200 at once and notes when each event arrived.
Printed latencies, receive time minus:

- the change: `message.updated_at` in the event, wafile's clock when it applied the
  change (in the same transaction that stored the delivery);
- `at`: the event's own time. For `*.delivered` that is WhatsApp's report time, which
  Meta (and the emulator) give in whole seconds, so it adds 0-1 s of rounding and the
  report's trip to wafile; for the other events it is wafile's clock, as above.

    python -m bench.callbacks --messages 400
    python -m bench.callbacks --messages 2000 --rate 500
    python -m bench.callbacks --messages 100 --rate 20 --endpoints 10
    python -m bench.callbacks --messages 2000 --database-url postgresql://USER@HOST:PORT/DB \
        --worker-processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import uvicorn
from rich.progress import Progress
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bench.e2e import (
    PDF,
    accept_all,
    add_batch_options,
    add_sender,
    check_batch_options,
    client_limits,
    fresh_database,
    open_window,
    start_emulator,
)
from bench.server import cpu_seconds, prepare, serve, wait_until_up, worker
from tests.support import free_port

EVENTS_PER_MESSAGE: Final = 5
SECRET_ENV: Final = "BENCH_CALLBACK_SECRET"


# The receiver (a process of its own) ---------------------------------------------------


def create_receiver_app(secrets: list[str]) -> Starlette:
    """POST /events/{i}: verify with endpoint i's secret, note (arrival time, event
    fields), 200. GET /_count, /_received."""
    webhooks = [Webhook(secret) for secret in secrets]
    got: list[dict[str, Any]] = []
    refused = 0

    async def receive(request: Request) -> Response:
        nonlocal refused
        body = await request.body()
        arrived = time.time()
        try:
            webhook = webhooks[int(request.path_params["index"])]
            event = webhook.verify(body, dict(request.headers))
        except (WebhookVerificationError, ValueError, IndexError):
            refused += 1
            return PlainTextResponse("bad signature", status_code=401)
        got.append(
            {
                "arrived": arrived,
                "endpoint": request.path_params["index"],
                "id": event["id"],
                "type": event["type"],
                "sequence": event["sequence"],
                "at": event["at"],
                "message_id": event["message"]["id"],
                "changed": event["message"]["updated_at"],
            }
        )
        return PlainTextResponse("ok")

    async def count(_: Request) -> Response:
        delivered = sum(e["type"] == "message.delivered" for e in got)
        return JSONResponse({"events": len(got), "delivered": delivered, "refused": refused})

    async def received(_: Request) -> Response:
        return JSONResponse(got)

    return Starlette(
        routes=[
            Route("/_count", count),
            Route("/_received", received),
            Route("/events/{index}", receive, methods=["POST"]),
        ]
    )


def start_receiver(port: int, secrets: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.callbacks", "--receiver", "--port", str(port)]
    env = {**os.environ, SECRET_ENV: json.dumps(secrets)}
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parent.parent, env=env)
    wait_until_up(proc, f"http://127.0.0.1:{port}/_count")
    return proc


# The run ----------------------------------------------------------------------------


async def wait_received(
    receiver: str, messages: int, seconds: float, progress: Progress
) -> list[dict[str, Any]]:
    """Until `messages` x EVENTS_PER_MESSAGE events arrived (one endpoint's share of a
    message counts as a message); the receiver's notes."""
    total = messages * EVENTS_PER_MESSAGE
    task = progress.add_task("callbacks", total=total)
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=receiver, timeout=60) as http:
        while True:
            count = (await http.get("/_count")).json()
            progress.update(task, completed=count["events"])
            if count["events"] >= total and count["delivered"] >= messages:
                return list((await http.get("/_received")).json())
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"only {count['events']} of {total} events ({count['delivered']} of "
                    f"{messages} message.delivered) arrived within {seconds:.0f} s"
                )
            await asyncio.sleep(0.5)


async def main_async(args: argparse.Namespace, url: str, tmp: Path) -> str:
    key = await prepare(url, tmp)  # serve never migrates PostgreSQL by itself
    port, emulator_port, receiver_port = free_port(), free_port(), free_port()
    embedded = args.worker_processes == 0
    loopback = "true"  # the receiver is plain http on 127.0.0.1 (sandbox is off)
    procs = [
        serve(
            url,
            tmp,
            port,
            worker_concurrency=str(args.workers_concurrency),
            embedded_worker=str(embedded).lower(),
            callback_allow_loopback_http=loopback,
        )
    ]
    try:
        # Idle connections are dropped before uvicorn's 5 s keep-alive closes them: a
        # POST sent on one the server is closing fails with ReadError, ending the run.
        limits = client_limits(args)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            limits=limits,
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            emulator_url = f"http://127.0.0.1:{emulator_port}"
            webhook_url = await add_sender(http, emulator_url)
            procs.append(
                start_emulator(
                    tmp, emulator_port, webhook_url, args.webhook_batch, args.webhook_batch_wait
                )
            )
            for _ in range(args.worker_processes):
                procs.append(
                    worker(
                        url,
                        tmp,
                        worker_concurrency=str(args.workers_concurrency),
                        callback_allow_loopback_http=loopback,
                    )
                )
            secrets = []
            for i in range(args.endpoints):
                where = f"http://127.0.0.1:{receiver_port}/events/{i}"
                # Message events only: the user's message that opens the window would
                # be an inbound.received event, which the count does not expect.
                events = ["message.*", "attempt.*"]
                made = await http.post("/v1/webhooks", json={"url": where, "events": events})
                made.raise_for_status()
                secrets.append(made.json()["secret"])
            procs.append(start_receiver(receiver_port, secrets))
            await open_window(http, emulator_url)
            upload = await http.post("/v1/media", files={"file": ("bench.pdf", PDF)})
            upload.raise_for_status()
            load = argparse.Namespace(
                messages=args.messages,
                concurrency=args.concurrency,
                rate=args.rate / EVENTS_PER_MESSAGE,
            )
            # serve and the workers, not the emulator (procs[1]) nor the receiver (last)
            ours = [procs[0], *procs[2:-1]]
            cpu_before = [cpu_seconds(p.pid) for p in ours]
            with Progress() as progress:
                await accept_all(http, upload.json()["id"], load, progress)
                got = await wait_received(
                    f"http://127.0.0.1:{receiver_port}",
                    args.messages * args.endpoints,
                    args.timeout,
                    progress,
                )
            cpu_after = [cpu_seconds(p.pid) for p in ours]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    cpu = _cpu_line(cpu_before, cpu_after, len(got) // args.endpoints)
    return report(args, url, embedded, got, cpu)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _figures(values: list[float]) -> str:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"p50={pick(0.50) * 1000:.0f}ms p99={pick(0.99) * 1000:.0f}ms "
        f"max={ordered[-1] * 1000:.0f}ms"
    )


def _cpu_line(before: list[float | None], after: list[float | None], events: int) -> str:
    """wafile's CPU per event (serve and workers, from the first message sent to the last
    callback received: the message path that makes the events is included, as is the
    bench's polling of the receiver, which does not touch wafile)."""
    if None in before or None in after or not events:
        return "CPU per event: not measured (needs /proc)"
    used = [b - a for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    parts = ", ".join(f"{1000 * u / events:.2f}" for u in used)
    return f"CPU per event={1000 * sum(used) / events:.2f}ms (serve, workers: {parts})"


def report(
    args: argparse.Namespace, url: str, embedded: bool, got: list[dict[str, Any]], cpu: str
) -> str:
    arrived = [e["arrived"] for e in got]
    changed = [_ts(e["changed"]) for e in got]
    from_change = [a - c for a, c in zip(arrived, changed, strict=True)]
    from_at = [e["arrived"] - _ts(e["at"]) for e in got]
    span = max(arrived) - min(arrived)
    made = max(changed) - min(changed)
    by_type: dict[str, list[float]] = defaultdict(list)
    for event, latency in zip(got, from_change, strict=True):
        by_type[event["type"]].append(latency)
    # Order and duplicates, per message, as a receiver would see them.
    seen: dict[str, list[int]] = defaultdict(list)
    for event in sorted(got, key=lambda e: e["arrived"]):
        seen[f"{event['endpoint']} {event['message_id']}"].append(event["sequence"])
    out_of_order = sum(seq != sorted(seq) for seq in seen.values())
    duplicates = len(got) - len({(e["endpoint"], e["id"]) for e in got})
    processes = (
        "one serve process: API + worker; the emulator and the receiver apart"
        if embedded
        else f"serve (API) + {args.worker_processes} worker process(es); emulator, receiver apart"
    )
    lines = [
        f"callbacks {url.split(':', 1)[0]}, {processes}, {args.messages} messages x "
        f"{EVENTS_PER_MESSAGE} events x {args.endpoints} endpoint(s), offered "
        f"{args.rate:g} events/s ({args.rate * args.endpoints:g} deliveries/s), "
        f"worker concurrency {args.workers_concurrency}:",
        f"  deliveries={len(got)} events made/s={len(got) / args.endpoints / made:.0f} "
        f"(over {made:.1f} s) delivered/s={len(got) / span:.0f} (over {span:.1f} s)",
        f"  change→callback {_figures(from_change)}",
        f"  at→callback     {_figures(from_at)}  (delivered: WhatsApp's whole-second time)",
        f"  duplicates={duplicates} messages with an event out of order={out_of_order}",
        f"  {cpu}",
        "  change→callback by type:",
        *(f"    {kind:<20} {_figures(values)}" for kind, values in sorted(by_type.items())),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument(
        "--rate", type=float, default=500, help="offered events/s (messages/s x 5), open loop"
    )
    parser.add_argument(
        "--endpoints", type=int, default=1, help="webhook endpoints: deliveries per event"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="client connections")
    parser.add_argument("--workers-concurrency", type=int, default=32, help="jobs at once")
    parser.add_argument(
        "--worker-processes", type=int, default=0, help="0: the worker embedded in serve"
    )
    add_batch_options(parser)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--database-url", default="", help="PostgreSQL server (default SQLite)")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        app = create_receiver_app(json.loads(os.environ[SECRET_ENV]))
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return
    if args.worker_processes and not args.database_url:
        parser.error("worker processes need PostgreSQL (--database-url)")
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    check_batch_options(parser, args)
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url, Path(tmp)) as url:
        print(asyncio.run(main_async(args, url, Path(tmp))))


if __name__ == "__main__":
    main()
