"""Magic numbers: phones that behave in a known way with no set-up at all.

Every number declared nowhere behaves like ORDINARY: delivered ~0.5 s (scaled) after
`sent`. Declared phones (world `phones`) win over these.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

from wafile.emulator.sms.world import Phone

__all__ = [
    "INVALID",
    "MAGIC_PHONES",
    "OPTED_OUT",
    "UNDELIVERED",
    "PhoneSource",
    "behaviour_of",
]

UNDELIVERED: Final = "+12015550111"  # sent, then undelivered with 30003
INVALID: Final = "+12015550112"  # refused at once: 400, 21211
OPTED_OUT: Final = "+12015550113"  # refused at once: 400, 21610 (replied STOP)

PhoneSource = Literal["declared", "magic", "default"]

MAGIC_PHONES: Final[Mapping[str, Phone]] = MappingProxyType(
    {
        UNDELIVERED: Phone(number=UNDELIVERED, fail_with=30003),
        INVALID: Phone(number=INVALID, fail_with=21211),
        OPTED_OUT: Phone(number=OPTED_OUT, fail_with=21610),
    }
)


def behaviour_of(number: str, declared: Phone | None) -> tuple[Phone, PhoneSource]:
    """The script a phone follows: its declaration, its magic, or the ordinary one."""
    if declared is not None:
        return declared, "declared"
    magic = MAGIC_PHONES.get(number)
    if magic is not None:
        return magic, "magic"
    return Phone(number=number), "default"
