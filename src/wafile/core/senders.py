"""Senders: the business's own numbers on a channel, and how to reach its provider.

A sender belongs to one account and has a name unique in it. Its settings are plain
(`WhatsAppSender`), its credentials are kept apart (`WhatsAppSecrets`): the database
holds them only sealed, the API never shows them, and their repr hides them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from wafile.core.plan import Channel

__all__ = [
    "DEFAULT_GRAPH_URL",
    "DEFAULT_GRAPH_VERSION",
    "DEFAULT_MPS",
    "DEFAULT_SMS_MPS",
    "DEFAULT_TWILIO_URL",
    "MAX_MPS",
    "TEMPLATE_CATEGORIES",
    "Channel",
    "DefaultTemplate",
    "Sender",
    "SmsSecrets",
    "SmsSender",
    "TwilioSender",
    "WhatsAppSecrets",
    "WhatsAppSender",
    "check_sender",
    "check_sender_name",
    "check_sms_sender",
]

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"
DEFAULT_MPS = 80  # Meta's default throughput per business number
MAX_MPS = 1000  # Meta's highest tier
SENDER_NAME_MAX = 64
DEFAULT_TWILIO_URL = "https://api.twilio.com"
# Twilio queues what a number cannot send at once (1 segment/s for a long code); the
# limit here only keeps wafile from overflowing that queue (error 30001).
DEFAULT_SMS_MPS = 10
_ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DIGITS_RE = re.compile(r"^[0-9]{1,32}$")
_VERSION_RE = re.compile(r"^v[0-9]+\.[0-9]+$")
_TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
TEMPLATE_CATEGORIES = frozenset({"document", "image", "video"})


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultTemplate:
    """An approved template that carries a file of `category` as its header, used when
    the 24-hour window is closed and the request names no template (Telesign's
    `template: "file"`). Its one body parameter is the caption, else the filename."""

    category: str  # document | image | video
    name: str
    language: str = "en_US"


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatsAppSender:
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    graph_url: str = DEFAULT_GRAPH_URL
    graph_version: str = DEFAULT_GRAPH_VERSION
    mps: int = DEFAULT_MPS
    default_templates: tuple[DefaultTemplate, ...] = ()

    def default_template(self, category: str) -> DefaultTemplate | None:
        return next((t for t in self.default_templates if t.category == category), None)


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatsAppSecrets:
    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sender:
    id: str
    account_id: str
    name: str
    channel: Channel
    whatsapp: WhatsAppSender
    is_default: bool
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class TwilioSender:
    """An SMS sender on a Twilio-compatible Messages API: a from number or a Messaging
    Service (exactly one of them)."""

    account_sid: str
    from_number: str | None = None  # E.164, a short code or an alphanumeric sender id
    messaging_service_sid: str | None = None
    base_url: str = DEFAULT_TWILIO_URL
    mps: int = DEFAULT_SMS_MPS


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSecrets:
    auth_token: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSender:
    id: str
    account_id: str
    name: str
    sms: TwilioSender
    is_default: bool
    created_at: datetime

    @property
    def channel(self) -> Channel:
        return Channel.SMS


def check_sms_sender(config: TwilioSender, secrets: SmsSecrets) -> None:
    """`ValueError` naming the first bad field."""
    if not _ACCOUNT_SID_RE.match(config.account_sid):
        raise ValueError("account_sid must be AC followed by 32 hex digits")
    if (config.from_number is None) == (config.messaging_service_sid is None):
        raise ValueError("give exactly one of from_number and messaging_service_sid")
    if config.messaging_service_sid is not None and not _SERVICE_SID_RE.match(
        config.messaging_service_sid
    ):
        raise ValueError("messaging_service_sid must be MG followed by 32 hex digits")
    if config.from_number is not None and not 1 <= len(config.from_number) <= 32:
        raise ValueError("from_number must be a number, short code or sender id")
    url = urlsplit(config.base_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ValueError("base_url must be an http(s) URL such as https://api.twilio.com")
    if not 1 <= config.mps <= MAX_MPS:
        raise ValueError(f"mps must be between 1 and {MAX_MPS}")
    token = secrets.auth_token
    if not token or len(token) > 4096 or any(c.isspace() for c in token):
        raise ValueError("auth_token must be 1 to 4096 characters without spaces")


def check_sender_name(name: str) -> str:
    if not 1 <= len(name) <= SENDER_NAME_MAX:
        raise ValueError(f"sender name must be 1 to {SENDER_NAME_MAX} characters")
    if not _NAME_RE.match(name):
        raise ValueError(
            "sender name may hold only letters, digits, '.', '-' and '_', "
            "and must start with a letter or digit"
        )
    return name


def check_sender(config: WhatsAppSender, secrets: WhatsAppSecrets) -> None:
    """`ValueError` naming the first bad field."""
    for name in ("phone_number_id", "waba_id"):
        if not _DIGITS_RE.match(getattr(config, name)):
            raise ValueError(f"{name} must be Meta's numeric id (digits only)")
    digits = re.sub(r"[\s+()-]", "", config.display_phone_number)
    if not (digits.isdigit() and 6 <= len(digits) <= 15):
        raise ValueError("display_phone_number must be a phone number (6 to 15 digits)")
    url = urlsplit(config.graph_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ValueError("graph_url must be an http(s) URL such as https://graph.facebook.com")
    if not _VERSION_RE.match(config.graph_version):
        raise ValueError("graph_version must look like v23.0")
    if not 1 <= config.mps <= MAX_MPS:
        raise ValueError(f"mps must be between 1 and {MAX_MPS}")
    seen: set[str] = set()
    for t in config.default_templates:
        if t.category not in TEMPLATE_CATEGORIES or t.category in seen:
            raise ValueError("default_templates: one per category: document, image or video")
        if not _TEMPLATE_NAME_RE.match(t.name) or not 2 <= len(t.language) <= 16:
            raise ValueError("default_templates: a template name is [a-z0-9_], with a language")
        seen.add(t.category)
    for name in ("access_token", "app_secret", "verify_token"):
        value = getattr(secrets, name)
        if not value or len(value) > 4096 or any(c.isspace() for c in value):
            raise ValueError(f"{name} must be 1 to 4096 characters without spaces")
