"""The magic numbers, exactly as the issue lists them."""

from __future__ import annotations

from wafile.emulator.whatsapp.magic import MAGIC_PHONES, behaviour_of
from wafile.emulator.whatsapp.world import Phone


def test_the_six_magic_numbers() -> None:
    assert sorted(MAGIC_PHONES) == [f"1201555010{n}" for n in range(1, 7)]
    ordinary = MAGIC_PHONES["12015550101"]
    assert (ordinary.deliver_after, ordinary.read_after, ordinary.on_whatsapp) == (0.5, 2.0, True)
    assert MAGIC_PHONES["12015550102"].deliver_after is None
    assert MAGIC_PHONES["12015550103"].on_whatsapp is False
    never_read = MAGIC_PHONES["12015550104"]
    assert never_read.deliver_after == 0.5 and never_read.read_after is None
    assert MAGIC_PHONES["12015550105"].fail_files_with == 131053
    assert MAGIC_PHONES["12015550105"].fail_with is None
    assert MAGIC_PHONES["12015550106"].throttle_first == 1
    assert not any(p.window_open for p in MAGIC_PHONES.values())


def test_declared_beats_magic_beats_default() -> None:
    declared = Phone(number="12015550103", on_whatsapp=True)
    assert behaviour_of("12015550103", declared) == (declared, "declared")
    assert behaviour_of("12015550103", None) == (MAGIC_PHONES["12015550103"], "magic")
    phone, source = behaviour_of("4930123456", None)
    ordinary = MAGIC_PHONES["12015550101"]
    assert source == "default" and phone.number == "4930123456"
    assert (phone.deliver_after, phone.read_after, phone.window_open) == (
        ordinary.deliver_after,
        ordinary.read_after,
        False,
    )
