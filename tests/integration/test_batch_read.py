"""Batched reads (db/batch_read.py) on SQLite and PostgreSQL: keys asked for together
go in one query, each caller gets its own row (None when there is none, or when it is
another account's), a failed query fails only the callers of its batch. The lookups the
API and the send job make through it are checked in test_accept_batches and
test_send_preparation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.integration.test_send_rate import add_sender
from tests.support import NOW
from wafile.config import Settings
from wafile.core.media import Media
from wafile.db.batch_read import BatchRead, batches
from wafile.db.engine import autocommit, create_engine, session_factory, transaction
from wafile.db.media import MediaRepository
from wafile.services.accounts import accounts
from wafile.services.messages import NewMessage, messages

FILE = Media(
    id="med_a",
    account_id="",
    filename="a.pdf",
    mime_type="application/pdf",
    category="document",
    sha256="a" * 64,
    file_size=10,
    created_at=NOW,
    expires_at=NOW + timedelta(days=30),
    whatsapp_sendable=True,
    whatsapp_sent_as="document",
    whatsapp_reason="",
    source_url=None,
)


async def two_accounts_files(engine: AsyncEngine) -> tuple[Media, Media]:
    """One file in each of two accounts."""
    async with transaction(session_factory(engine)) as session:
        acme, _ = await accounts.ensure(session, "acme", now=NOW)
        other, _ = await accounts.ensure(session, "other", now=NOW)
        mine = replace(FILE, id="med_mine", account_id=acme.id)
        theirs = replace(FILE, id="med_theirs", account_id=other.id)
        for item in (mine, theirs):
            await MediaRepository(session).add(item)
    return mine, theirs


async def read_media(
    session: AsyncSession, keys: list[tuple[str, str]]
) -> Mapping[tuple[str, str], Media]:
    return await MediaRepository(session).get_many(keys)


async def test_keys_asked_together_are_read_in_one_query(engine: AsyncEngine) -> None:
    mine, theirs = await two_accounts_files(engine)
    sessions = session_factory(engine)
    reads = BatchRead(read_media, what="media")
    acme = mine.account_id
    keys = [
        (acme, mine.id),
        (acme, mine.id),  # asked twice: read once, both callers answered
        (acme, theirs.id),  # another account's file is not this account's
        (acme, "med_nope"),
        (theirs.account_id, theirs.id),
    ]
    got = await asyncio.gather(*(reads.get(sessions, key) for key in keys))
    assert got == [mine, mine, None, None, theirs]
    assert reads.queries == 1
    # A quiet process reads at once, alone.
    assert await reads.get(sessions, (acme, mine.id)) == mine
    assert reads.queries == 2


async def test_batches_are_bounded(engine: AsyncEngine) -> None:
    mine, _ = await two_accounts_files(engine)
    sessions = session_factory(engine)
    seen: list[list[tuple[str, str]]] = []

    async def read(
        session: AsyncSession, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Media]:
        seen.append(keys)
        return await MediaRepository(session).get_many(keys)

    reads = BatchRead(read, what="media", max_batch=2)
    keys = [(mine.account_id, f"med_{i}") for i in range(4)] + [(mine.account_id, mine.id)]
    got = await asyncio.gather(*(reads.get(sessions, key) for key in keys))
    assert got == [None] * 4 + [mine]
    assert [len(batch) for batch in seen] == [2, 2, 1]
    assert sorted(k for batch in seen for k in batch) == sorted(keys)


async def test_a_failed_query_fails_its_batch_alone(engine: AsyncEngine) -> None:
    mine, _ = await two_accounts_files(engine)
    sessions = session_factory(engine)
    calls = 0

    async def flaky(
        session: AsyncSession, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Media]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return await MediaRepository(session).get_many(keys)

    reads = BatchRead(flaky, what="media")
    key = (mine.account_id, mine.id)
    failed = await asyncio.gather(
        *(reads.get(sessions, key) for _ in range(3)), return_exceptions=True
    )
    assert [str(e) for e in failed] == ["the database went away"] * 3
    assert await reads.get(sessions, key) == mine  # the next batch reads afresh
    assert reads.queries == 1  # failed queries are not counted


def test_only_postgresql_batches(engine: AsyncEngine) -> None:
    # SQLite's single pooled connection may be held by a caller waiting for its key.
    assert batches(session_factory(engine)) is (engine.dialect.name == "postgresql")


async def test_a_check_never_waits_for_a_batch_while_it_holds_a_connection(
    settings: Settings, engine: AsyncEngine
) -> None:
    """`messages.check` looks the file up before its session runs a statement: with a
    pool of one connection, requests whose session had read a sender (the senders'
    cache is cold after a change) and then waited for the batch would hold that one
    connection while the batch waited for it."""
    if not batches(session_factory(engine)):
        pytest.skip("batched reads are PostgreSQL's")
    sender = await add_sender(engine, mps=80)  # clears the senders' cache
    async with transaction(session_factory(engine)) as session:
        account = await accounts.get(session, sender.account_id)
        item = replace(FILE, id="med_one", account_id=account.id)
        await MediaRepository(session).add(item)
    tiny = create_engine(
        settings.effective_database_url, pool_size=1, max_overflow=0, pool_timeout=5
    )
    try:
        sessions = session_factory(tiny)
        reads = BatchRead(read_media, what="media")

        async def media_of(account_id: str, media_id: str) -> Media | None:
            return await reads.get(sessions, (account_id, media_id))

        async def check(to: str) -> str:
            async with autocommit(sessions) as session:
                checked = await messages.check(
                    session,
                    account=account,
                    request=NewMessage(to=to, media_id=item.id, sender="main"),
                    idempotency_key=None,
                    now=NOW,
                    media_of=media_of,
                )
            return checked.message.media_id or ""

        got = await asyncio.wait_for(
            asyncio.gather(*(check(f"+1201555{i:04d}") for i in range(4))), timeout=20
        )
        assert got == [item.id] * 4
    finally:
        await tiny.dispose()
