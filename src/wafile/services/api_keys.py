"""API keys: create (shown once), list, revoke, and authenticate a request's key."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account, ApiKey, check_key_name, needs_last_used_update
from wafile.core.api_keys import (
    KEY_PREFIX,
    PUBLIC_ID_LEN,
    SECRET_LEN,
    display_prefix,
    format_key,
    hash_secret,
    parse_key,
    verify_secret,
)
from wafile.db.api_keys import ApiKeyRepository
from wafile.errors import ApiKeyNotFound, Unauthorized, ValidationFailed
from wafile.services.accounts import accounts
from wafile.services.recent import Recent

__all__ = ["ApiKeyService", "CreatedKey", "api_keys"]

log = logging.getLogger(__name__)

# Compared against when a key's id is unknown, so a miss costs the same as a hit.
_DUMMY_HASH = hash_secret("0" * SECRET_LEN)
# How long a key read for a request is reused (services/recent.py): every request
# needs it, and a second bounds how late another process sees a revocation.
KEY_TTL_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str = field(repr=False)  # shown once to the creator, never stored


class ApiKeyService:
    def __init__(self) -> None:
        self._recent = Recent(KEY_TTL_SECONDS)

    async def create(
        self, session: AsyncSession, *, account_name: str, name: str = "", now: datetime
    ) -> CreatedKey:
        try:
            name = check_key_name(name)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        account = await accounts.get_by_name(session, account_name)
        public_id = secrets.token_hex(PUBLIC_ID_LEN // 2)
        secret = secrets.token_hex(SECRET_LEN // 2)
        key = ApiKey(
            id=public_id,
            account_id=account.id,
            account_name=account.name,
            name=name,
            prefix=display_prefix(public_id),
            created_at=now,
        )
        await ApiKeyRepository(session).add(key, secret_hash=hash_secret(secret))
        return CreatedKey(key=key, plaintext=format_key(public_id, secret))

    async def list_keys(
        self, session: AsyncSession, *, account_name: str | None = None
    ) -> list[ApiKey]:
        account_id = None
        if account_name is not None:
            account_id = (await accounts.get_by_name(session, account_name)).id
        return await ApiKeyRepository(session).list_keys(account_id=account_id)

    async def revoke(self, session: AsyncSession, key_ref: str, *, now: datetime) -> ApiKey:
        """Revoke by id or displayed prefix (`wfk_<id>`); a full key is accepted too."""
        key_id = _key_id(key_ref)
        repo = ApiKeyRepository(session)
        await repo.revoke(key_id, now)
        self._recent.clear()  # effective at once in this process
        key = await repo.get(key_id)
        if key is None:
            raise ApiKeyNotFound(f"no API key with id {key_id!r}")
        return key

    async def authenticate(self, session: AsyncSession, raw: str, *, now: datetime) -> Account:
        """The account a presented key acts for; `Unauthorized` for any bad key.

        Every failure gives the same answer, so a caller learns nothing about which
        keys exist. Only the key's public id is ever logged. A key (and its account)
        read in the last `KEY_TTL_SECONDS` is reused: a revocation made through another
        process counts within that time, one made through this process at once.
        """
        parsed = parse_key(raw)
        if parsed is None:
            raise Unauthorized()
        repo = ApiKeyRepository(session)
        cache_key = ("key", parsed.public_id)
        found = await self._recent.get(
            session, cache_key, lambda: repo.get_for_auth(parsed.public_id)
        )
        if found is None:
            verify_secret(parsed.secret, _DUMMY_HASH)
            log.info("rejected unknown API key %s", display_prefix(parsed.public_id))
            raise Unauthorized()
        key, stored_hash, account = found
        if not verify_secret(parsed.secret, stored_hash):
            log.info("rejected API key %s: wrong secret", key.prefix)
            raise Unauthorized()
        if not key.active:
            log.info("rejected API key %s: revoked", key.prefix)
            raise Unauthorized()
        if needs_last_used_update(key.last_used_at, now):
            await repo.mark_used(key.id, now)
            self._recent.forget(session, cache_key)  # it holds the old last_used_at
        return account

    def forget_keys(self) -> None:
        """Read keys afresh (their account changed through this process)."""
        self._recent.clear()


def _key_id(key_ref: str) -> str:
    ref = key_ref.strip()
    parsed = parse_key(ref)
    if parsed is not None:
        return parsed.public_id
    return ref.removeprefix(f"{KEY_PREFIX}_")


api_keys = ApiKeyService()
