"""The emulator's own copy of Meta's media rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.emulator.whatsapp import rules

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PDF = b"%PDF-1.7\n"


def webp(size: int, animated: bool = False) -> bytes:
    head = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00" + bytes([0x02 if animated else 0])
    return head + b"\x00" * (size - len(head))


def test_categories_follow_the_reference_table() -> None:
    assert rules.RULES["image"].mime_types == {"image/jpeg", "image/png"}
    assert rules.RULES["image"].max_size == 5 * 1024 * 1024
    assert rules.RULES["video"].max_size == rules.RULES["audio"].max_size == 16 * 1024 * 1024
    assert rules.RULES["document"].max_size == 100 * 1024 * 1024 == rules.UPLOAD_MAX
    assert len(rules.RULES["document"].mime_types) == 8
    assert not rules.RULES["audio"].caption and not rules.RULES["sticker"].caption
    assert rules.CAPTION_MAX == 1024 and rules.TEXT_MAX == 4096
    assert rules.category_of("Audio/OGG; codecs=opus") == "audio"
    assert rules.category_of("image/webp") == "sticker"
    assert rules.category_of("application/zip") is None


@pytest.mark.parametrize(
    ("mime", "data", "ok"),
    [
        ("application/pdf", PDF, True),
        ("application/pdf", PNG, False),
        ("image/png", PNG, True),
        ("image/jpeg", b"\xff\xd8\xff\xe0rest", True),
        ("image/jpeg", PNG, False),
        ("image/webp", webp(64), True),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", True),
        ("video/3gpp", b"\x00\x00\x00\x18ftyp3gp4", True),
        ("video/mp4", PDF, False),
        ("audio/ogg", b"OggS" + b"\x00" * 24 + b"OpusHead", True),
        ("audio/ogg", b"OggS" + b"\x00" * 24 + b"\x01vorbis", False),
        ("audio/mpeg", b"ID3\x04rest", True),
        ("audio/mpeg", b"\xff\xfbrest", True),
        ("audio/amr", b"#!AMR\n", True),
        ("audio/aac", b"\xff\xf1rest", True),
        ("application/msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", True),
        ("application/vnd.ms-excel", PDF, False),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04", True),
        ("application/vnd.openxmlformats-officedocument.presentationml.presentation", PDF, False),
        ("text/plain", b"anything at all", True),
    ],
)
def test_content_matches(mime: str, data: bytes, ok: bool) -> None:
    assert rules.content_matches(mime, data) is ok


def test_upload_problems() -> None:
    assert rules.upload_problem("application/pdf", PDF) is None
    code, details = rules.upload_problem("application/zip", b"PK\x03\x04") or (0, "")
    assert code == 100 and "application/pdf" in details
    assert rules.upload_problem("application/zip", b"PK", ["application/zip"]) is None
    assert (rules.upload_problem("application/pdf", b"") or (0,))[0] == 131053
    assert (rules.upload_problem("image/png", PDF) or (0,))[0] == 131053
    # Per-category limits wait for the send; only the ceiling applies at upload.
    assert rules.upload_problem("image/png", PNG + b"\x00" * (6 * 1024 * 1024)) is None
    huge = PDF + b"\x00" * (rules.UPLOAD_MAX + 1 - len(PDF))
    assert (rules.upload_problem("application/pdf", huge) or (0,))[0] == 131053
    assert rules.upload_problem("application/pdf", huge[:-1]) is None


@given(size=st.integers(min_value=len(PNG), max_value=6 * 1024 * 1024))
def test_image_size_limit_is_inclusive(size: int) -> None:
    data = PNG + b"\x00" * (size - len(PNG))
    problem = rules.send_problem("image", "image/png", data)
    assert (problem is None) == (size <= 5 * 1024 * 1024)
    assert rules.send_problem("document", "image/png", data) is None  # any Meta type


@given(size=st.integers(min_value=32, max_value=600 * 1024), animated=st.booleans())
def test_sticker_limits(size: int, animated: bool) -> None:
    data = webp(size, animated)
    assert rules.is_animated_webp(data) is animated
    limit = rules.STICKER_ANIMATED_MAX if animated else rules.STICKER_STATIC_MAX
    assert (rules.send_problem("sticker", "image/webp", data) is None) == (size <= limit)


def test_send_problems_by_category() -> None:
    assert rules.send_problem("video", "application/pdf", PDF) is not None
    assert rules.send_problem("image", "image/webp", webp(64)) is not None
    assert rules.send_problem("document", "application/zip", b"PK") is not None
    assert rules.send_problem("document", "application/zip", b"PK", ["application/zip"]) is None
    assert rules.send_problem("document", "application/pdf", PNG) is not None
