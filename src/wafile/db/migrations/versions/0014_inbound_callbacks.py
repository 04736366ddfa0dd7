"""inbound callbacks: a callback delivery is of a message or of an inbound message
(`inbound.received`), exactly one of the two; 99digital webhooks get incoming messages

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONE_SUBJECT = "(message_id IS NULL) <> (inbound_id IS NULL)"
_ENDPOINTS = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.String),
    sa.column("format", sa.String),
    sa.column("enabled", sa.Boolean),
    sa.column("events", sa.JSON),
)
# 99digital's webhook (api/dialects/digital99.py): incoming messages always, and the
# status hooks with readStatus 1. Before, readStatus was the endpoint's `enabled`.
_NEW = ["inbound.received"]
_NEW_AND_STATUSES = ["inbound.received", "attempt.*"]
_STATUSES = ["attempt.*"]


def _digital99_webhooks() -> list[tuple[str, bool, list[str]]]:
    rows = op.get_bind().execute(
        sa.select(_ENDPOINTS.c.id, _ENDPOINTS.c.enabled, _ENDPOINTS.c.events).where(
            _ENDPOINTS.c.format == "99digital"
        )
    )
    return [(row.id, bool(row.enabled), list(row.events)) for row in rows]


def _set_endpoint(endpoint_id: str, *, enabled: bool, events: list[str]) -> None:
    op.execute(
        _ENDPOINTS.update()
        .where(_ENDPOINTS.c.id == endpoint_id)
        .values(enabled=enabled, events=events)
    )


def upgrade() -> None:
    _add_inbound()  # SQLite copies the table: wafile.db.migrate turns foreign keys off
    op.create_index("ix_callback_deliveries_inbound", "callback_deliveries", ["inbound_id"])
    for endpoint_id, enabled, _ in _digital99_webhooks():
        _set_endpoint(endpoint_id, enabled=True, events=_NEW_AND_STATUSES if enabled else _NEW)


def _add_inbound() -> None:
    with op.batch_alter_table("callback_deliveries") as batch:
        batch.alter_column("message_id", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column("inbound_id", sa.String(length=40), nullable=True))
        batch.create_foreign_key(
            op.f("fk_callback_deliveries_inbound_id_inbound_messages"),
            "inbound_messages",
            ["inbound_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_check_constraint(op.f("ck_callback_deliveries_one_subject"), _ONE_SUBJECT)


def downgrade() -> None:
    for endpoint_id, enabled, events in _digital99_webhooks():
        _set_endpoint(endpoint_id, enabled=enabled and events != _NEW, events=_STATUSES)
    # Inbound deliveries have no message to belong to: they go with the column.
    op.execute("DELETE FROM callback_deliveries WHERE inbound_id IS NOT NULL")
    op.drop_index("ix_callback_deliveries_inbound", table_name="callback_deliveries")
    _drop_inbound()


def _drop_inbound() -> None:
    with op.batch_alter_table("callback_deliveries") as batch:
        batch.drop_constraint(op.f("ck_callback_deliveries_one_subject"), type_="check")
        batch.drop_constraint(
            op.f("fk_callback_deliveries_inbound_id_inbound_messages"), type_="foreignkey"
        )
        batch.drop_column("inbound_id")
        batch.alter_column("message_id", existing_type=sa.String(length=40), nullable=False)
