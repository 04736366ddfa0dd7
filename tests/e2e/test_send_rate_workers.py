"""The per-sender messages-per-second limit holds across two `wafile worker` processes
on PostgreSQL: the Cloud API emulator (its own limit out of the way) never gets more
than the sender's `mps` plus its burst in any second, every message is sent, and both
workers sent some.

The pieces are the real ones: the API (a live uvicorn server, its embedded worker off),
the emulator as `wafile emulator whatsapp`, and two `wafile worker` processes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.processes import START, Process, wait_answering
from tests.e2e.test_worker import child_env
from tests.support import LiveServer, emulator_command, eventually, free_port, make_key
from wafile.config import Settings
from wafile.core.rate_limit import SendRate

# PostgreSQL only: workers run apart from the API there (SQLite refuses `wafile worker`).
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

# The sender's limit: a slot every 0.25 s, burst 1. Slow enough that a process held up
# for a moment (a busy machine) does not make sends that left on time arrive together.
MPS = 4
MESSAGES = 48  # 12 s at that rate, over twice what the two workers run at once
CONCURRENCY = 10  # WAFILE_WORKER_CONCURRENCY of each worker
SEND = 45.0  # seconds the workers may take to send every message

PHONE = "12015550101"
NUMBER = {
    "phone_number_id": "100000000000888",
    "display_phone_number": "15550000888",
    "waba_id": "200000000000888",
    "access_token": "rate-test-token",
    "app_secret": "rate-test-app-secret",
    "verify_token": "rate-test-verify",
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"m" * 3000 + b"\ntrailer<<>>\n%%EOF\n"
SENDING = "sending, "  # the worker's debug line for each message it sends on a slot


def start_emulator(tmp_path: Path, port: int, webhook_url: str) -> Process:
    """The emulator, its per-number limit far above the sender's and its pair limit off
    (one phone gets every message), so wafile's limit is the only one."""
    phone = {"number": PHONE, "deliver_after": None, "read_after": None}
    args, env = emulator_command(
        tmp_path, port, number=NUMBER, webhook_url=webhook_url, phone=phone
    )
    emulator = Process(args, env, tmp_path, "emulator")
    wait_answering(emulator, f"http://127.0.0.1:{port}/_control/world")
    return emulator


def start_worker(settings: Settings, tmp_path: Path, name: str) -> Process:
    env = {
        **child_env(settings),
        "WAFILE_WORKER_CONCURRENCY": str(CONCURRENCY),
        "WAFILE_WORKER_POLL_SECONDS": "0.5",
        "WAFILE_LOG_LEVEL": "debug",  # a line per message sent: who sent how many
    }
    return Process(["worker"], env, tmp_path, name)


def most_in_one_second(times: list[float]) -> int:
    """The most of `times` in any window [t, t + 1 s)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def sends(engine: AsyncEngine) -> int:
    """Sends Meta accepted, as wafile recorded them (the phone never reports delivery)."""
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM attempt_refs")) or 0)


async def test_two_workers_together_keep_the_senders_rate(
    engine: AsyncEngine, settings: Settings, tmp_path: Path, processes: list[Process]
) -> None:
    settings = settings.with_overrides(embedded_worker=False, sandbox=False, log_level="warning")
    key = await make_key(engine)
    emulator_port = free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    with LiveServer(settings) as api:
        async with (
            httpx.AsyncClient(
                base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as http,
            httpx.AsyncClient(base_url=emulator_url, timeout=30) as emulator,
        ):
            created = await http.post(
                "/v1/senders",
                json={
                    **NUMBER,
                    "name": "rated",
                    "graph_url": emulator_url,
                    "mps": MPS,
                    "default": True,
                },
            )
            assert created.status_code == 201, created.text
            processes.append(start_emulator(tmp_path, emulator_port, created.json()["webhook_url"]))
            workers = [start_worker(settings, tmp_path, f"worker-{n}") for n in (1, 2)]
            processes.extend(workers)

            async def started() -> bool:
                for worker in workers:
                    worker.check_alive()
                return all("started" in worker.log() for worker in workers)

            await eventually(started, "both workers started", seconds=START)

            # The user writes first: the signed webhook opens the 24-hour window.
            wrote = await emulator.post(
                f"/_control/phones/{PHONE}/messages",
                json={"to": NUMBER["phone_number_id"], "text": "hello"},
            )
            assert wrote.status_code == 201, wrote.text

            async def window_open() -> bool:
                state = await http.get(f"/v1/conversations/+{PHONE}")
                return bool(state.json()["window_open"])

            await eventually(window_open, "the window opened by the user", seconds=START)

            uploaded = await http.post(
                "/v1/media", files={"file": ("Kontoauszug.pdf", PDF, "application/pdf")}
            )
            assert uploaded.status_code == 201, uploaded.text
            media_id = uploaded.json()["id"]

            async def accept(i: int) -> str:
                body = {"to": f"+{PHONE}", "media_id": media_id, "caption": f"rate-{i:03d}"}
                resp = await http.post("/v1/messages", json=body)
                assert resp.status_code == 202, resp.text
                return str(resp.json()["id"])

            began = time.monotonic()
            accepted = await asyncio.gather(*(accept(i) for i in range(MESSAGES)))
            assert len(set(accepted)) == MESSAGES

            async def all_sent() -> bool:
                for worker in workers:
                    worker.check_alive()
                return await sends(engine) == MESSAGES

            await eventually(all_sent, f"{MESSAGES} messages sent", seconds=SEND)
            took = time.monotonic() - began
            inbox = await emulator.get(f"/_control/phones/{PHONE}/inbox")
            assert inbox.status_code == 200, inbox.text
            received = inbox.json()["messages"]
            for worker in workers:
                assert worker.terminate() == 0, worker.log()

    # Every message reached the phone, once.
    assert sorted(m["caption"] for m in received) == [f"rate-{i:03d}" for i in range(MESSAGES)]
    # When each POST reached the emulator: never more than the limit in a second.
    allowed = MPS + SendRate(mps=MPS).burst
    busiest = most_in_one_second([float(m["sent_at"]) for m in received])
    assert busiest <= allowed, f"{busiest} sends in one second, the limit is {allowed}"
    # Both workers sent some.
    sent_by = [worker.log().count(SENDING) for worker in workers]
    assert all(n > 0 for n in sent_by), sent_by
    assert sum(sent_by) == MESSAGES, sent_by
    print(
        f"\n{MESSAGES} messages at {MPS}/s through two workers in {took:.1f} s: "
        f"at most {busiest} in any second (limit {allowed}), sent by each {sent_by}"
    )
