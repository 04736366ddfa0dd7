"""`wafile webhooks listen`'s one line per event (cli.webhooks.event_line)."""

from __future__ import annotations

from datetime import datetime

from wafile.cli.webhooks import event_line

AT = datetime(2026, 11, 23, 12, 0, 9, 250000)


def test_an_inbound_event_says_who_wrote_what_to_which_number() -> None:
    event = {
        "id": "evt_1",
        "type": "inbound.received",
        "to": "+15550009999",
        "inbound": {"id": "inb_1", "from_number": "+12015550101", "type": "text", "text": "hi"},
    }
    assert event_line(event, received=AT) == (
        "12:00:09.250  inb_1  inbound.received  +12015550101 -> +15550009999: hi"
    )
    event["inbound"] = {**event["inbound"], "type": "document", "text": None, "filename": "a.pdf"}
    assert event_line(event, received=AT, again=True).endswith(": a.pdf (again)")


def test_a_message_event_keeps_its_line() -> None:
    event = {
        "type": "attempt.sent",
        "sequence": 2,
        "subject": "attempt",
        "attempt": 0,
        "previous": "queued",
        "status": "sent",
        "message": {"id": "msg_1", "attempts": [{"number": 0, "channel": "whatsapp"}]},
    }
    assert event_line(event, received=AT) == (
        "12:00:09.250  msg_1  #2  attempt.sent whatsapp#0  queued -> sent"
    )
