"""Migrations on SQLite and PostgreSQL: up, down to nothing, up again; and the
migrated schema is exactly what `db/tables.py` declares."""

from __future__ import annotations

import json
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from wafile.config import Settings
from wafile.db import migrate
from wafile.db.engine import create_engine
from wafile.db.tables import Base


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(conn), Base.metadata)


async def test_upgrade_downgrade_upgrade(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head()
        async with engine.connect() as conn:
            assert {"accounts", "api_keys"} <= await conn.run_sync(_tables)
            assert await conn.run_sync(_diff) == []

        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) <= {"alembic_version"}

        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head()
        await migrate.upgrade(engine)  # idempotent
    finally:
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with engine.connect() as conn:
            mode = await conn.exec_driver_sql("PRAGMA journal_mode")
            assert mode.scalar() == "wal"
            fk = await conn.exec_driver_sql("PRAGMA foreign_keys")
            assert fk.scalar() == 1
        # Migrations turn foreign keys off on the (only) pooled connection, and back on.
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            fk = await conn.exec_driver_sql("PRAGMA foreign_keys")
            assert fk.scalar() == 1
    finally:
        await engine.dispose()


AT = "'2026-01-01 00:00:00'"


async def test_0014_keeps_the_delivery_log_and_gives_99digital_webhooks_incoming_messages(
    settings: Settings,
) -> None:
    """On SQLite, 0014 copies callback_deliveries; the copy must not take the attempts
    with it (foreign keys cascade on the old table's drop)."""
    engine = create_engine(settings.effective_database_url)
    rows = [
        f"INSERT INTO accounts (id, name, created_at) VALUES ('acc', 'a', {AT})",
        "INSERT INTO messages (id, account_id, sender_id, to_number, filename, status,"
        f" created_at, updated_at) VALUES ('msg', 'acc', 'snd', '+1', 'f', 'accepted', {AT}, {AT})",
        "INSERT INTO callback_deliveries (id, account_id, message_id, url, event_id, event_type,"
        " sequence, body, status, attempts, created_at) VALUES ('dlv', 'acc', 'msg', 'u', 'evt',"
        f" 'attempt.sent', 1, '{{}}', 'pending', 1, {AT})",
        "INSERT INTO callback_attempts (id, delivery_id, number, manual, requested_at,"
        f" latency_ms) VALUES ('dla', 'dlv', 1, false, {AT}, 1)",
    ]
    for endpoint_id, enabled in (("on", "true"), ("off", "false")):
        rows.append(
            "INSERT INTO webhook_endpoints (id, account_id, url, events, enabled, sealed_secret,"
            f" created_at, updated_at, format) VALUES ('{endpoint_id}', 'acc', 'u',"
            f" '[\"attempt.*\"]', {enabled}, 's', {AT}, {AT}, '99digital')"
        )

    async def attempts() -> int:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT count(*) FROM callback_attempts"))
            return int(found.scalar_one())

    async def webhooks() -> dict[str, tuple[bool, list[str]]]:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT id, enabled, events FROM webhook_endpoints"))
            return {
                r.id: (
                    bool(r.enabled),
                    json.loads(r.events) if isinstance(r.events, str) else r.events,
                )
                for r in found
            }

    try:
        await migrate.upgrade(engine, "0013")
        async with engine.begin() as conn:
            for row in rows:
                await conn.execute(text(row))
        await migrate.upgrade(engine, "0014")
        assert await attempts() == 1
        # readStatus was `enabled`: now both get incoming messages, the one that was on
        # the status hooks too.
        assert await webhooks() == {
            "on": (True, ["inbound.received", "attempt.*"]),
            "off": (True, ["inbound.received"]),
        }
        await migrate.downgrade(engine, "0013")
        assert await attempts() == 1
        assert await webhooks() == {"on": (True, ["attempt.*"]), "off": (False, ["attempt.*"])}
    finally:
        await engine.dispose()


async def test_rebuilding_a_table_keeps_the_rows_that_refer_to_it(settings: Settings) -> None:
    """SQLite rebuilds a table to alter it (0011 rebuilds `messages`); with foreign keys
    on, dropping the old table would delete every event, reference and delivery of
    every message by cascade. Upgrades and downgrades keep them."""
    engine = create_engine(settings.effective_database_url)
    rows = [
        f"INSERT INTO accounts (id, name, created_at) VALUES ('acc', 'a', {AT})",
        "INSERT INTO senders (id, account_id, name, channel, config, sealed_secrets,"
        f" is_default, created_at) VALUES ('snd', 'acc', 's', 'whatsapp', '{{}}', 'x', true, {AT})",
        "INSERT INTO messages (id, account_id, sender_id, to_number, media_id, filename,"
        f" status, created_at, updated_at) VALUES ('msg', 'acc', 'snd', '+1', 'med', 'f',"
        f" 'accepted', {AT}, {AT})",
        "INSERT INTO message_events (message_id, seq, at, recorded_at, source, event,"
        f" applied) VALUES ('msg', 1, {AT}, {AT}, 'api', '{{}}', true)",
        "INSERT INTO attempt_refs (sender_id, provider_id, message_id, attempt)"
        " VALUES ('snd', 'wamid.1', 'msg', 0)",
        "INSERT INTO callback_deliveries (id, account_id, message_id, url, event_id, event_type,"
        " sequence, body, status, attempts, created_at) VALUES ('dlv', 'acc', 'msg', 'u', 'evt',"
        f" 'attempt.sent', 1, '{{}}', 'pending', 1, {AT})",
        "INSERT INTO callback_attempts (id, delivery_id, number, manual, requested_at,"
        f" latency_ms) VALUES ('dla', 'dlv', 1, false, {AT}, 1)",
    ]
    tables = ("message_events", "attempt_refs", "callback_deliveries", "callback_attempts")

    async def counts() -> dict[str, int]:
        async with engine.connect() as conn:
            return {
                t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
                for t in tables
            }

    try:
        await migrate.upgrade(engine, "0010")
        async with engine.begin() as conn:
            for row in rows:
                await conn.execute(text(row))
        await migrate.upgrade(engine)
        assert await counts() == dict.fromkeys(tables, 1)
        await migrate.downgrade(engine, "0010")
        assert await counts() == dict.fromkeys(tables, 1)
    finally:
        await engine.dispose()
