"""Accounts (tenants)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account, check_account_name
from wafile.db.accounts import AccountRepository
from wafile.errors import AccountNotFound, ValidationFailed
from wafile.ids import new_id

__all__ = ["AccountService", "accounts"]


class AccountService:
    async def create(self, session: AsyncSession, name: str, *, now: datetime) -> Account:
        try:
            check_account_name(name)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        account = Account(id=new_id("acc"), name=name, created_at=now)
        await AccountRepository(session).add(account)
        return account

    async def ensure(
        self, session: AsyncSession, name: str, *, now: datetime
    ) -> tuple[Account, bool]:
        """The account named `name`, created if missing; True when it was created."""
        existing = await AccountRepository(session).get_by_name(name)
        if existing is not None:
            return existing, False
        return await self.create(session, name, now=now), True

    async def get(self, session: AsyncSession, account_id: str) -> Account:
        account = await AccountRepository(session).get(account_id)
        if account is None:
            raise AccountNotFound()
        return account

    async def get_by_name(self, session: AsyncSession, name: str) -> Account:
        account = await AccountRepository(session).get_by_name(name)
        if account is None:
            raise AccountNotFound(f"no account named {name!r}")
        return account

    async def list_all(self, session: AsyncSession) -> list[Account]:
        return await AccountRepository(session).list_all()


accounts = AccountService()
