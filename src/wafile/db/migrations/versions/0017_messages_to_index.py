"""index messages by (account, recipient, created_at): GET /v1/messages?to= and the
conversation minutes of an inbound.received event read one recipient's messages

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_account_to_created", "messages", ["account_id", "to_number", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_account_to_created", table_name="messages")
