"""Batched status webhooks (Meta posts several statuses in one body), on SQLite and
PostgreSQL: a body is applied exactly as its statuses one body each would be (each
(wamid, status) once, the state machine's order rules, late and early reports, unknown
ids, inbound messages beside statuses), and costs the same number of statements
whether it holds 2 statuses or 12."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_whatsapp_webhooks import PDF, envelope, sandbox_sender
from tests.support import TEST_SECRET, LiveServer
from wafile.clock import SystemClock
from wafile.config import Settings
from wafile.core.jobs import LeaseLost
from wafile.core.message_state import SendSucceeded
from wafile.core.meta_signature import hub_signature
from wafile.crypto import Sealer
from wafile.db.engine import session_factory, transaction
from wafile.db.jobs import JobRepository
from wafile.db.tables import InboundMessageRow, JobRow, ProviderStatusRow, WebhookReceiptRow
from wafile.dispatch.webhook_batch import WebhookBatcher
from wafile.services.messages import SentRecord, messages
from wafile.services.sandbox import SANDBOX_SENDER_ID, sandbox_credentials
from wafile.services.webhooks import WEBHOOK_KIND, webhooks

CREDS = sandbox_credentials(TEST_SECRET)
NOW = int(datetime.now(UTC).timestamp())
USER = "4915112345678"
# What an event shows beyond its times and provider id.
FIELDS = ("kind", "attempt", "status", "provider_code", "reason", "disposition")


class Gateway:
    """A wafile server without a worker: sends are recorded and bodies applied by the
    test, in the order it chooses."""

    def __init__(self, server: LiveServer, engine: AsyncEngine, key: str) -> None:
        self.server, self.engine, self.key = server, engine, key
        self.sessions = session_factory(engine)
        self.media_id = ""

    async def accept(self) -> str:
        async with self.server.client(headers={"Authorization": f"Bearer {self.key}"}) as http:
            if not self.media_id:
                uploaded = await http.post("/v1/media", files={"file": ("a.pdf", PDF)})
                assert uploaded.status_code == 201, uploaded.text
                self.media_id = uploaded.json()["id"]
            accepted = await http.post(
                "/v1/messages", json={"to": f"+{USER}", "media_id": self.media_id}
            )
            assert accepted.status_code == 202, accepted.text
            return str(accepted.json()["id"])

    async def sent(self, message_id: str, wamid: str) -> None:
        """What the send job records when Meta accepted the send."""
        async with transaction(self.sessions) as session:
            at = datetime.now(UTC)
            record = SentRecord(
                message_id=message_id,
                attempt=0,
                sender_id=SANDBOX_SENDER_ID,
                provider_id=wamid,
                event=SendSucceeded(at=at, attempt=0, provider_id=wamid),
            )
            await messages.sent(session, [record], now=at)

    async def receive(self, **value: Any) -> str:
        """Receive one signed body (stored, its job queued); its receipt id."""
        body = envelope(**value)
        async with transaction(self.sessions) as session:
            return await webhooks.receive(
                session,
                Sealer(TEST_SECRET),
                sender_id=SANDBOX_SENDER_ID,
                body=body,
                signature=hub_signature(CREDS.whatsapp_app_secret, body),
                now=datetime.now(UTC),
            )

    async def post(self, **value: Any) -> None:
        """Receive one signed body and apply it (the webhook job), each in a transaction."""
        receipt = await self.receive(**value)
        async with transaction(self.sessions) as session:
            await webhooks.process(session, receipt_id=receipt, now=datetime.now(UTC))

    async def shown(self, message_id: str) -> dict[str, Any]:
        async with self.server.client(headers={"Authorization": f"Bearer {self.key}"}) as http:
            resp = await http.get(f"/v1/messages/{message_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def outcome(self, message_id: str) -> tuple[Any, ...]:
        """What a reader can see of a message, without ids and times."""
        shown = await self.shown(message_id)
        assert all(e["event"].get("kind") for e in shown["events"])
        return (
            shown["status"],
            [a["status"] for a in shown["attempts"]],
            [
                (e["source"], e["applied"], e.get("note"), *(e["event"].get(k) for k in FIELDS))
                for e in shown["events"]
            ],
        )


def status(wamid: str, name: str, at: int, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": name, "timestamp": str(at), "recipient_id": USER, **extra}


def failed(wamid: str, at: int) -> dict[str, Any]:
    error = {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "x"}}
    return status(wamid, "failed", at, errors=[error])


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings.with_overrides(embedded_worker=False)) as s:
        yield s


@pytest.fixture
async def gw(server: LiveServer, engine: AsyncEngine) -> AsyncIterator[Gateway]:
    yield Gateway(server, engine, await sandbox_sender(engine, server))


def scripts(tag: str) -> list[list[dict[str, Any]]]:
    """Status sequences for four messages, as they might arrive: in order, reordered,
    repeated, and a failure after delivery (a late report)."""
    a, b, c, d = (f"wamid.{tag}{i}" for i in "ABCD")
    return [
        [status(a, "sent", NOW), status(a, "delivered", NOW + 1), status(a, "read", NOW + 2)],
        [status(b, "read", NOW + 2), status(b, "sent", NOW), status(b, "delivered", NOW + 1)],
        [status(c, "sent", NOW), status(c, "sent", NOW), status(c, "delivered", NOW + 1)],
        [status(d, "delivered", NOW + 1), failed(d, NOW + 3), status(d, "delivered", NOW + 1)],
    ]


async def test_a_batched_body_is_applied_as_its_statuses_one_by_one(gw: Gateway) -> None:
    one_by_one, batched = scripts("ONE"), scripts("ALL")
    ids_one = [await gw.accept() for _ in one_by_one]
    ids_all = [await gw.accept() for _ in batched]
    for message_id, script in zip(ids_one + ids_all, one_by_one + batched, strict=True):
        await gw.sent(message_id, script[0]["id"])
    for script in one_by_one:
        for item in script:
            await gw.post(statuses=[item])
    # All four messages' statuses interleaved in one body, unknown wamids among them.
    body = [s for i in range(3) for script in batched for s in script[i : i + 1]]
    body.insert(2, status("wamid.NOBODY", "delivered", NOW))
    body.append(status("wamid.NOBODY", "delivered", NOW))
    await gw.post(statuses=body)
    for one, together in zip(ids_one, ids_all, strict=True):
        assert await gw.outcome(together) == await gw.outcome(one)
    assert [(await gw.shown(m))["status"] for m in ids_all] == [
        "read",
        "read",
        "delivered",
        "delivered",  # the failure came after delivery: recorded, never a step back
    ]
    # Each (wamid, status) stored once: repeats in one body and unknown ids too.
    async with transaction(gw.sessions) as session:
        rows = await session.execute(
            select(ProviderStatusRow.provider_id, func.count())
            .group_by(ProviderStatusRow.provider_id)
            .order_by(ProviderStatusRow.provider_id)
        )
        counts = {provider_id: n for provider_id, n in rows}
    assert counts["wamid.ALLA"] == counts["wamid.ALLB"] == 3
    assert counts["wamid.ALLC"] == 2 and counts["wamid.ALLD"] == 2
    assert counts["wamid.NOBODY"] == 1
    # Redelivered (Meta retries the whole body): nothing changes.
    before = [await gw.outcome(m) for m in ids_all]
    await gw.post(statuses=body)
    assert [await gw.outcome(m) for m in ids_all] == before


async def test_statuses_before_the_send_committed_are_applied_by_the_send(
    gw: Gateway,
) -> None:
    early, known = await gw.accept(), await gw.accept()
    await gw.sent(known, "wamid.KNOWN")
    await gw.post(
        statuses=[
            status("wamid.EARLY", "sent", NOW),
            status("wamid.KNOWN", "delivered", NOW + 1),
            status("wamid.EARLY", "delivered", NOW + 1),
        ]
    )
    assert (await gw.shown(known))["status"] == "delivered"
    assert (await gw.shown(early))["status"] == "accepted"  # no wamid recorded yet
    await gw.sent(early, "wamid.EARLY")  # the send's late commit applies both
    shown = await gw.shown(early)
    assert shown["status"] == "delivered"
    assert [e["source"] for e in shown["events"]] == ["api", "send", "whatsapp", "whatsapp"]


async def test_inbound_messages_and_statuses_in_one_body(gw: Gateway) -> None:
    message_id = await gw.accept()
    await gw.sent(message_id, "wamid.MIX")
    inbound = {
        "from": USER,
        "id": "wamid.IN1",
        "timestamp": str(NOW),
        "type": "text",
        "text": {"body": "thanks"},
    }
    await gw.post(
        contacts=[{"profile": {"name": "U"}, "wa_id": USER}],
        messages=[inbound, {**inbound, "id": "wamid.IN2", "text": {"body": "got it"}}],
        statuses=[status("wamid.MIX", "sent", NOW), status("wamid.MIX", "delivered", NOW + 1)],
    )
    assert (await gw.shown(message_id))["status"] == "delivered"
    async with transaction(gw.sessions) as session:
        texts = await session.scalars(select(InboundMessageRow.text).order_by("provider_id"))
        assert list(texts) == ["thanks", "got it"]


async def test_a_bigger_body_costs_no_more_statements(gw: Gateway) -> None:
    """The statements of one body do not grow with its statuses (it was ~7 each)."""

    async def statements(count: int, tag: str) -> int:
        ids = [await gw.accept() for _ in range(count)]
        for i, message_id in enumerate(ids):
            await gw.sent(message_id, f"wamid.{tag}{i}")
        body = [status(f"wamid.{tag}{i}", "delivered", NOW) for i in range(count)]
        seen: list[str] = []

        def count_one(*args: Any) -> None:
            seen.append(args[2])

        event.listen(gw.engine.sync_engine, "before_cursor_execute", count_one)
        try:
            await gw.post(statuses=body)
        finally:
            event.remove(gw.engine.sync_engine, "before_cursor_execute", count_one)
        for message_id in ids:
            assert (await gw.shown(message_id))["status"] == "delivered"
        return len(seen)

    await statements(1, "WARM")  # the first body reads (and caches) the senders
    assert await statements(2, "TWO") == await statements(12, "TWELVE")


async def test_concurrent_jobs_apply_their_bodies_together_as_one_by_one(gw: Gateway) -> None:
    """A worker's webhook jobs running at once apply their bodies in one transaction
    (dispatch/webhook_batch.py), ending as the same bodies applied one by one; a job
    another worker took over applies nothing and stays queued."""
    one_by_one, together = scripts("ONE"), scripts("TOG")
    ids_one = [await gw.accept() for _ in one_by_one]
    ids_tog = [await gw.accept() for _ in together]
    for message_id, script in zip(ids_one + ids_tog, one_by_one + together, strict=True):
        await gw.sent(message_id, script[0]["id"])
    for script in one_by_one:
        for item in script:
            await gw.post(statuses=[item])
    async with transaction(gw.sessions) as session:
        await session.execute(delete(JobRow))  # the jobs of the bodies applied above
    receipts = [await gw.receive(statuses=[item]) for script in together for item in script]
    taken = await gw.receive(statuses=[status("wamid.TOGA", "read", NOW + 9)])
    async with transaction(gw.sessions) as session:
        jobs = await JobRepository(session).claim(
            "test-worker", datetime.now(UTC), 100, timedelta(minutes=1), kinds=[WEBHOOK_KIND]
        )
    by_receipt = {str(job.payload["receipt_id"]): job for job in jobs}
    assert set(by_receipt) == {*receipts, taken}
    batcher = WebhookBatcher()

    def apply(receipt: str, owner: str = "test-worker") -> Awaitable[None]:
        job_id = by_receipt[receipt].id
        return batcher.apply(
            gw.sessions, SystemClock(), job_id=job_id, owner=owner, receipt_id=receipt
        )

    outcomes = await asyncio.gather(
        *(apply(r) for r in receipts), apply(taken, owner="another-worker"), return_exceptions=True
    )
    assert outcomes == [None] * len(receipts) + [outcomes[-1]]
    assert isinstance(outcomes[-1], LeaseLost)
    assert batcher.batches == 1
    for one, tog in zip(ids_one, ids_tog, strict=True):
        assert await gw.outcome(tog) == await gw.outcome(one)
    async with transaction(gw.sessions) as session:
        left = list(await session.scalars(select(JobRow.id)))
        unprocessed = await session.scalars(
            select(WebhookReceiptRow.id).where(WebhookReceiptRow.processed_at.is_(None))
        )
        assert left == [by_receipt[taken].id] and list(unprocessed) == [taken]


@pytest.mark.postgres
async def test_overlapping_bodies_at_once_apply_each_status_once(
    gw: Gateway, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    ids = [await gw.accept() for _ in range(6)]
    wamids = [f"wamid.RACE{i}" for i in range(6)]
    for message_id, wamid in zip(ids, wamids, strict=True):
        await gw.sent(message_id, wamid)
    forward = [status(w, "delivered", NOW) for w in wamids]
    # Two workers, the same statuses in opposite orders: they wait, never deadlock.
    await asyncio.gather(gw.post(statuses=forward), gw.post(statuses=forward[::-1]))
    for message_id in ids:
        shown = await gw.shown(message_id)
        assert shown["status"] == "delivered"
        assert [e["source"] for e in shown["events"]] == ["api", "send", "whatsapp"]
