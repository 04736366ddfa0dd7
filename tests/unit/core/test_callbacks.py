from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from wafile.core.callbacks import (
    EVENT_TYPES,
    RETRY_JITTER,
    RETRY_SCHEDULE,
    event_document,
    filter_matches,
    invalid_filters,
    message_document,
    retry_delay,
)
from wafile.core.message import Message
from wafile.core.message_state import (
    Accepted,
    AttemptStatus,
    MessageState,
    Notify,
    SendSucceeded,
    StatusReport,
    transition,
)
from wafile.core.plan import Channel, PlanStep, make_plan

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_event_types_are_every_status_of_both_subjects() -> None:
    assert {"message.accepted", "message.delivered", "attempt.timed_out"} <= EVENT_TYPES
    assert invalid_filters(["*", "message.*", "attempt.*", "attempt.read"]) == []
    assert invalid_filters(["message.status", "messages.*", ""]) == [
        "message.status",
        "messages.*",
        "",
    ]


@pytest.mark.parametrize(
    ("filters", "event_type", "matches"),
    [
        ((), "message.delivered", True),
        (("*",), "attempt.sent", True),
        (("message.*",), "message.failed", True),
        (("message.*",), "attempt.failed", False),
        (("attempt.timed_out", "message.failed"), "attempt.timed_out", True),
        (("attempt.timed_out",), "attempt.failed", False),
    ],
)
def test_filters(filters: tuple[str, ...], event_type: str, matches: bool) -> None:
    assert filter_matches(filters, event_type) is matches


def test_the_schedule_starts_at_once_and_spans_about_three_days() -> None:
    assert RETRY_SCHEDULE[0] == 0
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)
    total = timedelta(seconds=sum(RETRY_SCHEDULE))
    assert timedelta(days=2.5) < total < timedelta(days=3.5)


def test_retry_delay_follows_the_schedule_with_jitter_that_only_shortens() -> None:
    schedule = (0.0, 5.0, 300.0)
    assert retry_delay(1, schedule, 0.0) == timedelta(seconds=5)
    assert retry_delay(2, schedule, 0.0) == timedelta(seconds=300)
    shortest = retry_delay(2, schedule, 0.999999)
    assert shortest is not None
    assert timedelta(seconds=300 * (1 - RETRY_JITTER)) <= shortest < timedelta(seconds=300)
    assert retry_delay(3, schedule, 0.5) is None  # used up: the delivery fails
    assert retry_delay(0, schedule, 0.5) is None


def _message() -> Message:
    return Message(
        id="msg_1",
        account_id="acc_1",
        sender_id="snd_1",
        to="+12015550101",
        media_id="med_1",
        filename="Rechnung.pdf",
        caption=None,
        reply_to=None,
        template=None,
        reference="inv-42",
        callback_url="https://example.com/hook",
        idempotency_key=None,
        request_hash=None,
        status="accepted",
        created_at=T0,
        updated_at=T0,
        plan=make_plan([PlanStep(channel=Channel.WHATSAPP, sender_id="snd_1")]),
    )


def test_an_event_carries_the_change_and_the_whole_message() -> None:
    state = MessageState(plan=make_plan([PlanStep(channel=Channel.WHATSAPP)]))
    state = transition(state, Accepted(at=T0)).state
    state = transition(
        state, SendSucceeded(at=T0 + timedelta(seconds=1), attempt=0, provider_id="wamid.1")
    ).state
    at = T0 + timedelta(seconds=2)
    state, effects, _ = transition(
        state, StatusReport(at=at, attempt=0, status=AttemptStatus.DELIVERED)
    )
    notices = [e for e in effects if isinstance(e, Notify)]
    assert [n.type for n in notices] == ["attempt.delivered", "message.delivered"]

    doc = event_document("evt_1", notices[1], message_document(_message(), state, updated_at=at))
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert {k: doc[k] for k in doc if k != "message"} == {
        "id": "evt_1",
        "type": "message.delivered",
        "sequence": notices[1].sequence,
        "subject": "message",
        "attempt": None,
        "previous": "in_progress",
        "status": "delivered",
        "late": False,
        "at": "2026-11-23T12:00:02Z",
    }
    message = doc["message"]
    assert (message["id"], message["status"], message["reference"]) == (
        "msg_1",
        "delivered",
        "inv-42",
    )
    assert message["updated_at"] == "2026-11-23T12:00:02Z"
    [attempt] = message["attempts"]
    assert attempt["channel"] == "whatsapp" and attempt["status"] == "delivered"
    assert attempt["provider_message_id"] == "wamid.1"
    assert attempt["sent_at"] == "2026-11-23T12:00:01Z"
    assert attempt["delivered_at"] == "2026-11-23T12:00:02Z"
    assert set(attempt) >= {"error_code", "error", "queued_at", "read_at", "ended_at", "late"}
    # An attempt event names its attempt.
    first = event_document("evt_0", notices[0], message)
    assert (first["subject"], first["attempt"], first["previous"]) == ("attempt", 0, "sent")
