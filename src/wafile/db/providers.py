"""Media provider repository: all SQL about providers. The secret arrives and leaves sealed."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.providers import Auth, Provider
from wafile.db.tables import MediaProviderRow

__all__ = ["ProviderRepository"]


def _provider(row: MediaProviderRow) -> Provider:
    return Provider(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        type=row.type,
        auth=Auth(row.auth),
        username=row.username,
        allowed=tuple(row.allowed),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ProviderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def put(self, provider: Provider, *, sealed_secret: str) -> Provider:
        """Insert, or replace the account's provider of that name (keeping its id and
        created_at); the stored provider."""
        is_pg = self._session.get_bind().dialect.name == "postgresql"
        insert = pg_insert if is_pg else sqlite_insert
        values = {
            "type": provider.type,
            "auth": str(provider.auth),
            "username": provider.username,
            "allowed": list(provider.allowed),
            "sealed_secret": sealed_secret,
            "updated_at": provider.updated_at,
        }
        stmt = (
            insert(MediaProviderRow)
            .values(
                id=provider.id,
                account_id=provider.account_id,
                name=provider.name,
                created_at=provider.created_at,
                **values,
            )
            .on_conflict_do_update(
                index_elements=[MediaProviderRow.account_id, MediaProviderRow.name], set_=values
            )
            .returning(MediaProviderRow)
            .execution_options(populate_existing=True)
        )
        row = (await self._session.scalars(stmt)).one()
        return _provider(row)

    async def list_for(self, account_id: str) -> list[tuple[Provider, str]]:
        """The account's providers by name, each with its sealed secret."""
        stmt = (
            select(MediaProviderRow)
            .where(MediaProviderRow.account_id == account_id)
            .order_by(MediaProviderRow.name)
        )
        return [(_provider(r), r.sealed_secret) for r in await self._session.scalars(stmt)]

    async def get_by_name(self, account_id: str, name: str) -> tuple[Provider, str] | None:
        row = await self._session.scalar(
            select(MediaProviderRow).where(
                MediaProviderRow.account_id == account_id, MediaProviderRow.name == name
            )
        )
        return (_provider(row), row.sealed_secret) if row else None

    async def remove(self, account_id: str, name: str) -> bool:
        result = await self._session.execute(
            delete(MediaProviderRow).where(
                MediaProviderRow.account_id == account_id, MediaProviderRow.name == name
            )
        )
        return bool(getattr(result, "rowcount", 0))
