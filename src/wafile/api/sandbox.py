"""Sandbox mode: the WhatsApp and SMS emulators inside wafile's own app.

They answer under their own prefixes on wafile's address, so `make run` is a whole
offline system; wafile's channels talk to them over HTTP exactly as they would talk
to Meta and the SMS provider (only the base URL differs). A mounted app gets no
lifespan events, so the host app closes them at shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fastapi import FastAPI

from wafile.config import Settings
from wafile.core.media_rules import EXTRA_TYPES
from wafile.emulator.sms import SmsEmulator, create_sms_app
from wafile.emulator.sms import sandbox_world as sms_sandbox_world
from wafile.emulator.whatsapp import WhatsAppEmulator, create_whatsapp_app, sandbox_world
from wafile.services.sandbox import (
    SANDBOX_SENDER_ID,
    SMS_EMULATOR_PATH,
    WHATSAPP_EMULATOR_PATH,
    sandbox_credentials,
)

__all__ = ["SandboxEmulators", "mount_sandbox", "sandbox_emulators"]


@dataclass(frozen=True, slots=True)
class SandboxEmulators:
    whatsapp: WhatsAppEmulator
    sms: SmsEmulator

    async def aclose(self) -> None:
        await self.whatsapp.aclose()
        await self.sms.aclose()


def sandbox_emulators(settings: Settings) -> SandboxEmulators:
    """The emulators of the sandbox world, wired with the sandbox credentials."""
    creds = sandbox_credentials(settings.secret_key)
    world = sandbox_world(
        phone_number_id=creds.whatsapp_phone_number_id,
        access_token=creds.whatsapp_access_token,
        app_secret=creds.whatsapp_app_secret,
        # The sandbox sender's webhook: statuses and inbound messages come back here.
        webhook_url=f"{settings.effective_public_url}/webhooks/whatsapp/{SANDBOX_SENDER_ID}",
        verify_token=creds.whatsapp_verify_token,
        display_phone_number=creds.whatsapp_display_number,
        waba_id=creds.whatsapp_waba_id,
    )
    # wafile sends a few types Meta does not list as documents (gif, avi, zip, rar,
    # csv: what 99digital promises); the sandbox must not refuse what wafile routes.
    extra = tuple(sorted(EXTRA_TYPES))
    world = replace(world, settings=replace(world.settings, extra_document_types=extra))
    sms = sms_sandbox_world(creds.sms_account_sid, creds.sms_auth_token, creds.sms_from_number)
    return SandboxEmulators(whatsapp=WhatsAppEmulator(world), sms=SmsEmulator(sms))


def mount_sandbox(app: FastAPI, emulators: SandboxEmulators) -> None:
    app.mount(
        WHATSAPP_EMULATOR_PATH, create_whatsapp_app(emulators.whatsapp), name="whatsapp-emulator"
    )
    app.mount(SMS_EMULATOR_PATH, create_sms_app(emulators.sms), name="sms-emulator")
