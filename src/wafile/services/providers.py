"""Media providers: put (add or replace by name), list, look up, remove; and the
credential a fetch uses. Secrets are sealed at rest and shown only masked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.providers import (
    PROVIDER_TYPE,
    Auth,
    Credential,
    Provider,
    ProviderSecret,
    check_allowed,
    check_credentials,
    check_provider_name,
)
from wafile.crypto import Sealer, Unsealable, mask
from wafile.db.providers import ProviderRepository
from wafile.errors import ConfigError, ProviderNotFound, ValidationFailed
from wafile.ids import new_id

__all__ = ["ProviderService", "PutProvider", "providers", "shown_config"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PutProvider:
    """What a client gives: Sinch's `{name, type, config}` plus an optional restriction."""

    name: str
    type: str
    auth: Auth
    username: str | None
    secret: ProviderSecret
    allowed: tuple[str, ...] = ()


def shown_config(provider: Provider, secret: ProviderSecret) -> dict[str, Any]:
    """Sinch's config object with the secret masked (`"password": "••••f"`)."""
    if provider.auth is Auth.BASIC:
        return {"basic": {"username": provider.username, "password": mask(secret.value)}}
    return {"bearer": mask(secret.value)}


class ProviderService:
    async def put(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        account_id: str,
        given: PutProvider,
        now: datetime,
    ) -> tuple[Provider, bool]:
        """Add the provider, or replace the one of the same name; (provider, created)."""
        try:
            check_provider_name(given.name)
            if given.type != PROVIDER_TYPE:
                raise ValueError(f"type: must be {PROVIDER_TYPE!r}")
            check_credentials(given.auth, username=given.username, secret=given.secret.value)
            allowed = check_allowed(given.allowed)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        repo = ProviderRepository(session)
        existed = await repo.get_by_name(account_id, given.name) is not None
        stored = await repo.put(
            Provider(
                id=new_id("prv"),
                account_id=account_id,
                name=given.name,
                type=given.type,
                auth=given.auth,
                username=given.username if given.auth is Auth.BASIC else None,
                allowed=allowed,
                created_at=now,
                updated_at=now,
            ),
            sealed_secret=sealer.seal(given.secret.value),
        )
        return stored, not existed

    async def list_for(
        self, session: AsyncSession, sealer: Sealer, *, account_id: str
    ) -> list[tuple[Provider, ProviderSecret]]:
        found = await ProviderRepository(session).list_for(account_id)
        return [(p, _open(sealer, p, sealed)) for p, sealed in found]

    async def get(
        self, session: AsyncSession, sealer: Sealer, *, account_id: str, name: str
    ) -> tuple[Provider, ProviderSecret]:
        found = await ProviderRepository(session).get_by_name(account_id, name)
        if found is None:
            raise ProviderNotFound(f"no media provider {name!r} in this account")
        provider, sealed = found
        return provider, _open(sealer, provider, sealed)

    async def remove(self, session: AsyncSession, *, account_id: str, name: str) -> None:
        if not await ProviderRepository(session).remove(account_id, name):
            raise ProviderNotFound(f"no media provider {name!r} in this account")

    async def credential(
        self, session: AsyncSession, sealer: Sealer, *, account_id: str, name: str
    ) -> Credential:
        """What a fetch with this provider sends, and where it may send it."""
        return Credential.of(*await self.get(session, sealer, account_id=account_id, name=name))


def _open(sealer: Sealer, provider: Provider, sealed: str) -> ProviderSecret:
    try:
        return ProviderSecret(value=sealer.open(sealed))
    except Unsealable as exc:
        raise ConfigError(f"media provider {provider.name!r}: {exc}") from None


providers = ProviderService()
