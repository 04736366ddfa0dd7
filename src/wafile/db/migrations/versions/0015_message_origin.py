"""message origin: the API a message came through (native or a vendor dialect), and
the callback format of its callback_url (a dialect's per-send URL gets its vendor's
callbacks)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every message sent so far came in with the native format on its callback_url:
    # dialects refused per-send URLs. Their origin is not known; "native" keeps them
    # reaching native endpoints only, as vendor endpoints now receive only their own.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=32), nullable=False, server_default="native")
        )
        batch.add_column(
            sa.Column(
                "callback_format", sa.String(length=32), nullable=False, server_default="standard"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("callback_format")
        batch.drop_column("origin")
