from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.ranges import ByteRange, Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, ByteRange(start=0, end=1)),
        ("bytes=2-5", 10, ByteRange(start=2, end=6)),
        ("bytes=2-", 10, ByteRange(start=2, end=10)),
        ("bytes=-3", 10, ByteRange(start=7, end=10)),
        ("bytes=-30", 10, ByteRange(start=0, end=10)),
        ("bytes=5-100", 10, ByteRange(start=5, end=10)),
        ("bytes=9-9", 10, ByteRange(start=9, end=10)),
        ("bytes=0-1,4-5", 10, None),  # multi-range: whole file
        ("items=0-1", 10, None),
        ("bytes=5-2", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_ranges(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 10)


def test_content_range() -> None:
    assert ByteRange(start=2, end=6).content_range(10) == "bytes 2-5/10"


@given(st.text(max_size=40), st.integers(min_value=1, max_value=10**12))
def test_any_header_gives_a_range_inside_the_file_or_a_clear_answer(header: str, size: int) -> None:
    try:
        got = parse_range(header, size)
    except Unsatisfiable:
        return
    if got is not None:
        assert 0 <= got.start < got.end <= size
