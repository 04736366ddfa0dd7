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
    # 99digital with retry 1: the first try, a retry at once, then 5 min, 20 min, 1 h,
    # 4 h and 24 h later; the format retries on it, not on wafile's schedule.
    assert known.retry_schedule is digital99.RETRY_SCHEDULE
    minutes = [s / 60 for s in digital99.RETRY_SCHEDULE]
    assert minutes == [0, 0, 5, 20, 60, 240, 1440]


def inbound_event(**change: Any) -> dict[str, Any]:
    inbound = {
        "id": "inb_01",
        "sender_id": "snd_01",
        "provider_message_id": "wamid.HBgM",
        "from_number": "+972507654321",
        "profile_name": "Ronen",
        "type": "text",
        "text": "hello",
        "caption": None,
        "filename": None,
        "mime_type": None,
        "provider_media_id": None,
        "media_id": None,
        "media_error": None,
        "reply_to": None,
        "received_at": AT,
    }
    event = {
        "id": "evt_01",
        "type": "inbound.received",
        "at": AT,
        "to": "+972501234567",
        "inbound": inbound,
        "media_url": None,
        "media_url_expires_at": None,
        "conversation_minutes_left": 0,
    }
    for key, value in change.items():
        (event if key in ("to", "media_url", "conversation_minutes_left") else inbound)[key] = value
    return event


# The page's incoming-message webhook, every field of it.
PAGE_KEYS = {
    "status", "hook", "unique", "from", "from_id", "username", "country", "phone", "to",
    "senderName", "type", "body", "caption", "isForwarded", "timestamp", "media", "quote",
    "quoteUnique", "profilePic", "conversationTimeLeft",
}  # fmt: skip


def test_an_incoming_text_is_the_new_hook_of_the_page() -> None:
    hook = digital99.build(inbound_event())
    assert hook is not None and set(hook) == PAGE_KEYS
    assert {k: hook[k] for k in PAGE_KEYS - {"from_id"}} == {
        "status": "OK",
        "hook": "new",
        "unique": "wamid.HBgM",  # what sendFile's replyTo takes
        "from": "972507654321",
        "username": None,
        "country": "IL",
        "phone": "972507654321",
        "to": "972501234567",
        "senderName": "Ronen",
        "type": "text",
        "body": "hello",
        "caption": None,
        "isForwarded": False,
        "timestamp": "1600517209",
        "media": False,
        "quote": False,
        "quoteUnique": False,
        "profilePic": None,
        "conversationTimeLeft": "0",
    }
    # The billing conversation's minutes left, as the page's string.
    assert digital99.build(inbound_event(conversation_minutes_left=600))[
        "conversationTimeLeft"
    ] == ("600")
    # Country, a dot, 16 digits; stable per client and business number.
    country, digits = hook["from_id"].split(".")
    assert country == "IL" and len(digits) == 16 and digits.isdigit()
    assert digital99.from_id("snd_01", "+972507654321") == hook["from_id"]
    assert digital99.from_id("snd_02", "+972507654321") != hook["from_id"]


def test_an_incoming_file_is_a_link_to_the_stored_file_and_a_quote_names_its_message() -> None:
    link = "https://wafile.example/f/med_01?e=1&s=x"
    hook = digital99.build(
        inbound_event(
            type="document",
            text=None,
            caption="the contract",
            media_id="med_01",
            media_url=link,
            reply_to="wamid.QUOTED",
        )
    )
    assert hook is not None
    assert (hook["type"], hook["body"], hook["media"], hook["caption"]) == (
        "document",
        link,
        True,
        "the contract",
    )
    assert (hook["quote"], hook["quoteUnique"]) == (True, "wamid.QUOTED")
    # A file that could not be fetched: no link; a sticker is 99digital's image.
    refused = digital99.build(inbound_event(type="sticker", text=None, media_error="too large"))
    assert refused is not None
    assert (refused["type"], refused["body"], refused["media"]) == ("image", "", False)
    # Types wafile keeps no content of.
    located = digital99.build(inbound_event(type="location", text=None))
    assert located is not None and (located["type"], located["body"]) == ("location", "")
