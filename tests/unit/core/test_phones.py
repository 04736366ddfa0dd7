from __future__ import annotations

import contextlib

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


def test_unassigned_numbers_of_the_right_length_only_when_asked() -> None:
    """Telesign's page's example (+1 555 867 5309) is possible, not valid: refused by
    default, accepted with `unassigned_ok` (the sandbox's Telesign dialect)."""
    with pytest.raises(InvalidNumber, match="not a number in use"):
        to_e164("15558675309")
    assert to_e164("15558675309", unassigned_ok=True) == "+15558675309"
    assert to_e164("+1 (555) 867-5309", unassigned_ok=True) == "+15558675309"
    for impossible, why in (("+49 1", "wrong length"), ("+999 1234567", "no valid country")):
        with pytest.raises(InvalidNumber, match=why):
            to_e164(impossible, unassigned_ok=True)


@given(st.text(max_size=40))
def test_unassigned_ok_only_widens(text: str) -> None:
    """Whatever the strict check accepts, the lenient one accepts as the same number;
    whatever the lenient one accepts is canonical E.164."""
    try:
        lenient = to_e164(text, unassigned_ok=True)
    except InvalidNumber:
        with pytest.raises(InvalidNumber):
            to_e164(text)
        return
    assert lenient.startswith("+") and lenient[1:].isdigit()
    assert to_e164(lenient, unassigned_ok=True) == lenient
    with contextlib.suppress(InvalidNumber):
        assert to_e164(text) == lenient
