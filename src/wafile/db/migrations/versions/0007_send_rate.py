"""send_rate: each sender's messages-per-second bucket, shared by all workers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_rate",
        sa.Column("sender_id", sa.String(length=40), nullable=False),
        sa.Column("next_at_us", sa.BigInteger(), nullable=False),
        sa.Column("retry_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["senders.id"],
            name=op.f("fk_send_rate_sender_id_senders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_send_rate")),
    )


def downgrade() -> None:
    op.drop_table("send_rate")
