from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.phones import InvalidNumber, to_e164, whatsapp_id


@pytest.mark.parametrize(
    "text",
    [
        "+4917612345678",
        "+49 176 1234 5678",
        "0049 176-1234-5678",
        "4917612345678",
        "+49 (176) 1234.5678",
        " +49/176/12345678 ",
    ],
)
def test_the_many_ways_to_write_one_number(text: str) -> None:
    assert to_e164(text) == "+4917612345678"


def test_magic_test_numbers_are_valid() -> None:
    for last in range(101, 114):
        assert to_e164(f"+1 201 555 0{last}") == f"+12015550{last}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not a phone number"),
        ("hello", "not a phone number"),
        ("+49 176 abc", "not a phone number"),
        ("+999 1234567", "no valid country code"),
        ("+49 1", "wrong length"),
        ("+1 555 000 1001", "not a number in use"),
        ("+" + "1" * 20, "not a phone number"),
    ],
)
def test_impossible_numbers_say_why(text: str, why: str) -> None:
    with pytest.raises(InvalidNumber, match=why):
        to_e164(text)


@given(st.text(max_size=40))
def test_never_crashes_and_results_are_canonical(text: str) -> None:
    try:
        e164 = to_e164(text)
    except InvalidNumber:
        return
    assert e164.startswith("+") and e164[1:].isdigit()
    assert to_e164(e164) == e164
    assert to_e164(whatsapp_id(e164)) == e164
