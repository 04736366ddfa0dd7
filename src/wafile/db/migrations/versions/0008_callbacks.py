"""callbacks: webhook endpoints, the account's callback secret, deliveries and attempts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import wafile.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = wafile.db.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.Column("failures_since", _TIME(), nullable=True),
        sa.Column("failing_since", _TIME(), nullable=True),
        sa.Column("last_attempt_at", _TIME(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_webhook_endpoints_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_account", "webhook_endpoints", ["account_id", "created_at"]
    )
    op.create_table(
        "callback_secrets",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_callback_secrets_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_callback_secrets")),
    )
    op.create_table(
        "callback_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=True),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("next_attempt_at", _TIME(), nullable=True),
        sa.Column("last_attempt_at", _TIME(), nullable=True),
        sa.Column("delivered_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_callback_deliveries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_callback_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_callback_deliveries_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_deliveries")),
    )
    op.create_index(
        "ix_callback_deliveries_endpoint",
        "callback_deliveries",
        ["endpoint_id", "created_at", "id"],
    )
    op.create_index(
        "ix_callback_deliveries_account",
        "callback_deliveries",
        ["account_id", "created_at", "id"],
    )
    op.create_index(
        "ix_callback_deliveries_message", "callback_deliveries", ["message_id", "sequence"]
    )
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("requested_at", _TIME(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["callback_deliveries.id"],
            name=op.f("fk_callback_attempts_delivery_id_callback_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    op.create_index("ix_callback_attempts_delivery", "callback_attempts", ["delivery_id", "number"])


def downgrade() -> None:
    op.drop_index("ix_callback_attempts_delivery", table_name="callback_attempts")
    op.drop_table("callback_attempts")
    op.drop_index("ix_callback_deliveries_message", table_name="callback_deliveries")
    op.drop_index("ix_callback_deliveries_account", table_name="callback_deliveries")
    op.drop_index("ix_callback_deliveries_endpoint", table_name="callback_deliveries")
    op.drop_table("callback_deliveries")
    op.drop_table("callback_secrets")
    op.drop_index("ix_webhook_endpoints_account", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
