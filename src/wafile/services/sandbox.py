"""Sandbox bootstrap: the `sandbox` account and its first key, made on first start."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.senders import (
    DefaultTemplate,
    Sender,
    TwilioSender,
    WhatsAppSecrets,
    WhatsAppSender,
)
from wafile.core.signed_links import derive_key
from wafile.crypto import Sealer
from wafile.services.accounts import accounts
from wafile.services.api_keys import CreatedKey, api_keys
from wafile.services.senders import senders

__all__ = [
    "SANDBOX_ACCOUNT",
    "SANDBOX_SENDER",
    "SANDBOX_SENDER_ID",
    "SANDBOX_SMS_SENDER",
    "SANDBOX_SMS_SENDER_ID",
    "SMS_EMULATOR_PATH",
    "WHATSAPP_EMULATOR_PATH",
    "SandboxCredentials",
    "ensure_sandbox",
    "ensure_sandbox_sender",
    "sandbox_credentials",
]

SANDBOX_ACCOUNT = "sandbox"
SANDBOX_SENDER = "sandbox"
SANDBOX_SENDER_ID = "snd_sandbox"
WHATSAPP_EMULATOR_PATH = "/_emulator/whatsapp"  # where serve mounts the emulators
SMS_EMULATOR_PATH = "/_emulator/sms"
SANDBOX_SMS_SENDER = "sandbox-sms"
SANDBOX_SMS_SENDER_ID = "snd_sandbox_sms"


@dataclass(frozen=True, kw_only=True, slots=True)
class SandboxCredentials:
    """What wafile and its embedded emulators share in sandbox mode.

    Derived from the server secret: stable across restarts (a sender configured
    against them keeps working) and unguessable without the secret, although the
    emulators only ever answer on wafile's own address.
    """

    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_display_number: str = "15550009999"
    whatsapp_waba_id: str = "100000000000002"
    whatsapp_access_token: str = field(repr=False)
    whatsapp_app_secret: str = field(repr=False)
    whatsapp_verify_token: str = field(repr=False)
    sms_account_sid: str
    sms_auth_token: str = field(repr=False)
    sms_from_number: str = "+15550001000"


def sandbox_credentials(secret_key: str) -> SandboxCredentials:
    def derived(purpose: str, length: int) -> str:
        return derive_key(secret_key, f"sandbox/{purpose}").hex()[:length]

    return SandboxCredentials(
        whatsapp_access_token="EAAsandbox" + derived("whatsapp-token", 48),
        whatsapp_app_secret=derived("whatsapp-app-secret", 32),
        whatsapp_verify_token=derived("whatsapp-verify-token", 24),
        sms_account_sid="AC" + derived("sms-account-sid", 32),
        sms_auth_token=derived("sms-auth-token", 32),
    )


async def ensure_sandbox(session: AsyncSession, *, now: datetime) -> CreatedKey | None:
    """Create the sandbox account with one key; the key only when just created.

    The key is shown once, like every key: later starts return None.
    """
    _, created = await accounts.ensure(session, SANDBOX_ACCOUNT, now=now)
    if not created:
        return None
    return await api_keys.create(
        session, account_name=SANDBOX_ACCOUNT, name="sandbox (first start)", now=now
    )


async def ensure_sandbox_sender(
    session: AsyncSession, sealer: Sealer, *, secret_key: str, public_url: str, now: datetime
) -> Sender:
    """The sandbox account's WhatsApp and SMS senders, wired to the emulators serve
    mounts; the WhatsApp one."""
    creds = sandbox_credentials(secret_key)
    account, _ = await accounts.ensure(session, SANDBOX_ACCOUNT, now=now)
    await senders.configure_sandbox_sms(
        session,
        sealer,
        sender_id=SANDBOX_SMS_SENDER_ID,
        account=account,
        name=SANDBOX_SMS_SENDER,
        config=TwilioSender(
            account_sid=creds.sms_account_sid,
            from_number=creds.sms_from_number,
            base_url=public_url + SMS_EMULATOR_PATH,
        ),
        auth_token=creds.sms_auth_token,
        now=now,
    )
    return await senders.configure_sandbox(
        session,
        sealer,
        sender_id=SANDBOX_SENDER_ID,
        account=account,
        name=SANDBOX_SENDER,
        config=WhatsAppSender(
            phone_number_id=creds.whatsapp_phone_number_id,
            waba_id=creds.whatsapp_waba_id,
            display_phone_number=creds.whatsapp_display_number,
            graph_url=public_url + WHATSAPP_EMULATOR_PATH,
            # The sandbox world's approved templates, so a first send to a fresh
            # number (window closed) just works.
            default_templates=tuple(
                DefaultTemplate(category=category, name=f"{name}_delivery")
                for category, name in (("document", "file"), ("image", "image"), ("video", "video"))
            ),
        ),
        secrets=WhatsAppSecrets(
            access_token=creds.whatsapp_access_token,
            app_secret=creds.whatsapp_app_secret,
            verify_token=creds.whatsapp_verify_token,
        ),
        now=now,
    )
