"""A `wafile worker` killed with SIGKILL in the middle of a 2 000-message run on
PostgreSQL: a second worker finishes it, every message ends delivered, and the Cloud
API emulator got each message once, or twice when its send was in flight at the kill
(at least once delivery, never more than that).

Every piece is a process of its own, as in production: the API (`wafile serve`, its
embedded worker off), the Cloud API emulator (`wafile emulator whatsapp`) and the
`wafile worker`s. The emulator's inbox tells how often each message was POSTed to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.processes import Process, wait_answering
from tests.e2e.test_worker import child_env
from tests.support import emulator_command, free_port, make_key
from wafile.config import Settings
from wafile.db.engine import session_factory, transaction
from wafile.db.webhooks import WebhookRepository
from wafile.services.messages import SEND_KIND

# PostgreSQL only: workers run apart from the API there (SQLite refuses `wafile worker`).
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

MESSAGES = 2000  # the run: issue 6 asks for 2 000
KILL_AT = 500  # messages sent when the first worker is killed: well inside the run
ACCEPTING = 16  # concurrent POST /v1/messages
# WAFILE_WORKER_CONCURRENCY, the database pool's size: at most this many sends in flight
# at the kill, so at most this many sent twice.
CONCURRENCY = 20
LEASE = 10.0  # WAFILE_JOB_LEASE_SECONDS: the killed worker's jobs are claimed again after this
ACCEPT_WAIT = 150.0  # seconds the API may take to accept all MESSAGES
KILL_WAIT = 120.0  # seconds the first worker may take to send KILL_AT messages
FINISH = 240.0  # seconds the second worker may take to get every message delivered

PHONE = "12015550101"
NUMBER = {
    "phone_number_id": "100000000000777",
    "display_phone_number": "15550000777",
    "waba_id": "200000000000777",
    "access_token": "crash-test-token",
    "app_secret": "crash-test-app-secret",
    "verify_token": "crash-test-verify",
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"k" * 5000 + b"\ntrailer<<>>\n%%EOF\n"


def caption(i: int) -> str:
    """What tells one message from another at the emulator."""
    return f"crash-{i:04d}"


def start_api(settings: Settings, tmp_path: Path, port: int) -> Process:
    """`wafile serve` without its embedded worker, and without the sandbox: the API only.
    A process of its own, so the load of 2 000 requests does not share this one's GIL."""
    env = {
        **child_env(settings),
        "WAFILE_EMBEDDED_WORKER": "false",
        "WAFILE_SANDBOX": "false",
        "WAFILE_LOG_LEVEL": "warning",
    }
    api = Process(["serve", "--port", str(port)], env, tmp_path, "api")
    wait_answering(api, f"http://127.0.0.1:{port}/healthz")
    return api


def start_emulator(tmp_path: Path, port: int, webhook_url: str) -> Process:
    """`wafile emulator whatsapp` that never throttles, with one phone that has the
    window open and reports `delivered` half a second after a send (never `read`)."""
    phone = {"number": PHONE, "window_open": True, "deliver_after": 0.5, "read_after": None}
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
        "WAFILE_JOB_LEASE_SECONDS": str(LEASE),
        # Leases that expired are noticed by polling (no NOTIFY says so).
        "WAFILE_WORKER_POLL_SECONDS": "0.5",
        "WAFILE_LOG_LEVEL": "warning",
    }
    return Process(["worker"], env, tmp_path, name)


async def accept_all(http: httpx.AsyncClient, media_id: str) -> dict[str, str]:
    """POST every message, ACCEPTING at a time; caption -> message id."""
    todo = iter(range(MESSAGES))
    accepted: dict[str, str] = {}

    async def poster() -> None:
        for i in todo:
            body = {"to": f"+{PHONE}", "media_id": media_id, "caption": caption(i)}
            resp = await http.post("/v1/messages", json=body)
            assert resp.status_code == 202, resp.text
            accepted[caption(i)] = resp.json()["id"]

    try:
        async with asyncio.timeout(ACCEPT_WAIT):
            await asyncio.gather(*(poster() for _ in range(ACCEPTING)))
    except TimeoutError:
        raise AssertionError(
            f"only {len(accepted)} of {MESSAGES} accepted in {ACCEPT_WAIT:.0f} s"
        ) from None
    return accepted


async def statuses(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, count(*) FROM messages GROUP BY status"))
        return Counter({str(status): int(n) for status, n in rows})


async def queue(engine: AsyncEngine, killed: Collection[str]) -> str:
    """The job queue by kind, for a failure message; `killed`: the dead worker's owner ids."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, count(*), count(lease_owner), "
                "count(*) FILTER (WHERE lease_owner = ANY(:killed)), count(dead_at), "
                "max(attempts), max(last_error) FROM jobs GROUP BY kind ORDER BY kind"
            ),
            {"killed": list(killed)},
        )
        return "; ".join(
            f"{kind}: {n} left, {leased} leased ({by_killed} by the killed worker), "
            f"{dead} dead, attempts <= {tries}, an error: {error}"
            for kind, n, leased, by_killed, dead, tries, error in rows
        )


async def wait_until(
    check: Callable[[Counter[str]], bool],
    engine: AsyncEngine,
    seconds: float,
    what: str,
    alive: Process,
    killed: Collection[str] = (),
) -> Counter[str]:
    """Poll the messages' statuses until `check` holds; fail naming where they are stuck."""
    deadline = time.monotonic() + seconds
    while True:
        counts = await statuses(engine)
        if check(counts):
            return counts
        alive.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not within {seconds:.0f} s. Messages by status: {dict(counts)}. "
                f"Jobs: {await queue(engine, killed) or 'none'}"
            )
        await asyncio.sleep(0.25)


