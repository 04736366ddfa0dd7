"""Accounts and API keys through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from wafile.core.accounts import LAST_USED_RESOLUTION
from wafile.core.api_keys import parse_key
from wafile.db.engine import session_factory, transaction
from wafile.errors import (
    AccountExists,
    AccountNotFound,
    ApiKeyNotFound,
    Unauthorized,
    ValidationFailed,
)
from wafile.services.accounts import accounts
from wafile.services.api_keys import ApiKeyService, api_keys
from wafile.services.sandbox import ensure_sandbox

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_account_names_are_unique_and_the_transaction_survives(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        acme = await accounts.create(s, "acme", now=NOW)
        with pytest.raises(AccountExists):
            await accounts.create(s, "acme", now=NOW)
        # The conflict rolled back only its savepoint: the same transaction goes on.
        await accounts.create(s, "globex", now=NOW)
    async with transaction(sessions) as s:
        assert [a.name for a in await accounts.list_all(s)] == ["acme", "globex"]
        got = await accounts.get_by_name(s, "acme")
        assert got == acme
        assert got.created_at == NOW and got.created_at.tzinfo is not None
        with pytest.raises(AccountNotFound):
            await accounts.get_by_name(s, "nobody")
        with pytest.raises(ValidationFailed):
            await accounts.create(s, "bad name", now=NOW)


async def test_key_lifecycle(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        await accounts.create(s, "acme", now=NOW)
        created = await api_keys.create(s, account_name="acme", name="billing", now=NOW)
    plaintext = created.plaintext
    parsed = parse_key(plaintext)
    assert parsed is not None and parsed.public_id == created.key.id
    assert created.key.prefix == f"wfk_{created.key.id}"
    assert plaintext not in repr(created)

    async with transaction(sessions) as s:
        account = await api_keys.authenticate(s, plaintext, now=NOW)
        assert account.name == "acme"
        listed = await api_keys.list_keys(s, account_name="acme")
    assert len(listed) == 1
    key = listed[0]
    assert (key.name, key.last_used_at, key.revoked_at) == ("billing", NOW, None)

    # last_used_at moves only once per resolution window.
    async with transaction(sessions) as s:
        await api_keys.authenticate(s, plaintext, now=NOW + timedelta(seconds=5))
        assert (await api_keys.list_keys(s))[0].last_used_at == NOW
        later = NOW + LAST_USED_RESOLUTION
        await api_keys.authenticate(s, plaintext, now=later)
        assert (await api_keys.list_keys(s))[0].last_used_at == later

    async with transaction(sessions) as s:
        revoked = await api_keys.revoke(s, key.prefix, now=NOW + timedelta(hours=1))
        assert revoked.revoked_at == NOW + timedelta(hours=1)
        again = await api_keys.revoke(s, key.id, now=NOW + timedelta(hours=2))
        assert again.revoked_at == revoked.revoked_at  # the first revocation stands
    async with transaction(sessions) as s:
        with pytest.raises(Unauthorized):
            await api_keys.authenticate(s, plaintext, now=NOW)


async def test_a_checked_key_is_reused_for_a_moment(engine: AsyncEngine) -> None:
    """Every request checks its key: one read serves the next second's requests, and a
    revocation by another process (here: another service) counts when it is over."""
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        await accounts.create(s, "acme", now=NOW)
        plaintext = (await api_keys.create(s, account_name="acme", now=NOW)).plaintext
    server, other_process = ApiKeyService(), ApiKeyService()
    server._recent.ttl = 0.5  # shorter than KEY_TTL_SECONDS, for the test's sake
    statements: list[str] = []

    def count(_c: object, _cur: object, statement: str, *_: object) -> None:
        statements.append(statement)

    for _ in range(2):  # the first writes last_used_at, so the second reads it again
        async with transaction(sessions) as s:
            assert (await server.authenticate(s, plaintext, now=NOW)).name == "acme"
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with transaction(sessions) as s:
            assert (await server.authenticate(s, plaintext, now=NOW)).name == "acme"
        assert statements == []
        async with transaction(sessions) as s:
            await other_process.revoke(s, plaintext, now=NOW)
        async with transaction(sessions) as s:
            await server.authenticate(s, plaintext, now=NOW)  # still the read kept
        await asyncio.sleep(0.6)
        async with transaction(sessions) as s:
            with pytest.raises(Unauthorized):
                await server.authenticate(s, plaintext, now=NOW)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_revocation_counts_at_once_in_its_own_process(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        await accounts.create(s, "acme", now=NOW)
        plaintext = (await api_keys.create(s, account_name="acme", now=NOW)).plaintext
        await api_keys.authenticate(s, plaintext, now=NOW)
        await api_keys.revoke(s, plaintext, now=NOW)
        with pytest.raises(Unauthorized):
            await api_keys.authenticate(s, plaintext, now=NOW)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "nonsense",
        "wfk_000000000000_" + "0" * 48,  # well-formed, unknown
    ],
)
async def test_bad_keys_are_unauthorized(engine: AsyncEngine, presented: str) -> None:
    async with transaction(session_factory(engine)) as s:
        with pytest.raises(Unauthorized):
            await api_keys.authenticate(s, presented, now=NOW)


async def test_right_id_wrong_secret_is_unauthorized(engine: AsyncEngine) -> None:
    async with transaction(session_factory(engine)) as s:
        await accounts.create(s, "acme", now=NOW)
        created = await api_keys.create(s, account_name="acme", now=NOW)
        forged = f"wfk_{created.key.id}_{'0' * 48}"
        with pytest.raises(Unauthorized):
            await api_keys.authenticate(s, forged, now=NOW)


async def test_keys_need_an_account_and_revoke_needs_a_key(engine: AsyncEngine) -> None:
    async with transaction(session_factory(engine)) as s:
        with pytest.raises(AccountNotFound):
            await api_keys.create(s, account_name="ghost", now=NOW)
        with pytest.raises(ApiKeyNotFound):
            await api_keys.revoke(s, "wfk_000000000000", now=NOW)


async def test_keys_are_listed_per_account(engine: AsyncEngine) -> None:
    async with transaction(session_factory(engine)) as s:
        for name in ("a", "b"):
            await accounts.create(s, name, now=NOW)
            await api_keys.create(s, account_name=name, now=NOW)
        assert [k.account_name for k in await api_keys.list_keys(s, account_name="b")] == ["b"]
        assert len(await api_keys.list_keys(s)) == 2


async def test_sandbox_key_is_made_once(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        first = await ensure_sandbox(s, now=NOW)
    assert first is not None
    async with transaction(sessions) as s:
        assert await ensure_sandbox(s, now=NOW) is None
        assert (await api_keys.authenticate(s, first.plaintext, now=NOW)).name == "sandbox"


async def test_a_failed_unit_of_work_leaves_nothing(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as s:
            await accounts.create(s, "doomed", now=NOW)
            raise RuntimeError("crash before commit")
    async with transaction(sessions) as s:
        assert await accounts.list_all(s) == []
