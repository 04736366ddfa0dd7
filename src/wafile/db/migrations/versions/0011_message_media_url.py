"""send by URL: a message may name a remote file, fetched by the worker before it sends

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        # NULL until the worker has fetched `media_url` into the media store.
        batch.alter_column("media_id", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column("media_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("provider", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("provider")
        batch.drop_column("media_url")
        batch.alter_column("media_id", existing_type=sa.String(length=40), nullable=False)
