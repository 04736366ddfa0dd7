"""WhatsApp's media rules in one table, and the one decision of how a file travels.

Facts: shared/reference/whatsapp-cloud-api.md, section "4. Media rules" (Meta's
"Supported media types"), plus the formats the 99digital seed promises beyond Meta's
list (gif, avi, zip, rar, ppts; csv as reference section 4 mentions), which
WhatsApp carries only as documents.

Every function here takes a canonical MIME type (lower case, no parameters, aliases
resolved): `wafile.core.mime.reconcile` produces one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "ACCEPTED_TYPES",
    "EXTRA_TYPES",
    "KB",
    "MAX_SIZE",
    "MB",
    "RULES",
    "STICKER_STATIC_MAX_SIZE",
    "Category",
    "Route",
    "Rule",
    "accepts",
    "category_of",
    "route",
]

# The reference gives sizes as "5 MB" / "100 KB" without saying which MB; we read them
# as binary units (1 MB = 1024 * 1024 bytes). If Meta meant decimal, a file between
# the two readings is refused at send time (131053), not lost.
KB: Final = 1024
MB: Final = 1024 * KB


class Category(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """What WhatsApp sends natively in one category, and up to what size."""

    category: Category
    mime_types: frozenset[str]
    max_size: int  # bytes, inclusive


_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_PPSX = "application/vnd.openxmlformats-officedocument.presentationml.slideshow"

RULES: Final[Mapping[Category, Rule]] = MappingProxyType(
    {
        rule.category: rule
        for rule in (
            Rule(
                category=Category.IMAGE,
                mime_types=frozenset({"image/jpeg", "image/png"}),
                max_size=5 * MB,
            ),
            Rule(
                category=Category.VIDEO,
                mime_types=frozenset({"video/mp4", "video/3gpp"}),
                max_size=16 * MB,
            ),
            Rule(
                category=Category.AUDIO,
                # audio/ogg only with the Opus codec; the type alone cannot tell.
                mime_types=frozenset(
                    {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}
                ),
                max_size=16 * MB,
            ),
            Rule(
                category=Category.DOCUMENT,
                mime_types=frozenset(
                    {
                        "text/plain",
                        "application/pdf",
                        "application/msword",
                        _DOCX,
                        "application/vnd.ms-excel",
                        _XLSX,
                        "application/vnd.ms-powerpoint",
                        _PPTX,
                    }
                ),
                max_size=100 * MB,
            ),
            Rule(
                category=Category.STICKER,
                # 500 KB is the animated limit; a static sticker may be only 100 KB,
                # but the MIME type cannot tell the two apart.
                mime_types=frozenset({"image/webp"}),
                max_size=500 * KB,
            ),
        )
    }
)

# Meta's limit for static stickers, for callers that know the file is not animated.
STICKER_STATIC_MAX_SIZE: Final = 100 * KB

# Cloud API ceiling for any media message: the largest per-category limit.
MAX_SIZE: Final = RULES[Category.DOCUMENT].max_size

# Formats 99digital promises that Meta does not list: always sent as documents,
# under the category a person would file them in (what the media object shows).
EXTRA_TYPES: Final[Mapping[str, Category]] = MappingProxyType(
    {
        "image/gif": Category.IMAGE,
        "video/x-msvideo": Category.VIDEO,  # avi
        "application/zip": Category.DOCUMENT,
        "application/vnd.rar": Category.DOCUMENT,
        "text/csv": Category.DOCUMENT,
        _PPSX: Category.DOCUMENT,  # the seed's "ppts": a PowerPoint show (.ppsx)
    }
)

_NATURAL: Final[Mapping[str, Category]] = MappingProxyType(
    {
        **{mime: rule.category for rule in RULES.values() for mime in rule.mime_types},
        **EXTRA_TYPES,
    }
)

# Every type wafile stores at all; anything else is answered with 415.
ACCEPTED_TYPES: Final[frozenset[str]] = frozenset(_NATURAL)


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """How a file travels over WhatsApp, or why it cannot."""

    sendable: bool
    sent_as: Category | None  # None when not sendable
    category: Category  # the file's natural category, whatever it is sent as
    reason: str


def accepts(mime_type: str) -> bool:
    """Whether wafile stores files of this type at all (parameters are ignored)."""
    return _bare(mime_type) in ACCEPTED_TYPES


def category_of(mime_type: str) -> Category | None:
    """The natural WhatsApp category of an accepted type, None for any other."""
    return _NATURAL.get(_bare(mime_type))


def route(mime_type: str, size: int) -> Route:
    """Decide how a file of this canonical type and size (bytes) goes over WhatsApp.

    Natively in its category when the type is Meta's and the size fits; otherwise as
    a document while it fits the 100 MB ceiling (a 7 MB JPEG still arrives, as a
    file); otherwise not at all.
    """
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    mime = _bare(mime_type)
    category = _NATURAL.get(mime)
    if category is None:
        return Route(
            sendable=False,
            sent_as=None,
            category=Category.DOCUMENT,
            reason=f"{mime} is not a type wafile sends over WhatsApp",
        )
    if size > MAX_SIZE:
        return Route(
            sendable=False,
            sent_as=None,
            category=category,
            reason=f"larger than WhatsApp's limit of {_human(MAX_SIZE)} for any file",
        )
    rule = RULES[category]
    if mime in rule.mime_types and size <= rule.max_size:
        return Route(
            sendable=True,
            sent_as=category,
            category=category,
            reason=f"sent as {_article(category)} (up to {_human(rule.max_size)})",
        )
    if mime in rule.mime_types:
        why = f"larger than WhatsApp's limit of {_human(rule.max_size)} for {category} files"
    else:
        why = f"{mime} is not a WhatsApp {category} type"
    return Route(
        sendable=True,
        sent_as=Category.DOCUMENT,
        category=category,
        reason=f"{why}, so it is sent as a document",
    )


def _bare(mime_type: str) -> str:
    return mime_type.split(";", 1)[0].strip().lower()


def _article(category: Category) -> str:
    if category is Category.AUDIO:
        return "audio"
    return f"an {category}" if category[0] in "aeiou" else f"a {category}"


def _human(n: int) -> str:
    if n % MB == 0:
        return f"{n // MB} MB"
    if n % KB == 0:
        return f"{n // KB} KB"
    return f"{n} bytes"
