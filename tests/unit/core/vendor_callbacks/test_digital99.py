"""99digital's status hooks (core.vendor_callbacks.digital99)."""

from __future__ import annotations

from typing import Any

from wafile.core.callback_formats import format_named
from wafile.core.vendor_callbacks import digital99

AT = "2020-09-19T12:06:49Z"  # 1600517209, the page's incoming hook's timestamp


def event(
    status: str, channel: str = "whatsapp", *, kind: str = "attempt", error: str | None = None
) -> dict[str, Any]:
    return {
        "type": f"{kind}.{status}",
        "status": status,
        "attempt": 0,
        "at": AT,
        "message": {
            "id": "msg_01dpnxz0wcf9xd19mh84xd0p62",
            "to": "+972501234567",
            "attempts": [{"number": 0, "channel": channel, "status": status, "error": error}],
        },
    }


def test_sent_delivered_and_read_are_hooks_naming_the_send_unique() -> None:
    for status in ("sent", "delivered", "read"):
        assert digital99.build(event(status)) == {
            "status": "OK",
            "hook": status,
            "unique": "msg_01dpnxz0wcf9xd19mh84xd0p62",
            "to": "972501234567",
            "timestamp": "1600517209",
        }


def test_a_failure_carries_its_error() -> None:
    failed = digital99.build(event("failed", error="not a WhatsApp user"))
    assert failed is not None
    assert (failed["hook"], failed["error"]) == ("failed", "not a WhatsApp user")
    unexplained = digital99.build(event("failed"))
    assert unexplained is not None and unexplained["error"]


def test_nothing_else_is_reported() -> None:
    assert digital99.build(event("queued")) is None
    assert digital99.build(event("timed_out")) is None
    assert digital99.build(event("delivered", channel="sms")) is None
    assert digital99.build(event("delivered", kind="message")) is None


def test_registered_unsigned_and_retry_schedule_as_the_vendor_says() -> None:
    known = format_named("99digital")
    assert known.build is digital99.build and known.sign is None
    minutes = [s / 60 for s in digital99.RETRY_SCHEDULE]
    assert minutes == [0, 5, 20, 60, 240, 1440]
