"""Fallback deadlines under load: N messages to a phone that never reports delivery on
WhatsApp, each with a plan `whatsapp (fallback_time F) → sms`, so every one times out
and falls back. Measures how late the deadlines fire (the WhatsApp attempt's
`ended_at` against accept time + F: p50/p99/max) and the SMS sends per second.

Pieces are processes of their own, as in production: `wafile serve` (with its
embedded worker, or `--worker-processes N` workers beside it on PostgreSQL), the
WhatsApp emulator (`wafile emulator whatsapp`: the phone's window is open, it never
reports delivery) and the SMS emulator (`wafile emulator sms`: delivers ~0.5 s after
sent). Both senders run at 1 000 messages/s so the limits measured are wafile's.
The target (issue 7): p99 lateness under 1 s.

    python -m bench.fallback --messages 10000 --fallback-time 5
    python -m bench.fallback --messages 10000 --database-url postgresql://USER@HOST:PORT/DB \
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from bench.e2e import NUMBER, PDF, PHONE, add_sender, fresh_database, open_window, quantiles
from bench.server import prepare, serve, wait_settled, wait_until_up, worker
from tests.support import emulator_command, free_port
from wafile.core.senders import MAX_MPS

SMS_ACCOUNT = {
    "account_sid": "AC" + "b" * 32,
    "auth_token": "bench-sms-token",
    "from_numbers": ["+15550004444"],
}


def start_emulators(
    tmp: Path, whatsapp_port: int, sms_port: int, webhook_url: str
) -> list[subprocess.Popen[bytes]]:
    silent = {"number": PHONE, "window_open": True, "deliver_after": None, "read_after": None}
    args, env = emulator_command(
        tmp, whatsapp_port, number=NUMBER, webhook_url=webhook_url, phone=silent
    )
    wa = subprocess.Popen([sys.executable, "-m", "wafile", *args], env=env, cwd=tmp)
    world = tmp / "sms-world.json"
    world.write_text(json.dumps({"accounts": [SMS_ACCOUNT]}))
    sms_env = {k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")}
    sms_cmd = ["emulator", "sms", "--port", str(sms_port), "--world", str(world)]
    sms = subprocess.Popen([sys.executable, "-m", "wafile", *sms_cmd], env=sms_env, cwd=tmp)
    wait_until_up(wa, f"http://127.0.0.1:{whatsapp_port}/_control/world")
    wait_until_up(sms, f"http://127.0.0.1:{sms_port}/_control/world")
    return [wa, sms]


async def add_sms_sender(http: httpx.AsyncClient, sms_url: str) -> None:
    body = {
        "name": "bench-sms",
        "account_sid": SMS_ACCOUNT["account_sid"],
        "auth_token": SMS_ACCOUNT["auth_token"],
        "from_number": SMS_ACCOUNT["from_numbers"][0],
        "base_url": sms_url,
        "mps": MAX_MPS,
        "default": True,
    }
    (await http.post("/v1/sms-senders", json=body)).raise_for_status()


async def accept_all(
    http: httpx.AsyncClient, media_id: str, args: argparse.Namespace, progress: Progress
) -> float:
    """POST every message (closed loop, `--concurrency` at once); seconds taken."""
    task = progress.add_task("accept", total=args.messages)
    gate = asyncio.Semaphore(args.concurrency)
    plan = [{"channel": "whatsapp", "fallback_time": args.fallback_time}, {"channel": "sms"}]

    async def post() -> None:
        async with gate:
            body = {"to": f"+{PHONE}", "media_id": media_id, "channels": plan}
            (await http.post("/v1/messages", json=body)).raise_for_status()
            progress.advance(task)

    start = time.perf_counter()
    await asyncio.gather(*(post() for _ in range(args.messages)))
    return time.perf_counter() - start


async def wait_all_delivered(
    http: httpx.AsyncClient, total: int, seconds: float, progress: Progress
) -> list[dict[str, Any]]:
    """Every message, once all are delivered (by SMS)."""
    found = await wait_settled(http, total, seconds, progress, "delivered by SMS")
    failed = [m for m in found if m["status"] != "delivered"]
    if failed:
        raise SystemExit(f"{failed[0]['id']} {failed[0]['status']}: {failed[0]['reason']}")
    return found


async def main_async(args: argparse.Namespace, url: str, tmp: Path) -> str:
    key = await prepare(url, tmp)
    port, wa_port, sms_port = free_port(), free_port(), free_port()
    embedded = args.worker_processes == 0
    # Workers apart from serve build the SMS StatusCallback URL: they must know serve's.
    settings = {
        "worker_concurrency": str(args.workers_concurrency),
        "public_url": f"http://127.0.0.1:{port}",
    }
    procs = [serve(url, tmp, port, embedded_worker=str(embedded).lower(), **settings)]
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            limits=httpx.Limits(max_connections=args.concurrency),
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            webhook_url = await add_sender(http, f"http://127.0.0.1:{wa_port}")
            await add_sms_sender(http, f"http://127.0.0.1:{sms_port}")
            procs += start_emulators(tmp, wa_port, sms_port, webhook_url)
            procs += [worker(url, tmp, **settings) for _ in range(args.worker_processes)]
            # The phone wrote in: WhatsApp sends go out (and then never deliver).
            await open_window(http, f"http://127.0.0.1:{wa_port}")
            upload = await http.post("/v1/media", files={"file": ("bench.pdf", PDF)})
            upload.raise_for_status()
            with Progress() as progress:
                took = await accept_all(http, upload.json()["id"], args, progress)
                done = await wait_all_delivered(http, args.messages, args.timeout, progress)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    return report(args, url, embedded, took, done)


def report(
    args: argparse.Namespace, url: str, embedded: bool, took: float, done: list[dict[str, Any]]
) -> str:
    late: list[float] = []
    sms_sent: list[datetime] = []
    for m in done:
        wa, sms = m["attempts"]
        assert wa["status"] == "timed_out" and sms["status"] == "delivered", m["id"]
        due = datetime.fromisoformat(wa["queued_at"]).timestamp() + args.fallback_time
        late.append(datetime.fromisoformat(wa["ended_at"]).timestamp() - due)
        sms_sent.append(datetime.fromisoformat(sms["sent_at"]))
    l50, l99 = quantiles(late)
    span = (max(sms_sent) - min(sms_sent)).total_seconds() or 1.0
    processes = (
        "one serve process (API + worker)"
        if embedded
        else f"serve (API) + {args.worker_processes} worker process(es)"
    )
    return (
        f"fallback {url.split(':', 1)[0]}, {processes}, emulators apart, {args.messages} "
        f"messages, fallback_time {args.fallback_time:g} s, {args.concurrency} concurrent "
        f"POSTs, worker concurrency {args.workers_concurrency}:\n"
        f"  accepted/s={args.messages / took:.0f}\n"
        f"  deadline lateness p50={l50 * 1000:.0f}ms p99={l99 * 1000:.0f}ms "
        f"max={max(late) * 1000:.0f}ms (target: p99 < 1000ms)\n"
        f"  SMS sends/s={len(sms_sent) / span:.0f} (first to last SMS sent: {span:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--fallback-time", type=float, default=5.0, help="seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent POSTs")
    parser.add_argument("--workers-concurrency", type=int, default=32, help="jobs at once")
    parser.add_argument(
        "--worker-processes", type=int, default=0, help="0: the worker embedded in serve"
    )
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--database-url", default="", help="PostgreSQL server (default SQLite)")
    args = parser.parse_args()
    if args.worker_processes and not args.database_url:
        parser.error("worker processes need PostgreSQL (--database-url)")
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url, Path(tmp)) as url:
        print(asyncio.run(main_async(args, url, Path(tmp))))


if __name__ == "__main__":
    main()
