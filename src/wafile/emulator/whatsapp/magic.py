"""Magic numbers: virtual phones that behave in a known way with no set-up at all.

+12015550101 is the ordinary user, and every number declared nowhere behaves like it.
Declared phones (world `phones`) win over these. All start with the 24-hour window
closed until they send something.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

from wafile.emulator.whatsapp.world import Phone

__all__ = [
    "FILE_FAILS",
    "MAGIC_PHONES",
    "NEVER_DELIVERED",
    "NEVER_READ",
    "NOT_ON_WHATSAPP",
    "ORDINARY",
    "THROTTLED_ONCE",
    "PhoneSource",
    "behaviour_of",
]

ORDINARY: Final = "12015550101"  # delivered ~0.5 s after sent, read ~2 s after that
NEVER_DELIVERED: Final = "12015550102"  # stays `sent`
NOT_ON_WHATSAPP: Final = "12015550103"  # failed 131026
NEVER_READ: Final = "12015550104"  # delivered, never read
FILE_FAILS: Final = "12015550105"  # messages with media fail 131053
THROTTLED_ONCE: Final = "12015550106"  # first send 130429, then like ORDINARY

PhoneSource = Literal["declared", "magic", "default"]

MAGIC_PHONES: Final[Mapping[str, Phone]] = MappingProxyType(
    {
        ORDINARY: Phone(number=ORDINARY, name="Ordinary User"),
        NEVER_DELIVERED: Phone(number=NEVER_DELIVERED, deliver_after=None, name="Offline User"),
        NOT_ON_WHATSAPP: Phone(number=NOT_ON_WHATSAPP, on_whatsapp=False, name="No WhatsApp"),
        NEVER_READ: Phone(number=NEVER_READ, read_after=None, name="Unread User"),
        FILE_FAILS: Phone(number=FILE_FAILS, fail_files_with=131053, name="Broken Files"),
        THROTTLED_ONCE: Phone(number=THROTTLED_ONCE, throttle_first=1, name="Throttled User"),
    }
)


def behaviour_of(number: str, declared: Phone | None) -> tuple[Phone, PhoneSource]:
    """The script a phone follows: its declaration, its magic, or the ordinary user's."""
    if declared is not None:
        return declared, "declared"
    magic = MAGIC_PHONES.get(number)
    if magic is not None:
        return magic, "magic"
    return Phone(number=number, name="Test User"), "default"
