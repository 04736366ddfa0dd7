"""An emulator of an SMS provider with Twilio's Messages API shape, faithful enough to
build wafile's SMS channel against.

`POST/GET /2010-04-01/Accounts/{AccountSid}/Messages...` with HTTP Basic auth, Twilio's
message JSON and error JSON, statuses queued -> sending -> sent -> delivered |
undelivered | failed, status callbacks signed with X-Twilio-Signature, segment counting,
virtual phones with scripted behaviour (and magic numbers that need no set-up), an inbox
per phone, and a control API. Usage: `create_sms_app(SmsEmulator(load_world(path)))`;
see docs/emulator-sms.md.
"""

from __future__ import annotations

from wafile.emulator.sms.app import create_sms_app
from wafile.emulator.sms.errors import ASYNC_ERRORS, SYNC_ERRORS, TwilioError
from wafile.emulator.sms.magic import INVALID, MAGIC_PHONES, OPTED_OUT, UNDELIVERED
from wafile.emulator.sms.state import SmsEmulator
from wafile.emulator.sms.world import (
    Account,
    Phone,
    Timing,
    World,
    WorldError,
    load_world,
    parse_world,
    sandbox_world,
    world_document,
)

__all__ = [
    "ASYNC_ERRORS",
    "INVALID",
    "MAGIC_PHONES",
    "OPTED_OUT",
    "SYNC_ERRORS",
    "UNDELIVERED",
    "Account",
    "Phone",
    "SmsEmulator",
    "Timing",
    "TwilioError",
    "World",
    "WorldError",
    "create_sms_app",
    "load_world",
    "parse_world",
    "sandbox_world",
    "world_document",
]