async def in_flight(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    """The messages whose send job a worker holds (claimed, never completed), and the
    lease owners holding any job."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, payload->>'message_id', lease_owner FROM jobs "
                "WHERE lease_owner IS NOT NULL"
            )
        )
        held, owners = set(), set()
        for kind, message_id, owner in rows:
            owners.add(str(owner))
            if kind == SEND_KIND:
                held.add(str(message_id))
        return held, owners


async def provider_ids(engine: AsyncEngine) -> dict[str, list[str]]:
    """Message id -> the provider ids wafile recorded for its sends."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT message_id, provider_id FROM attempt_refs"))
        found: dict[str, list[str]] = {}
        for message_id, provider_id in rows:
            found.setdefault(str(message_id), []).append(str(provider_id))
        return found


def sent(counts: Counter[str]) -> int:
    return sum(counts.values()) - counts["accepted"]


async def prepare(
    http: httpx.AsyncClient, engine: AsyncEngine, emulator_url: str
) -> tuple[str, str]:
    """A sender wired to the emulator, the window open, a PDF uploaded; the PDF's id
    and the webhook URL the emulator must post to."""
    created = await http.post(
        "/v1/senders",
        # The highest messages-per-second limit: what is measured is not the limiter.
        json={**NUMBER, "name": "crash", "graph_url": emulator_url, "mps": 1000, "default": True},
    )
    assert created.status_code == 201, created.text
    sender = created.json()
    # The user wrote recently: the window is open. (tests/integration/test_messages.py
    # opens it through an inbound webhook; here that webhook's job would race the sends.)
    async with transaction(session_factory(engine)) as session:
        await WebhookRepository(session).saw_user(sender["id"], PHONE, datetime.now(UTC))
    uploaded = await http.post(
        "/v1/media", files={"file": ("Rechnung.pdf", PDF, "application/pdf")}
    )
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json()["id"]), str(sender["webhook_url"])


async def test_a_worker_killed_mid_run_loses_no_message_and_sends_none_thrice(
    engine: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
    processes: list[Process],
    record_property: Callable[[str, Any], None],
) -> None:
    key = await make_key(engine)
    api_port, emulator_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    processes.append(start_api(settings, tmp_path, api_port))
    async with (
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as http,
        httpx.AsyncClient(base_url=emulator_url, timeout=30) as emulator,
    ):
        media_id, webhook_url = await prepare(http, engine, emulator_url)
        processes.append(start_emulator(tmp_path, emulator_port, webhook_url))

        began = time.monotonic()
        accepted = await accept_all(http, media_id)
        accept_took = time.monotonic() - began
        assert len(set(accepted.values())) == MESSAGES

        began = time.monotonic()
        first = start_worker(settings, tmp_path, "worker-1")
        processes.append(first)
        await wait_until(lambda c: sent(c) >= KILL_AT, engine, KILL_WAIT, f"{KILL_AT} sent", first)
        # Kill while sends are in flight: status webhooks go first (a higher priority),
        # so there are moments when the worker holds none.
        for _ in range(200):
            if (await in_flight(engine))[0]:
                break
            await asyncio.sleep(0.02)
        first.kill()
        killed_after = time.monotonic() - began
        # Its claimed, uncommitted sends: only these may reach the emulator twice.
        held, killed = await in_flight(engine)
        at_kill = sent(await statuses(engine))
        assert at_kill < MESSAGES, "the run ended before the kill: raise MESSAGES"
        assert 1 <= len(held) <= CONCURRENCY, held

        second = start_worker(settings, tmp_path, "worker-2")
        processes.append(second)
        await wait_until(
            lambda c: c["delivered"] == MESSAGES,
            engine,
            FINISH,
            "every message delivered after the kill",
            second,
            killed,
        )
        took = time.monotonic() - began
        assert second.terminate() == 0, second.log()

        inbox = await emulator.get(f"/_control/phones/{PHONE}/inbox")
        assert inbox.status_code == 200, inbox.text
        received = inbox.json()["messages"]

    wamids: dict[str, list[str]] = {}  # caption -> what the emulator answered each POST
    for item in received:
        wamids.setdefault(item["caption"], []).append(item["id"])
    posts = Counter({c: len(ids) for c, ids in wamids.items()})
    assert set(posts) == set(accepted), "the emulator got messages never accepted, or missed some"
    assert max(posts.values()) <= 2, posts.most_common(5)
    twice = {accepted[c] for c, n in posts.items() if n == 2}
    # Any other second POST (a send retried after a timeout) would be a surprise here.
    assert twice <= held, "sent twice though not in flight at the kill"
    # wafile recorded one send per message, and one the emulator really received.
    refs = await provider_ids(engine)
    for c, message_id in accepted.items():
        assert len(refs.get(message_id, [])) == 1, (c, refs.get(message_id))
        assert refs[message_id][0] in wamids[c], c

    figures = {
        "accepted_per_second": round(MESSAGES / accept_took),
        "sent_at_kill": at_kill,
        "in_flight_at_kill": len(held),
        "duplicates": len(twice),
        "delivered_per_second": round(MESSAGES / took),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(
        f"\n{MESSAGES} messages accepted in {accept_took:.1f} s; first worker killed "
        f"{killed_after:.1f} s after its start; all delivered {took:.1f} s after it; {figures}"
    )
