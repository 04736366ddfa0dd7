"""channel plans: each message's plan of channels, each account's default plan

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL on messages stored before plans existed: they were WhatsApp only.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
    # NULL: WhatsApp only, the default until an account says otherwise.
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("default_channels", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("default_channels")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("plan")
