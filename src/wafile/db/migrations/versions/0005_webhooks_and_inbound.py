"""webhook receipts, conversation windows, inbound messages, provider statuses

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wafile.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sender_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["sender_id"],
        ["senders.id"],
        name=op.f(f"fk_{table}_sender_id_senders"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "conversation_windows",
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("wa_id", sa.String(length=32), nullable=False),
        sa.Column("last_inbound_at", wafile.db.types.UTCDateTime(), nullable=False),
        _sender_fk("conversation_windows"),
        sa.PrimaryKeyConstraint("sender_id", "wa_id", name=op.f("pk_conversation_windows")),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=False),
        sa.Column("from_number", sa.String(length=32), nullable=False),
        sa.Column("profile_name", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("provider_media_id", sa.String(length=200), nullable=True),
        sa.Column("media_filename", sa.Text(), nullable=True),
        sa.Column("media_mime_type", sa.String(length=255), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.String(length=200), nullable=True),
        sa.Column("received_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("media_id", sa.String(length=40), nullable=True),
        sa.Column("media_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_inbound_messages_account_id_accounts"),
            ondelete="CASCADE",
        ),
        _sender_fk("inbound_messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("sender_id", "provider_id", name=op.f("uq_inbound_messages_sender_id")),
    )
    op.create_index(
        "ix_inbound_messages_account_received",
        "inbound_messages",
        ["account_id", "received_at", "id"],
    )
    op.create_table(
        "provider_statuses",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("received_at", wafile.db.types.UTCDateTime(), nullable=False),
        _sender_fk("provider_statuses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_statuses")),
        sa.UniqueConstraint(
            "sender_id", "provider_id", "status", name=op.f("uq_provider_statuses_sender_id")
        ),
    )
    op.create_table(
        "webhook_receipts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("processed_at", wafile.db.types.UTCDateTime(), nullable=True),
        _sender_fk("webhook_receipts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_receipts")),
    )


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_table("provider_statuses")
    op.drop_index("ix_inbound_messages_account_received", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_table("conversation_windows")
