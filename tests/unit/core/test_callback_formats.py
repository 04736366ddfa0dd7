"""Callback formats (core.callback_formats): each one's retry schedule, and which
formats have something to say about an `inbound.received` event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wafile.core.callback_formats import FORMATS, RETRY_SCHEDULE, STANDARD, format_named
from wafile.core.callbacks import (
    INBOUND_RECEIVED,
    filter_matches,
    inbound_document,
    inbound_event_document,
    invalid_filters,
    retry_delay,
)
from wafile.core.inbound import Inbound

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_each_format_retries_on_its_documented_schedule() -> None:
    schedules = {name: known.retry_schedule for name, known in FORMATS.items()}
    assert schedules == {
        # wafile's (RETRY_SCHEDULE, or WAFILE_CALLBACK_RETRY_SCHEDULE): standard, and the
        # vendors whose documentation gives no schedule for these callbacks.
        STANDARD: None,
        "insider": None,
        "telesign": None,
        # 99digital (retry 1): the try, a retry at once, 5 min, 20 min, 1 h, 4 h, 24 h.
        "99digital": (0, 0, 300, 1200, 3600, 14400, 86400),
        # Sinch: 5 s after the try, then doubling; the last 81920 s after the failure.
        "sinch": (0, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960),
    }
    sinch = format_named("sinch").retry_schedule
    assert sinch is not None and abs(sum(sinch) - 81920) < 10


def test_wafiles_schedule_is_about_three_days() -> None:
    assert RETRY_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert timedelta(days=2.5) < timedelta(seconds=sum(RETRY_SCHEDULE)) < timedelta(days=3.5)


def test_a_99digital_delivery_gives_up_after_its_seventh_attempt() -> None:
    schedule = format_named("99digital").retry_schedule
    assert schedule is not None
    delays = [retry_delay(n, schedule, 0.0) for n in range(1, 8)]
    assert delays[:6] == [
        timedelta(0),
        timedelta(minutes=5),
        timedelta(minutes=20),
        timedelta(hours=1),
        timedelta(hours=4),
        timedelta(hours=24),
    ]
    assert delays[6] is None


def _inbound(**change: object) -> Inbound:
    values: dict[str, object] = {
        "id": "inb_1",
        "account_id": "acc_1",
        "sender_id": "snd_1",
        "provider_id": "wamid.1",
        "from_number": "+4915112345678",
        "profile_name": "Ada",
        "type": "document",
        "text": None,
        "provider_media_id": "1234",
        "media_filename": "a.pdf",
        "media_mime_type": "application/pdf",
        "caption": "here",
        "reply_to": None,
        "received_at": T0,
        "media_id": "med_1",
        **change,
    }
    return Inbound(**values)  # type: ignore[arg-type]


def test_the_inbound_event_carries_the_inbound_message_and_a_link_to_its_file() -> None:
    expires = T0 + timedelta(days=7)
    event = inbound_event_document(
        "evt_1",
        _inbound(),
        to="+15550009999",
        media_link=("https://w/f/med_1?s=x", expires),
        conversation_minutes_left=600,
    )
    assert event == {
        "id": "evt_1",
        "type": "inbound.received",
        "at": "2026-11-23T12:00:00Z",
        "to": "+15550009999",
        "inbound": inbound_document(_inbound()),
        "media_url": "https://w/f/med_1?s=x",
        "media_url_expires_at": "2026-11-30T12:00:00Z",
        "conversation_minutes_left": 600,
    }
    assert event["inbound"]["provider_message_id"] == "wamid.1"
    assert event["inbound"]["filename"] == "a.pdf"
    plain = inbound_event_document("evt_2", _inbound(), to="+1", media_link=None)
    assert (plain["media_url"], plain["media_url_expires_at"]) == (None, None)


def test_inbound_filters() -> None:
    assert invalid_filters(["inbound.*", INBOUND_RECEIVED]) == []
    assert invalid_filters(["inbound.sent"]) == ["inbound.sent"]
    assert filter_matches(("*",), INBOUND_RECEIVED)
    assert filter_matches(("inbound.*",), INBOUND_RECEIVED)
    assert not filter_matches(("message.*", "attempt.*"), INBOUND_RECEIVED)


def test_only_99digital_and_the_standard_format_report_inbound_messages() -> None:
    event = inbound_event_document("evt_1", _inbound(), to="+15550009999", media_link=None)
    built = {name: known.build(event) for name, known in FORMATS.items()}
    assert built[STANDARD] == event
    digital99 = built["99digital"]
    assert digital99 is not None and digital99["hook"] == "new"
    assert {name for name, body in built.items() if body is None} == {
        "insider",
        "telesign",
        "sinch",
    }
