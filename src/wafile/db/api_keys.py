"""API key repository: all SQL about API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account, ApiKey
from wafile.core.api_keys import display_prefix
from wafile.db.tables import AccountRow, ApiKeyRow

__all__ = ["ApiKeyRepository"]

_COLUMNS = (
    ApiKeyRow.id,
    ApiKeyRow.account_id,
    AccountRow.name.label("account_name"),
    ApiKeyRow.name,
    ApiKeyRow.created_at,
    ApiKeyRow.last_used_at,
    ApiKeyRow.revoked_at,
)


def _select(*extra: Any) -> Select[Any]:
    return select(*_COLUMNS, *extra).join(AccountRow, AccountRow.id == ApiKeyRow.account_id)


def _key(row: object) -> ApiKey:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKey(
        id=m["id"],
        account_id=m["account_id"],
        account_name=m["account_name"],
        name=m["name"],
        prefix=display_prefix(m["id"]),
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


def _channels(doc: list[dict[str, Any]] | None) -> tuple[dict[str, Any], ...] | None:
    return tuple(doc) if doc is not None else None


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, key: ApiKey, *, secret_hash: str) -> None:
        self._session.add(
            ApiKeyRow(
                id=key.id,
                account_id=key.account_id,
                name=key.name,
                secret_hash=secret_hash,
                created_at=key.created_at,
            )
        )
        await self._session.flush()

    async def get(self, key_id: str) -> ApiKey | None:
        row = (await self._session.execute(_select().where(ApiKeyRow.id == key_id))).first()
        return _key(row) if row else None

    async def get_for_auth(self, key_id: str) -> tuple[ApiKey, str, Account] | None:
        """The key, its stored secret hash and its account: authentication in one query."""
        stmt = _select(
            ApiKeyRow.secret_hash,
            AccountRow.created_at.label("account_created_at"),
            AccountRow.default_channels.label("account_default_channels"),
        )
        row = (await self._session.execute(stmt.where(ApiKeyRow.id == key_id))).first()
        if row is None:
            return None
        key = _key(row)
        account = Account(
            id=key.account_id,
            name=key.account_name,
            created_at=row._mapping["account_created_at"],
            default_channels=_channels(row._mapping["account_default_channels"]),
        )
        return key, row._mapping["secret_hash"], account

    async def list_keys(self, *, account_id: str | None = None) -> list[ApiKey]:
        stmt = _select().order_by(AccountRow.name, ApiKeyRow.created_at, ApiKeyRow.id)
        if account_id is not None:
            stmt = stmt.where(ApiKeyRow.account_id == account_id)
        return [_key(row) for row in await self._session.execute(stmt)]

    async def mark_used(self, key_id: str, now: datetime) -> None:
        await self._session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now)
        )

    async def revoke(self, key_id: str, now: datetime) -> None:
        """Set `revoked_at` unless already set (revoking twice keeps the first time)."""
        await self._session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
