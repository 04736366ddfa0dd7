"""Recipients' phone numbers: whatever people type, to E.164 (`+4915112345678`).

Numbers are international: `+49 151 ...`, `0049151...` and `49151...` (WhatsApp's and
Telesign's digits-only form) all mean the same number. A number that cannot exist
(wrong length for its country) or is not in use in its country's numbering plan is
refused with the reason, before anything is sent or paid for. Only a caller that
asks (`unassigned_ok`: the sandbox's Telesign dialect, whose vendor checks the length
alone and whose page's example is a fictional number) gets a number of the right
length that its numbering plan does not assign.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["InvalidNumber", "to_e164", "whatsapp_id"]

_SEPARATORS = re.compile(r"[\s().\-/]")


class InvalidNumber(ValueError):
    """The text is not a phone number wafile can send to; the message says why."""


def to_e164(text: str, *, unassigned_ok: bool = False) -> str:
    raw = _SEPARATORS.sub("", text.strip())
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif not raw.startswith("+"):
        raw = "+" + raw
    if not raw[1:].isdigit() or not 2 <= len(raw) <= 17:
        raise InvalidNumber(f"{text!r} is not a phone number: use digits with the country code")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidNumber(f"{text!r} has no valid country code") from None
        raise InvalidNumber(f"{text!r} cannot be a number: wrong length for its country") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidNumber(f"{text!r} cannot be a number: wrong length for its country")
    if not unassigned_ok and not phonenumbers.is_valid_number(number):
        raise InvalidNumber(f"{text!r} is not a number in use in its country's numbering plan")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def whatsapp_id(e164: str) -> str:
    """WhatsApp's form of a number: the E.164 digits without `+`."""
    return e164.removeprefix("+")
