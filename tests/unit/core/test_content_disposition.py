from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.content_disposition import attachment, filename_from


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="a b.pdf"', "a b.pdf"),
        ("attachment; filename=plain.txt", "plain.txt"),
        # filename* (RFC 5987) wins over filename, in either order
        ("attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf; filename=\"x.pdf\"", "€ rates.pdf"),
        ("attachment; filename=\"x.pdf\"; filename*=UTF-8''%E2%82%AC%20rates.pdf", "€ rates.pdf"),
        ('form-data; name="file"; filename="Straße \\"q\\".pdf"', 'Straße "q".pdf'),
        ('form-data; name="file"; filename="../../etc/passwd"', "../../etc/passwd"),
        ('attachment; filename="ünïcödé.txt"', "ünïcödé.txt"),
        ("attachment", None),
        ('attachment; filename=""', None),
        (None, None),
    ],
)
def test_filename_from(header: str | None, expected: str | None) -> None:
    assert filename_from(header) == expected


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60
).filter(lambda s: s.strip() != "")


@given(names)
def test_attachment_round_trips_any_name(name: str) -> None:
    header = attachment(name)
    assert header.isascii()
    assert filename_from(header) == name


def test_ascii_fallback_is_safe() -> None:
    header = attachment('Straße "q" €/x.pdf')
    assert header.startswith('attachment; filename="Strase _q_ _x.pdf"') or '"' not in header[22:40]
    assert "/" not in header.split(";")[1]
