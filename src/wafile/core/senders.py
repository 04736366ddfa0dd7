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
    "MAX_MPS",
    "TEMPLATE_CATEGORIES",
    "Channel",
    "DefaultTemplate",
    "Sender",
    "WhatsAppSecrets",
    "WhatsAppSender",
    "check_sender",
    "check_sender_name",
]

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"
DEFAULT_MPS = 80  # Meta's default throughput per business number
MAX_MPS = 1000  # Meta's highest tier
SENDER_NAME_MAX = 64
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
