"""Which name a fetched file gets: explicit > Content-Disposition > URL > none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.filenames import MAX_NAME, clean, from_url, resolve


def test_the_order_of_sources() -> None:
    cd = "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%C3%A9t%C3%A9%20%E2%82%AC.pdf"
    url = "https://files.example/a/b/r%C3%A9sum%C3%A9.pdf?x=1"
    assert resolve(explicit="mine.pdf", content_disposition=cd, urls=(url,)) == "mine.pdf"
    assert resolve(explicit=None, content_disposition=cd, urls=(url,)) == "été €.pdf"
    assert resolve(explicit=" ", content_disposition=None, urls=(url,)) == "résumé.pdf"
    assert resolve(explicit=None, content_disposition="inline", urls=(url,)) == "résumé.pdf"
    assert resolve(explicit=None, content_disposition=None, urls=("https://x.example/",)) is None
    # The URL after redirects first, then the one asked for.
    assert (
        resolve(
            explicit=None,
            content_disposition=None,
            urls=("https://cdn.example/", "https://x.example/dl/report.pdf"),
        )
        == "report.pdf"
    )


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://x.example/files/report.pdf", "report.pdf"),
        ("https://x.example/files/", None),
        ("https://x.example/a%2Fb.pdf", "a/b.pdf"),  # decoded; `clean` cuts it later
        ("https://x.example/?download=1", None),
        ("https://x.example", None),
    ],
)
def test_from_url(url: str, name: str | None) -> None:
    assert from_url(url) == name


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cv.docx", "cv.docx"),
        ("  report.pdf. ", "report.pdf"),
        ("bad\x00\x1b[31mname.pdf", "bad[31mname.pdf"),
        ("..", None),
        ("", None),
        (None, None),
    ],
)
def test_clean(raw: str | None, shown: str | None) -> None:
    assert clean(raw) == shown


def test_a_long_name_keeps_its_extension() -> None:
    name = clean("x" * 1000 + ".pdf")
    assert name is not None and len(name) == MAX_NAME and name.endswith(".pdf")


@given(st.text())
def test_clean_never_returns_a_path_or_control_characters(raw: str) -> None:
    name = clean(raw)
    if name is not None:
        assert "/" not in name and "\\" not in name and 0 < len(name) <= MAX_NAME
        assert all(ch.isprintable() or ch == " " or not ch.isascii() for ch in name)
        assert name == name.strip()
