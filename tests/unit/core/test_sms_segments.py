"""SMS segment counting: known cases and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.sms_segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    encoding_of,
    is_gsm7,
    segments,
    unit_cost,
)

GSM = Encoding.GSM7
UCS2 = Encoding.UCS2


@pytest.mark.parametrize(
    ("text", "encoding", "count", "units"),
    [
        ("", GSM, 1, 0),
        ("a" * 160, GSM, 1, 160),
        ("a" * 161, GSM, 2, 161),
        ("a" * 153 * 2, GSM, 2, 306),
        ("a" * (153 * 2 + 1), GSM, 3, 307),
        ("a" * 1530, GSM, 10, 1530),
        ("€" * 80, GSM, 1, 160),  # extension characters cost two septets
        ("€" * 81, GSM, 2, 162),
        ("[" + "a" * 158, GSM, 1, 160),
        ("[" + "a" * 159, GSM, 2, 161),
        ("Grüße, Jörg! ñ à é Ä Ø Å ß ¿ § ¤ ¥ £ @ $ _", GSM, 1, 42),
        ("a" * 68 + "😀", UCS2, 1, 70),
        ("a" * 69 + "😀", UCS2, 2, 71),
        ("😀" * 35, UCS2, 1, 70),  # an emoji is a surrogate pair: two units
        ("ç" * 70, UCS2, 1, 70),  # lower-case ç is not GSM-7 (only Ç is)
        ("ç" * 71, UCS2, 2, 71),
        ("ç" * 67 * 2, UCS2, 2, 134),
        ("ç" * (67 * 2 + 1), UCS2, 3, 135),
        ("`backtick`", UCS2, 1, 10),
        ("“smart quotes”", UCS2, 1, 14),
        ("Привет", UCS2, 1, 6),
    ],
)
def test_known_cases(text: str, encoding: Encoding, count: int, units: int) -> None:
    result = segments(text)
    assert result.encoding is encoding
    assert result.count == count
    assert result.units == units
    assert result.characters == len(text)
    assert "".join(result.parts) == text and len(result.parts) == count


def test_one_emoji_turns_the_whole_text_ucs2() -> None:
    assert segments("a" * 160).count == 1
    flipped = segments("a" * 159 + "😀")
    assert flipped.encoding is UCS2 and flipped.count == 3  # 161 units over 67-unit parts


def test_an_escape_pair_is_never_cut() -> None:
    # 152 septets, then € (2 septets) would straddle the 153-septet boundary.
    result = segments("a" * 152 + "€" + "a" * 152)
    assert result.units == 306
    assert result.parts == ("a" * 152, "€" + "a" * 151, "a")
    assert result.count == 3  # one more than ceil(306 / 153)


def test_a_surrogate_pair_is_never_cut() -> None:
    result = segments("ç" * 66 + "😀" + "ç" * 66)
    assert result.parts == ("ç" * 66, "😀" + "ç" * 65, "ç")


def test_character_tables() -> None:
    assert len(GSM7_BASIC) == 127 and "\x1b" not in GSM7_BASIC
    assert set("\f^{}\\[~]|€") == GSM7_EXTENSION
    assert is_gsm7("Hello @ 10:00 {ok}") and not is_gsm7("hello 😀")
    assert encoding_of("") is GSM
    assert unit_cost("€", GSM) == 2 and unit_cost("a", GSM) == 1
    assert unit_cost("😀", UCS2) == 2 and unit_cost("ç", UCS2) == 1


def _septets(part: str) -> int:
    return sum(2 if ch in GSM7_EXTENSION else 1 for ch in part)


def _utf16(part: str) -> int:
    return len(part.encode("utf-16-le")) // 2


gsm_chars = st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION))
gsm_texts = st.text(alphabet=gsm_chars, max_size=700)
any_texts = st.text(max_size=400)
mixed = st.text(alphabet=st.one_of(gsm_chars, st.sampled_from("ç😀👍🏽Ж“”`")), max_size=400)


@given(gsm_texts)
def test_gsm_only_text_is_never_ucs2(text: str) -> None:
    result = segments(text)
    assert result.encoding is GSM
    assert result.units == _septets(text)


@given(mixed)
def test_parts_fit_and_join_back(text: str) -> None:
    result = segments(text)
    assert "".join(result.parts) == text
    measure = _septets if result.encoding is GSM else _utf16
    room = 160 if result.encoding is GSM else 70
    if result.count > 1:
        room = 153 if result.encoding is GSM else 67
    assert all(measure(p) <= room for p in result.parts)
    assert result.units == measure(text)
    # At least the formula's count; at most one more per cut pair.
    if result.count > 1:
        assert result.count >= math.ceil(result.units / room)


@given(mixed)
def test_never_splits_a_pair(text: str) -> None:
    result = segments(text)
    measure = _septets if result.encoding is GSM else _utf16
    # Each part encodes on its own to exactly its share: no ESC+char or surrogate pair
    # is cut in two (its halves would be counted in two parts, or lost).
    assert sum(measure(p) for p in result.parts) == result.units
    for part in result.parts:
        part.encode("utf-16-le", "strict")  # no lone surrogate at a cut
    # A cut happens only where the next character does not fit whole.
    room = 153 if result.encoding is GSM else 67
    for here, after in zip(result.parts, result.parts[1:], strict=False):
        assert measure(here) + unit_cost(after[0], result.encoding) > room


@given(any_texts, any_texts)
def test_segments_are_monotone_in_length(text: str, more: str) -> None:
    # Appending never lowers the count (same encoding or not).
    assert segments(text + more).count >= segments(text).count


@given(st.integers(min_value=0, max_value=2000))
def test_plain_gsm_count_follows_the_formula(n: int) -> None:
    expected = 1 if n <= 160 else math.ceil(n / 153)
    assert segments("x" * n).count == expected


@given(st.integers(min_value=0, max_value=800))
def test_ucs2_count_follows_the_formula(n: int) -> None:
    expected = 1 if n <= 70 else math.ceil(n / 67)
    assert segments("ç" * n).count == expected
