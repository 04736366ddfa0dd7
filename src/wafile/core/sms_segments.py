"""How many SMS segments a text costs, and in which encoding (3GPP TS 23.038).

A text goes GSM-7 when every character is in the GSM 03.38 basic table or its extension
table, UCS-2 otherwise (one character outside GSM-7 switches the whole text). GSM-7
counts septets, an extension character two (ESC + char); UCS-2 counts UTF-16 code units,
a character outside the BMP two (a surrogate pair). One segment holds 160 septets or 70
units; a concatenated message loses room to its header, 153 septets or 67 units each.
Splitting never cuts an escape pair or a surrogate pair, so a long text with such
characters can need one segment more than `ceil(units / 153)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "MULTI_PART",
    "SINGLE_PART",
    "Encoding",
    "SmsSegments",
    "encoding_of",
    "is_gsm7",
    "segments",
    "unit_cost",
]


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


# The basic table without ESC (0x1B), which is no character of its own.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

SINGLE_PART: Final = {Encoding.GSM7: 160, Encoding.UCS2: 70}
MULTI_PART: Final = {Encoding.GSM7: 153, Encoding.UCS2: 67}


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSegments:
    encoding: Encoding
    count: int  # segments billed; an empty text is one (empty) segment
    characters: int  # Unicode characters (code points) in the text
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text
    parts: tuple[str, ...]  # the text of each segment, in order; they join to the text


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def encoding_of(text: str) -> Encoding:
    return Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2


def unit_cost(ch: str, encoding: Encoding) -> int:
    """Septets or UTF-16 code units one character takes in `encoding`."""
    if encoding is Encoding.GSM7:
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def segments(text: str) -> SmsSegments:
    encoding = encoding_of(text)
    costs = [unit_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units <= SINGLE_PART[encoding]:
        parts: tuple[str, ...] = (text,)
    else:
        parts = _split(text, costs, MULTI_PART[encoding])
    return SmsSegments(
        encoding=encoding, count=len(parts), characters=len(text), units=units, parts=parts
    )


def _split(text: str, costs: list[int], room: int) -> tuple[str, ...]:
    """Greedy split: a character that does not fit whole starts the next segment."""
    parts: list[str] = []
    start = used = 0
    for i, cost in enumerate(costs):
        if used + cost > room:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return tuple(parts)
