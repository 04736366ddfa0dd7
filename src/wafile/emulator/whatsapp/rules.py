"""Meta's media rules as the emulator enforces them: types and size limits per category,
caption, filename and text limits, and a look at the file's first bytes.

This is the test double's own copy of the table in the reference (section "4. Media
rules"), kept apart from wafile's `core.media_rules` on purpose: if both shared one table,
a mistake in it could never show up as a failed send.

Choices where the reference is silent (documented in docs/emulator-whatsapp.md):
- "MB"/"KB" are binary (1 MB = 1024 * 1024 bytes).
- A `document` carries any type Meta accepts at upload (plus the world's
  `extra_document_types`); image, video, audio and sticker carry only their own types.
- Filenames are limited to 240 characters (Meta documents no limit).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "CAPTION_MAX",
    "FILENAME_MAX",
    "KB",
    "MB",
    "MEDIA_TYPES",
    "RULES",
    "STICKER_ANIMATED_MAX",
    "STICKER_STATIC_MAX",
    "TEXT_MAX",
    "UPLOAD_MAX",
    "CategoryRule",
    "bare_mime",
    "category_of",
    "content_matches",
    "is_animated_webp",
    "max_size_for",
    "send_problem",
    "upload_problem",
]

KB: Final = 1024
MB: Final = 1024 * KB
UPLOAD_MAX: Final = 100 * MB  # Cloud API ceiling for any media
STICKER_STATIC_MAX: Final = 100 * KB
STICKER_ANIMATED_MAX: Final = 500 * KB
CAPTION_MAX: Final = 1024
TEXT_MAX: Final = 4096
FILENAME_MAX: Final = 240

MEDIA_TYPES: Final = ("audio", "document", "image", "sticker", "video")


@dataclass(frozen=True, kw_only=True, slots=True)
class CategoryRule:
    category: str
    mime_types: frozenset[str]
    max_size: int  # bytes, inclusive (stickers: the animated limit; see max_size_for)
    caption: bool  # whether a caption is allowed


RULES: Final[Mapping[str, CategoryRule]] = MappingProxyType(
    {
        "audio": CategoryRule(
            category="audio",
            mime_types=frozenset(
                {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}
            ),
            max_size=16 * MB,
            caption=False,
        ),
        "document": CategoryRule(
            category="document",
            mime_types=frozenset(
                {
                    "text/plain",
                    "application/pdf",
                    "application/msword",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.ms-excel",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                }
            ),
            max_size=100 * MB,
            caption=True,
        ),
        "image": CategoryRule(
            category="image",
            mime_types=frozenset({"image/jpeg", "image/png"}),
            max_size=5 * MB,
            caption=True,
        ),
        "sticker": CategoryRule(
            category="sticker",
            mime_types=frozenset({"image/webp"}),
            max_size=STICKER_ANIMATED_MAX,
            caption=False,
        ),
        "video": CategoryRule(
            category="video",
            mime_types=frozenset({"video/mp4", "video/3gpp"}),
            max_size=16 * MB,
            caption=True,
        ),
    }
)

_NATURAL: Final = MappingProxyType(
    {mime: rule.category for rule in RULES.values() for mime in rule.mime_types}
)

_OLE: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office (doc, xls, ppt)
_ZIP: Final = b"PK\x03\x04"  # OOXML (docx, xlsx, pptx)


def bare_mime(value: str) -> str:
    """`Audio/OGG; codecs=opus` -> `audio/ogg`."""
    return value.split(";", 1)[0].strip().lower()


def category_of(mime: str) -> str | None:
    """Meta's category for one of its listed types, None for any other type."""
    return _NATURAL.get(bare_mime(mime))


def is_animated_webp(data: bytes) -> bool:
    """An extended WebP (VP8X) with its animation flag set."""
    return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)


def max_size_for(category: str, data: bytes) -> int:
    if category == "sticker":
        return STICKER_ANIMATED_MAX if is_animated_webp(data) else STICKER_STATIC_MAX
    return RULES[category].max_size


def content_matches(mime: str, data: bytes) -> bool:
    """Whether the first bytes fit the claimed type, for types with a clear signature.

    Meta processes every file; a PDF that is really a ZIP fails there. Types without a
    signature (text/plain, extra document types) always match.
    """
    head = data[:64]
    match bare_mime(mime):
        case "application/pdf":
            return head.startswith(b"%PDF-")
        case "image/jpeg":
            return head.startswith(b"\xff\xd8\xff")
        case "image/png":
            return head.startswith(b"\x89PNG\r\n\x1a\n")
        case "image/webp":
            return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
        case "video/mp4" | "video/3gpp" | "audio/mp4":
            return head[4:8] == b"ftyp"
        case "audio/ogg":
            # Meta takes Ogg with the OPUS codec only (a voice note); Vorbis is refused.
            return head.startswith(b"OggS") and b"OpusHead" in head
        case "audio/mpeg":
            return head.startswith(b"ID3") or (len(head) > 1 and _mpeg_sync(head))
        case "audio/amr":
            return head.startswith(b"#!AMR")
        case "audio/aac":
            return head.startswith(b"ADIF") or (len(head) > 1 and _mpeg_sync(head))
        case "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint":
            return head.startswith(_OLE)
        case m if m.startswith("application/vnd.openxmlformats-officedocument."):
            return head.startswith(_ZIP)
        case _:
            return True


def _mpeg_sync(head: bytes) -> bool:
    return head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def upload_problem(
    mime: str, data: bytes, extra_document_types: Collection[str] = ()
) -> tuple[int, str] | None:
    """Why POST /media refuses this file, as (Graph error code, details); None if it may.

    Per-category size limits are checked when the media is sent, as Meta does ("per-type
    limits apply after processing"); an upload only has to fit the 100 MB ceiling.
    """
    kind = bare_mime(mime)
    if category_of(kind) is None and kind not in extra_document_types:
        allowed = ", ".join(sorted(_NATURAL))
        return 100, f"Param file must be a file with one of the following types: {allowed}"
    if not data:
        return 131053, "The uploaded file is empty."
    if len(data) > UPLOAD_MAX:
        return 131053, f"The file is {len(data)} bytes; the limit for any media is {UPLOAD_MAX}."
    if not content_matches(kind, data):
        return 131053, f"The file's content is not a valid {kind} file."
    return None


def send_problem(
    category: str, mime: str, data: bytes, extra_document_types: Collection[str] = ()
) -> str | None:
    """Why media of this type and content cannot be sent as `category`; None if it can."""
    kind = bare_mime(mime)
    natural = category_of(kind)
    if category == "document":
        if natural is None and kind not in extra_document_types:
            return f"{kind} is not a supported document type."
    elif kind not in RULES[category].mime_types:
        allowed = ", ".join(sorted(RULES[category].mime_types))
        return f"{kind} cannot be sent as {category}; {category} takes {allowed}."
    if not content_matches(kind, data):
        return f"The file's content is not a valid {kind} file."
    limit = max_size_for(category, data)
    if len(data) > limit:
        return f"The file is {len(data)} bytes; {category} media may be at most {limit} bytes."
    return None
