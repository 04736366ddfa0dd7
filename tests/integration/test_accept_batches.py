"""Messages accepted by concurrent requests are stored together (db/group_commit.py), on
SQLite and PostgreSQL: one commit for many, every message and its send job stored, and
a message that cannot be stored fails only its own request. On PostgreSQL the files
they name are read together too (db/batch_read.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer
from wafile.api.context import AppContext
from wafile.db.engine import autocommit, session_factory, transaction
from wafile.db.group_commit import GroupCommit
from wafile.db.tables import JobRow, MessageRow
from wafile.errors import Conflict
from wafile.services.accounts import accounts
from wafile.services.messages import Checked, MessageView, NewMessage, messages

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"g" * 2000 + b"\ntrailer<<>>\n%%EOF\n"
REQUESTS = 24


# No embedded worker: the stored jobs stay to be counted.
pytestmark = pytest.mark.no_embedded_worker


async def test_concurrent_posts_share_commits_and_each_is_stored_with_its_job(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    ctx: AppContext = live_server.server.config.app.state.ctx
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        uploaded = await http.post("/v1/media", files={"file": ("g.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
        before = ctx.accepted.commits
        posts = [
            http.post(
                "/v1/messages",
                json={
                    "to": f"+1201555{i:04d}",
                    "media_id": uploaded.json()["id"],
                    "reference": str(i),
                },
            )
            for i in range(REQUESTS)
        ]
        answers = await asyncio.gather(*posts)
        assert [a.status_code for a in answers] == [202] * REQUESTS, answers[0].text
        ids = [a.json()["id"] for a in answers]
        assert [a.json()["reference"] for a in answers] == [str(i) for i in range(REQUESTS)]
        shown = await http.get(f"/v1/messages/{ids[-1]}")
        assert shown.json()["events"][0]["source"] == "api"
    assert 1 <= ctx.accepted.commits - before < REQUESTS
    # The file each message names was read with the other requests' (PostgreSQL).
    if engine.dialect.name == "postgresql":
        assert 1 <= ctx.media_reads.queries < REQUESTS
    else:
        assert ctx.media_reads.queries == 0
    async with transaction(session_factory(engine)) as session:
        stored = set(await session.scalars(select(MessageRow.id)))
        keys = set(await session.scalars(select(JobRow.dedupe_key)))
    assert set(ids) <= stored
    assert {f"send:{i}:0" for i in ids} <= keys


async def test_a_message_that_cannot_be_stored_fails_alone(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        uploaded = await http.post("/v1/media", files={"file": ("g.pdf", PDF, "application/pdf")})
        assert uploaded.status_code == 201, uploaded.text
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    async with autocommit(sessions) as reads:
        account = await accounts.get_by_name(reads, "sandbox")
        checked = [
            await messages.check(
                reads,
                account=account,
                request=NewMessage(to=f"+1201555{i:04d}", media_id=uploaded.json()["id"]),
                idempotency_key=None,
                now=now,
            )
            for i in range(4)
        ]
    # Its account was deleted between the check and the commit: the row cannot refer to it.
    gone = replace(checked[1], message=replace(checked[1].message, account_id="acc_gone"))

    async def store(session: AsyncSession, batch: list[Checked]) -> list[MessageView | Exception]:
        return list(await messages.store(session, batch, now=now))

    group: GroupCommit[Checked, MessageView] = GroupCommit(store, what="messages")
    items = [checked[0], gone, checked[2], checked[3]]
    outcomes = await asyncio.gather(
        *(group.submit(sessions, item) for item in items), return_exceptions=True
    )
    # A 409 that says what happened, never a database error (a 500).
    assert isinstance(outcomes[1], Conflict) and "was removed" in str(outcomes[1])
    good = [o for i, o in enumerate(outcomes) if i != 1]
    assert all(isinstance(o, MessageView) for o in good)
    async with transaction(sessions) as session:
        stored = set(await session.scalars(select(MessageRow.id)))
    assert stored == {checked[i].message.id for i in (0, 2, 3)}
