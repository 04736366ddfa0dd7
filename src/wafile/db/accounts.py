"""Account repository: all SQL about accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account
from wafile.db.tables import AccountRow
from wafile.errors import AccountExists

__all__ = ["AccountRepository"]


def _account(row: AccountRow) -> Account:
    channels = row.default_channels
    return Account(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        default_channels=tuple(channels) if channels is not None else None,
    )


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, account: Account) -> None:
        """Insert; `AccountExists` when the name is taken (also under a race)."""
        row = AccountRow(id=account.id, name=account.name, created_at=account.created_at)
        try:
            # A savepoint keeps the caller's transaction usable after a conflict.
            async with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            raise AccountExists(f"an account named {account.name!r} already exists") from None

    async def get(self, account_id: str) -> Account | None:
        row = await self._session.get(AccountRow, account_id)
        return _account(row) if row else None

    async def get_by_name(self, name: str) -> Account | None:
        row = await self._session.scalar(select(AccountRow).where(AccountRow.name == name))
        return _account(row) if row else None

    async def set_default_channels(
        self, account_id: str, channels: list[dict[str, Any]] | None
    ) -> None:
        await self._session.execute(
            update(AccountRow).where(AccountRow.id == account_id).values(default_channels=channels)
        )

    async def list_all(self) -> list[Account]:
        rows = await self._session.scalars(select(AccountRow).order_by(AccountRow.name))
        return [_account(row) for row in rows]
