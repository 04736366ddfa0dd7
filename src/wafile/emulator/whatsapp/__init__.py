"""An emulator of Meta's WhatsApp Cloud API, faithful enough to build wafile against.

Graph-style media and message routes with Meta's errors and statuses, signed webhooks
with retries, the 24-hour window and rate rules, virtual phones with scripted
behaviour (and magic numbers that need no set-up), an inbox per phone, and a control
API. Usage: `create_whatsapp_app(WhatsAppEmulator(load_world(path)))`; see
docs/emulator-whatsapp.md.
"""

from __future__ import annotations

from wafile.emulator.whatsapp.app import create_whatsapp_app
from wafile.emulator.whatsapp.magic import MAGIC_PHONES
from wafile.emulator.whatsapp.state import WhatsAppEmulator
from wafile.emulator.whatsapp.world import (
    BusinessNumber,
    Phone,
    Settings,
    Template,
    Timing,
    World,
    WorldError,
    load_world,
    parse_world,
    sandbox_world,
    world_document,
)

__all__ = [
    "MAGIC_PHONES",
    "BusinessNumber",
    "Phone",
    "Settings",
    "Template",
    "Timing",
    "WhatsAppEmulator",
    "World",
    "WorldError",
    "create_whatsapp_app",
    "load_world",
    "parse_world",
    "sandbox_world",
    "world_document",
]
