from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.media_rules import (
    ACCEPTED_TYPES,
    EXTRA_TYPES,
    KB,
    MAX_SIZE,
    MB,
    RULES,
    Category,
    Route,
    accepts,
    category_of,
    route,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PPSX = "application/vnd.openxmlformats-officedocument.presentationml.slideshow"

# The reference's table (whatsapp-cloud-api.md section 4), written out independently.
META: dict[str, tuple[Category, int]] = {
    "image/jpeg": (Category.IMAGE, 5 * 1024 * 1024),
    "image/png": (Category.IMAGE, 5 * 1024 * 1024),
    "video/mp4": (Category.VIDEO, 16 * 1024 * 1024),
    "video/3gpp": (Category.VIDEO, 16 * 1024 * 1024),
    "audio/aac": (Category.AUDIO, 16 * 1024 * 1024),
    "audio/amr": (Category.AUDIO, 16 * 1024 * 1024),
    "audio/mpeg": (Category.AUDIO, 16 * 1024 * 1024),
    "audio/mp4": (Category.AUDIO, 16 * 1024 * 1024),
    "audio/ogg": (Category.AUDIO, 16 * 1024 * 1024),
    "text/plain": (Category.DOCUMENT, 100 * 1024 * 1024),
    "application/pdf": (Category.DOCUMENT, 100 * 1024 * 1024),
    "application/msword": (Category.DOCUMENT, 100 * 1024 * 1024),
    DOCX: (Category.DOCUMENT, 100 * 1024 * 1024),
    "application/vnd.ms-excel": (Category.DOCUMENT, 100 * 1024 * 1024),
    XLSX: (Category.DOCUMENT, 100 * 1024 * 1024),
    "application/vnd.ms-powerpoint": (Category.DOCUMENT, 100 * 1024 * 1024),
    PPTX: (Category.DOCUMENT, 100 * 1024 * 1024),
    "image/webp": (Category.STICKER, 500 * 1024),
}
# The 99digital seed's extras (and csv): accepted, always sent as documents.
SEED_EXTRAS: dict[str, Category] = {
    "image/gif": Category.IMAGE,
    "video/x-msvideo": Category.VIDEO,
    "application/zip": Category.DOCUMENT,
    "application/vnd.rar": Category.DOCUMENT,
    "text/csv": Category.DOCUMENT,
    PPSX: Category.DOCUMENT,
}
HUNDRED_MB = 100 * 1024 * 1024


def test_units_are_binary() -> None:
    assert KB == 1024
    assert MB == 1024 * 1024
    assert MAX_SIZE == HUNDRED_MB


def test_table_matches_the_reference() -> None:
    table = {
        mime: (rule.category, rule.max_size) for rule in RULES.values() for mime in rule.mime_types
    }
    assert table == META
    assert set(RULES) == set(Category)
    assert all(category == rule.category for category, rule in RULES.items())


def test_extras_match_the_seed() -> None:
    assert dict(EXTRA_TYPES) == SEED_EXTRAS
    assert not set(EXTRA_TYPES) & set(META)


def test_accepted_types_are_the_union() -> None:
    assert set(META) | set(SEED_EXTRAS) == ACCEPTED_TYPES


@pytest.mark.parametrize("mime", sorted(ACCEPTED_TYPES))
def test_accepts_every_accepted_type(mime: str) -> None:
    assert accepts(mime)
    assert accepts(mime.upper() + "; charset=utf-8")


@pytest.mark.parametrize(
    "mime",
    [
        "application/x-msdownload",
        "application/octet-stream",
        "image/bmp",
        "image/heic",
        "video/quicktime",
        "audio/x-wav",
        "text/html",
        "application/gzip",
        "image/jpg",  # an alias: mime.canonical resolves it before this point
        "",
    ],
)
def test_does_not_accept(mime: str) -> None:
    assert not accepts(mime)
    assert category_of(mime) is None


@pytest.mark.parametrize(("mime", "expected"), [*META.items()])
def test_meta_types_natively_up_to_their_limit(mime: str, expected: tuple[Category, int]) -> None:
    category, limit = expected
    for size in (0, 1, limit - 1, limit):
        result = route(mime, size)
        assert (result.sendable, result.sent_as, result.category) == (True, category, category)
        assert result.reason.startswith("sent as")


MEDIA = [(mime, rule) for mime, rule in META.items() if rule[0] is not Category.DOCUMENT]


@pytest.mark.parametrize(("mime", "expected"), MEDIA)
def test_media_over_their_limit_as_documents(mime: str, expected: tuple[Category, int]) -> None:
    category, limit = expected
    result = route(mime, limit + 1)
    assert result.sendable
    assert result.sent_as is Category.DOCUMENT
    assert result.category is category
    assert "larger than" in result.reason
    assert "document" in result.reason
    assert route(mime, HUNDRED_MB).sent_as is Category.DOCUMENT


@pytest.mark.parametrize("mime", sorted(ACCEPTED_TYPES))
def test_nothing_over_100_mb(mime: str) -> None:
    result = route(mime, HUNDRED_MB + 1)
    assert not result.sendable
    assert result.sent_as is None
    assert result.category is category_of(mime)
    assert "100 MB" in result.reason


@pytest.mark.parametrize(("mime", "category"), [*SEED_EXTRAS.items()])
def test_seed_extras_as_documents(mime: str, category: Category) -> None:
    for size in (1, 5 * MB, HUNDRED_MB):
        result = route(mime, size)
        assert result.sendable
        assert result.sent_as is Category.DOCUMENT
        assert result.category is category
        assert f"{mime} is not a WhatsApp {category} type" in result.reason


@pytest.mark.parametrize(
    ("mime", "size", "sent_as", "category"),
    [
        ("image/jpeg", 7 * MB, Category.DOCUMENT, Category.IMAGE),  # arrives, as a file
        ("image/png", 5 * MB + 1, Category.DOCUMENT, Category.IMAGE),
        ("image/webp", 100 * KB, Category.STICKER, Category.STICKER),
        ("image/webp", 500 * KB, Category.STICKER, Category.STICKER),
        ("image/webp", 500 * KB + 1, Category.DOCUMENT, Category.STICKER),
        ("video/mp4", 16 * MB, Category.VIDEO, Category.VIDEO),
        ("video/mp4", 16 * MB + 1, Category.DOCUMENT, Category.VIDEO),
        ("audio/ogg", 17 * MB, Category.DOCUMENT, Category.AUDIO),
        ("application/pdf", HUNDRED_MB, Category.DOCUMENT, Category.DOCUMENT),
        ("text/plain", 0, Category.DOCUMENT, Category.DOCUMENT),
    ],
)
def test_examples(mime: str, size: int, sent_as: Category, category: Category) -> None:
    result = route(mime, size)
    assert (result.sendable, result.sent_as, result.category) == (True, sent_as, category)


def test_refused_type() -> None:
    result = route("application/x-msdownload", 10)
    assert result == Route(
        sendable=False,
        sent_as=None,
        category=Category.DOCUMENT,
        reason="application/x-msdownload is not a type wafile sends over WhatsApp",
    )


def test_reasons_read_well() -> None:
    assert route("image/jpeg", 1).reason == "sent as an image (up to 5 MB)"
    assert route("audio/mpeg", 1).reason == "sent as audio (up to 16 MB)"
    assert route("image/webp", 1).reason == "sent as a sticker (up to 500 KB)"
    assert route("image/jpeg", 7 * MB).reason == (
        "larger than WhatsApp's limit of 5 MB for image files, so it is sent as a document"
    )


def test_route_ignores_case_and_parameters() -> None:
    assert route("IMAGE/JPEG; q=1", 1).sent_as is Category.IMAGE


def test_negative_size() -> None:
    with pytest.raises(ValueError, match="negative"):
        route("image/png", -1)


@given(mime=st.sampled_from(sorted(ACCEPTED_TYPES)), size=st.integers(0, 2 * HUNDRED_MB))
def test_route_properties(mime: str, size: int) -> None:
    result = route(mime, size)
    assert result.category is category_of(mime)
    assert result.sendable == (size <= HUNDRED_MB)
    assert (result.sent_as is None) == (not result.sendable)
    if result.sent_as is not None and result.sent_as is not Category.DOCUMENT:
        # Native only for Meta's own types, within the category's limit.
        assert result.sent_as is result.category
        assert META[mime] == (result.category, RULES[result.category].max_size)
        assert size <= RULES[result.category].max_size
