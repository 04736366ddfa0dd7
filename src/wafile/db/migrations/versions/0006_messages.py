"""messages, their event log, provider ids back to attempts, uploaded WhatsApp media

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wafile.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("media_id", sa.String(length=40), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.String(length=200), nullable=True),
        sa.Column("template", sa.JSON(), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_messages_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("account_id", "idempotency_key", name=op.f("uq_messages_account_id")),
    )
    op.create_index("ix_messages_account_created", "messages", ["account_id", "created_at", "id"])
    op.create_table(
        "attempt_refs",
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_attempt_refs_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["senders.id"],
            name=op.f("fk_attempt_refs_sender_id_senders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sender_id", "provider_id", name=op.f("pk_attempt_refs")),
    )
    op.create_table(
        "message_events",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_events_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "seq", name=op.f("pk_message_events")),
    )

    op.create_table(
        "whatsapp_media",
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_id", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", wafile.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["senders.id"],
            name=op.f("fk_whatsapp_media_sender_id_senders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sender_id", "sha256", name=op.f("pk_whatsapp_media")),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_media")
    op.drop_table("message_events")
    op.drop_table("attempt_refs")
    op.drop_index("ix_messages_account_created", table_name="messages")
    op.drop_table("messages")
