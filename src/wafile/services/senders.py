"""Senders: add, list, look up, remove; credentials sealed at rest, shown never.

The verify token (what Meta's webhook handshake echoes) may be chosen by the business
or generated here; a generated one is returned once, at creation, like an API key.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account
from wafile.core.senders import (
    Channel,
    Sender,
    SmsSecrets,
    SmsSender,
    TwilioSender,
    WhatsAppSecrets,
    WhatsAppSender,
    check_sender,
    check_sender_name,
    check_sms_sender,
)
from wafile.crypto import Sealer, Unsealable
from wafile.db.senders import SenderRepository
from wafile.errors import ConfigError, SenderNotFound, ValidationFailed
from wafile.ids import new_id
from wafile.services.recent import Recent

__all__ = ["CreatedSender", "SenderService", "senders"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CreatedSender:
    sender: Sender
    generated_verify_token: str | None = field(default=None, repr=False)


# How long a sender read for a message is reused (see services/recent.py).
SENDER_TTL_SECONDS = 5.0


class SenderService:
    """Reads on the message path (`by_id`, `with_secrets`, `of_account`, the defaults)
    may be up to `SENDER_TTL_SECONDS` old; the API's listings and lookups by name are not."""

    def __init__(self) -> None:
        self._recent = Recent(SENDER_TTL_SECONDS)

    async def add(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        account: Account,
        name: str,
        config: WhatsAppSender,
        access_token: str,
        app_secret: str,
        verify_token: str | None,
        is_default: bool,
        now: datetime,
    ) -> CreatedSender:
        generated = None if verify_token else secrets.token_urlsafe(24)
        secret_values = WhatsAppSecrets(
            access_token=access_token,
            app_secret=app_secret,
            verify_token=verify_token or generated or "",
        )
        try:
            check_sender_name(name)
            check_sender(config, secret_values)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        repo = SenderRepository(session)
        # The first sender of an account is its default whatever the caller said.
        first = not await repo.list_for(account.id)
        sender = Sender(
            id=new_id("snd"),
            account_id=account.id,
            name=name,
            channel=Channel.WHATSAPP,
            whatsapp=config,
            is_default=is_default or first,
            created_at=now,
        )
        await repo.add(sender, sealed_secrets=_seal(sealer, secret_values))
        self._recent.clear()  # a new first sender is the account's default
        return CreatedSender(sender=sender, generated_verify_token=generated)

    async def configure_sandbox(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        sender_id: str,
        account: Account,
        name: str,
        config: WhatsAppSender,
        secrets: WhatsAppSecrets,
        now: datetime,
    ) -> Sender:
        """Create the sandbox sender, or point it at today's address (the port may differ).

        Its id is fixed, so the embedded emulator knows its webhook URL before the
        database is even opened.
        """
        repo = SenderRepository(session)
        self._recent.clear()
        existing = await repo.get_by_name(account.id, name)
        if existing is None:
            sender = Sender(
                id=sender_id,
                account_id=account.id,
                name=name,
                channel=Channel.WHATSAPP,
                whatsapp=config,
                is_default=True,
                created_at=now,
            )
            await repo.add(sender, sealed_secrets=_seal(sealer, secrets))
            return sender
        updated = replace(existing, whatsapp=config)
        await repo.replace(updated, sealed_secrets=_seal(sealer, secrets))
        return updated

    async def list_for(self, session: AsyncSession, *, account: Account) -> list[Sender]:
        return await SenderRepository(session).list_for(account.id)

    async def get(self, session: AsyncSession, *, account: Account, name: str) -> Sender:
        found = await SenderRepository(session).get_by_name(account.id, name)
        if found is None:
            raise SenderNotFound(f"no sender {name!r} in this account")
        return found

    async def remove(self, session: AsyncSession, *, account: Account, name: str) -> None:
        sender = await self.get(session, account=account, name=name)
        await SenderRepository(session).remove(sender.id)
        self._recent.clear()

    async def default_for(self, session: AsyncSession, *, account: Account) -> Sender | None:
        repo = SenderRepository(session)
        return await self._recent.get(
            session, ("default", account.id), lambda: repo.default_for(account.id)
        )

    async def of_account(self, session: AsyncSession, sender: Sender) -> list[Sender]:
        """All senders of the account `sender` belongs to (itself included)."""
        repo = SenderRepository(session)
        return await self._recent.get(
            session, ("of", sender.account_id), lambda: repo.list_for(sender.account_id)
        )

    async def by_id(self, session: AsyncSession, sender_id: str) -> Sender | None:
        found = await self._row(session, sender_id)
        return found[0] if found else None

    async def _row(self, session: AsyncSession, sender_id: str) -> tuple[Sender, str] | None:
        repo = SenderRepository(session)
        return await self._recent.get(session, ("id", sender_id), lambda: repo.get(sender_id))

    async def with_secrets(
        self, session: AsyncSession, sealer: Sealer, sender_id: str
    ) -> tuple[Sender, WhatsAppSecrets]:
        """A sender by id with its credentials opened (channels, webhook checks)."""
        found = await self._row(session, sender_id)
        if found is None:
            raise SenderNotFound(f"no sender {sender_id!r}")
        sender, sealed = found
        return sender, WhatsAppSecrets(**_opened(sealer, sealed, f"sender {sender.name!r}"))

    # SMS senders: the same table and names, a Twilio-shaped configuration.

    async def add_sms(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        account: Account,
        name: str,
        config: TwilioSender,
        auth_token: str,
        is_default: bool,
        now: datetime,
        sender_id: str | None = None,
    ) -> SmsSender:
        secret_values = SmsSecrets(auth_token=auth_token)
        try:
            check_sender_name(name)
            check_sms_sender(config, secret_values)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        repo = SenderRepository(session)
        first = not await repo.sms_list_for(account.id)
        sender = SmsSender(
            id=sender_id or new_id("snd"),
            account_id=account.id,
            name=name,
            sms=config,
            is_default=is_default or first,
            created_at=now,
        )
        await repo.add(sender, sealed_secrets=_seal_sms(sealer, secret_values))
        self._recent.clear()
        return sender

    async def configure_sandbox_sms(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        sender_id: str,
        account: Account,
        name: str,
        config: TwilioSender,
        auth_token: str,
        now: datetime,
    ) -> SmsSender:
        """Create the sandbox SMS sender, or point it at today's address."""
        repo = SenderRepository(session)
        self._recent.clear()
        existing = await repo.sms_get_by_name(account.id, name)
        sealed = _seal_sms(sealer, SmsSecrets(auth_token=auth_token))
        if existing is None:
            sender = SmsSender(
                id=sender_id,
                account_id=account.id,
                name=name,
                sms=config,
                is_default=True,
                created_at=now,
            )
            await repo.add(sender, sealed_secrets=sealed)
            return sender
        updated = replace(existing, sms=config)
        await repo.replace(updated, sealed_secrets=sealed)
        return updated

    async def sms_list_for(self, session: AsyncSession, *, account: Account) -> list[SmsSender]:
        return await SenderRepository(session).sms_list_for(account.id)

    async def sms_get(self, session: AsyncSession, *, account: Account, name: str) -> SmsSender:
        found = await SenderRepository(session).sms_get_by_name(account.id, name)
        if found is None:
            raise SenderNotFound(f"no SMS sender {name!r} in this account")
        return found

    async def sms_remove(self, session: AsyncSession, *, account: Account, name: str) -> None:
        sender = await self.sms_get(session, account=account, name=name)
        await SenderRepository(session).remove(sender.id)
        self._recent.clear()

    async def sms_default_for(self, session: AsyncSession, *, account: Account) -> SmsSender | None:
        repo = SenderRepository(session)
        return await self._recent.get(
            session, ("sms-default", account.id), lambda: repo.sms_default_for(account.id)
        )

    async def sms_with_secrets(
        self, session: AsyncSession, sealer: Sealer, sender_id: str
    ) -> tuple[SmsSender, SmsSecrets]:
        repo = SenderRepository(session)
        found = await self._recent.get(session, ("sms", sender_id), lambda: repo.sms_get(sender_id))
        if found is None:
            raise SenderNotFound(f"no SMS sender {sender_id!r}")
        sender, sealed = found
        return sender, SmsSecrets(**_opened(sealer, sealed, f"SMS sender {sender.name!r}"))


def _opened(sealer: Sealer, sealed: str, what: str) -> dict[str, str]:
    """A sender's credentials in clear; `ConfigError` when the server secret changed."""
    try:
        values: dict[str, str] = json.loads(sealer.open(sealed))
    except Unsealable as exc:
        raise ConfigError(f"{what}: {exc}") from None
    return values


def _seal(sealer: Sealer, values: WhatsAppSecrets) -> str:
    return sealer.seal(
        json.dumps(
            {
                "access_token": values.access_token,
                "app_secret": values.app_secret,
                "verify_token": values.verify_token,
            }
        )
    )


def _seal_sms(sealer: Sealer, values: SmsSecrets) -> str:
    return sealer.seal(json.dumps({"auth_token": values.auth_token}))


senders = SenderService()
