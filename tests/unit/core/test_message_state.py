from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wafile.core.message import Snapshot
from wafile.core.message_codec import snapshot_from_json, snapshot_to_json
from wafile.core.message_state import (
    ENDED,
    FINAL,
    REPORTED,
    Accepted,
    AttemptStatus,
    DeadlineReached,
    Event,
    MessageState,
    MessageStatus,
    Notify,
    Reason,
    ScheduleDeadline,
    SendFailed,
    SendSucceeded,
    StartAttempt,
    StatusReport,
    Subject,
    Transition,
    replay,
    should_send,
    transition,
)
from wafile.core.plan import Channel, Plan, PlanStep, Success, make_plan
from wafile.core.provider_errors import Disposition

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WA, SMS = Channel.WHATSAPP, Channel.SMS
A, M = AttemptStatus, MessageStatus


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new(*steps: PlanStep) -> MessageState:
    return MessageState(plan=make_plan(steps))


def run(state: MessageState, events: Sequence[Event]) -> MessageState:
    for event in events:
        state = transition(state, event).state
    return state


def notes(result: Transition) -> list[str]:
    return [e.type for e in result.effects if isinstance(e, Notify)]


# --- event builders: one per event kind the grid covers --------------------------------


def accepted(n: int, t: float) -> Event:
    del n
    return Accepted(at=at(t))


def ok(n: int, t: float) -> Event:
    return SendSucceeded(at=at(t), attempt=n, provider_id=f"p{n}")


def send_failed(disposition: Disposition) -> Callable[[int, float], Event]:
    def build(n: int, t: float) -> Event:
        return SendFailed(
            at=at(t), attempt=n, disposition=disposition, code=131026, reason=f"sync {disposition}"
        )

    return build


def report(
    status: AttemptStatus, disposition: Disposition | None = None
) -> Callable[[int, float], Event]:
    def build(n: int, t: float) -> Event:
        failed = status is A.FAILED
        return StatusReport(
            at=at(t),
            attempt=n,
            status=status,
            provider_code=131026 if failed else None,
            reason=f"async {disposition}" if failed else None,
            disposition=disposition,
        )

    return build


def deadline(n: int, t: float) -> Event:
    return DeadlineReached(at=at(t), attempt=n)


EVENTS: dict[str, Callable[[int, float], Event]] = {
    "accepted": accepted,
    "send_ok": ok,
    "send_retry": send_failed(Disposition.RETRY),
    "send_fall_back": send_failed(Disposition.FALL_BACK),
    "send_fail": send_failed(Disposition.FAIL),
    "sent": report(A.SENT),
    "delivered": report(A.DELIVERED),
    "read": report(A.READ),
    "failed_fall_back": report(A.FAILED, Disposition.FALL_BACK),
    "failed_fail": report(A.FAILED, Disposition.FAIL),
    "failed_retry": report(A.FAILED, Disposition.RETRY),
    "deadline": deadline,
}

# --- the grid: every reachable attempt status, current or superseded, x every event ----

# Three steps, so that a next step exists wherever the grid asks "does one start?".
GRID_PLAN = (
    PlanStep(channel=WA, fallback_time=600),
    PlanStep(channel=SMS, fallback_time=600),
    PlanStep(channel=WA, fallback_time=600),
)

# name: (script of "event kind:attempt" words, the attempt the grid's events address,
#        its status, late, the message status)
# fmt: off
SCENARIOS: dict[str, tuple[str, int, AttemptStatus, bool, MessageStatus]] = {
    # the current attempt
    "current queued": ("accepted:0", 0, A.QUEUED, False, M.ACCEPTED),
    "current sent": ("accepted:0 send_ok:0", 0, A.SENT, False, M.IN_PROGRESS),
    "current delivered": (
        "accepted:0 send_ok:0 delivered:0", 0, A.DELIVERED, False, M.DELIVERED),
    "current read": (
        "accepted:0 send_ok:0 delivered:0 read:0", 0, A.READ, False, M.READ),
    "current failed": ("accepted:0 send_fail:0", 0, A.FAILED, False, M.FAILED),
    "current timed_out": (
        "accepted:0 deadline:0 deadline:1 deadline:2", 2, A.TIMED_OUT, False, M.FAILED),
    "current late delivered": (
        "accepted:0 deadline:0 deadline:1 deadline:2 delivered:2", 2, A.DELIVERED, True, M.FAILED),
    "current late read": (
        "accepted:0 deadline:0 deadline:1 deadline:2 read:2", 2, A.READ, True, M.FAILED),
    # the current attempt after an earlier one delivered the message late
    "current queued, delivered by earlier": (
        "accepted:0 deadline:0 delivered:0", 1, A.QUEUED, False, M.DELIVERED),
    "current sent, delivered by earlier": (
        "accepted:0 deadline:0 send_ok:1 delivered:0", 1, A.SENT, False, M.DELIVERED),
    # a superseded attempt
    "superseded failed": ("accepted:0 send_fall_back:0", 0, A.FAILED, False, M.IN_PROGRESS),
    "superseded timed_out": (
        "accepted:0 send_ok:0 deadline:0", 0, A.TIMED_OUT, False, M.IN_PROGRESS),
    "superseded late delivered": (
        "accepted:0 send_ok:0 deadline:0 delivered:0", 0, A.DELIVERED, True, M.DELIVERED),
    "superseded late read": (
        "accepted:0 send_ok:0 deadline:0 delivered:0 read:0", 0, A.READ, True, M.READ),
    "superseded failed, message failed": (
        "accepted:0 send_fall_back:0 send_fail:1", 0, A.FAILED, False, M.FAILED),
    "superseded timed_out, delivered by later": (
        "accepted:0 deadline:0 delivered:1", 0, A.TIMED_OUT, False, M.DELIVERED),
}

# Expected per event, in EVENTS order: "<attempt status>[!] <message status> [+] [/reason]";
# "=" keeps the status, "!" marks the new attempt status late, "+" starts the next step.
DUP, OOO, SUP, FIN, RETRY = "= = /dup", "= = /ooo", "= = /sup", "= = /final", "= = /retry"
LATE_D, LATE_R, LATE_F = "delivered! = /final", "read! = /final", "failed! = /final"
EXPECTED: dict[str, tuple[str, ...]] = {
    #                    accepted send_ok  send_retry send_fall_back  send_fail
    #                    sent     delivered  read
    #                    failed_fall_back  failed_fail  failed_retry  deadline
    "current queued": (
        DUP, "sent in_progress", RETRY, "failed in_progress +", "failed failed",
        "sent in_progress", "delivered delivered", "read read",
        "failed in_progress +", "failed failed", "failed in_progress +",
        "timed_out in_progress +"),
    "current sent": (
        DUP, DUP, RETRY, "failed in_progress +", "failed failed",
        DUP, "delivered delivered", "read read",
        "failed in_progress +", "failed failed", "failed in_progress +",
        "timed_out in_progress +"),
    "current delivered": (
        DUP, OOO, FIN, OOO, OOO, OOO, DUP, "read read", OOO, OOO, OOO, FIN),
    "current read": (
        DUP, OOO, FIN, OOO, OOO, OOO, OOO, DUP, OOO, OOO, OOO, FIN),
    "current failed": (
        DUP, OOO, FIN, DUP, DUP, OOO, LATE_D, LATE_R, DUP, DUP, DUP, FIN),
    "current timed_out": (
        DUP, OOO, FIN, OOO, OOO, OOO, LATE_D, LATE_R, OOO, OOO, OOO, FIN),
    "current late delivered": (
        DUP, OOO, FIN, OOO, OOO, OOO, DUP, LATE_R, OOO, OOO, OOO, FIN),
    "current late read": (
        DUP, OOO, FIN, OOO, OOO, OOO, OOO, DUP, OOO, OOO, OOO, FIN),
    "current queued, delivered by earlier": (
        DUP, "sent! = /final", FIN, LATE_F, LATE_F,
        "sent! = /final", LATE_D, LATE_R, LATE_F, LATE_F, LATE_F, FIN),
    "current sent, delivered by earlier": (
        DUP, DUP, FIN, LATE_F, LATE_F, DUP, LATE_D, LATE_R, LATE_F, LATE_F, LATE_F, FIN),
    "superseded failed": (
        DUP, SUP, SUP, DUP, DUP, SUP, "delivered! delivered", "read! read", DUP, DUP, DUP, SUP),
    "superseded timed_out": (
        DUP, SUP, SUP, SUP, SUP, SUP, "delivered! delivered", "read! read", SUP, SUP, SUP, SUP),
    "superseded late delivered": (
        DUP, SUP, SUP, SUP, SUP, SUP, DUP, "read! read", SUP, SUP, SUP, SUP),
    "superseded late read": (
        DUP, SUP, SUP, SUP, SUP, SUP, SUP, DUP, SUP, SUP, SUP, SUP),
    "superseded failed, message failed": (
        DUP, SUP, SUP, DUP, DUP, SUP, "delivered! = /sup", "read! = /sup", DUP, DUP, DUP, SUP),
    "superseded timed_out, delivered by later": (
        DUP, SUP, SUP, SUP, SUP, SUP, "delivered! = /sup", "read! = /sup", SUP, SUP, SUP, SUP),
}
# fmt: on

REASONS = {
    "dup": Reason.DUPLICATE,
    "ooo": Reason.OUT_OF_ORDER,
    "sup": Reason.SUPERSEDED,
    "final": Reason.MESSAGE_FINAL,
    "retry": Reason.RETRY,
}


def scenario_state(name: str) -> MessageState:
    words = SCENARIOS[name][0].split()
    events = [EVENTS[kind](int(n), t) for t, (kind, n) in enumerate(w.split(":") for w in words)]
    return run(MessageState(plan=GRID_PLAN), events)


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_grid_scenario_is_the_state_it_names(name: str) -> None:
    _, n, status, late, message = SCENARIOS[name]
    state = scenario_state(name)
    assert (state.attempts[n].status, state.attempts[n].late, state.status) == (
        status,
        late,
        message,
    )
    assert_invariants(state)


def test_the_grid_covers_every_attempt_status_current_and_superseded() -> None:
    seen = {
        (s[2], "current" if s[1] == len(scenario_state(k).attempts) - 1 else "superseded")
        for k, s in SCENARIOS.items()
    }
    # Superseded attempts are always ended (failed/timed_out) or carry a late report:
    # queued and sent superseded attempts cannot exist (test_random_sequences checks it).
    assert seen == {(s, "current") for s in A} | {
        (A.FAILED, "superseded"),
        (A.TIMED_OUT, "superseded"),
        (A.DELIVERED, "superseded"),
        (A.READ, "superseded"),
    }
    assert all(len(row) == len(EVENTS) for row in EXPECTED.values())
    assert EXPECTED.keys() == SCENARIOS.keys()


@pytest.mark.parametrize(("name", "kind"), [(name, kind) for name in SCENARIOS for kind in EVENTS])
def test_grid(name: str, kind: str) -> None:
    n = SCENARIOS[name][1]
    before = scenario_state(name)
    event = EVENTS[kind](n, 100)
    result = transition(before, event)
    after, log = result.state, result.log

    spec = EXPECTED[name][list(EVENTS).index(kind)]
    words = spec.split()
    reason = REASONS[words.pop()[1:]] if words[-1].startswith("/") else None
    starts = words[-1] == "+"
    attempt_word, message_word = words[0], words[1]
    late = attempt_word.endswith("!")
    want_attempt = before.attempts[n].status if attempt_word == "=" else A(attempt_word.rstrip("!"))
    want_message = before.status if message_word == "=" else M(message_word)

    assert after.attempts[n].status is want_attempt
    assert after.status is want_message
    assert log.reason is reason
    assert (log.message_from, log.message_to) == (before.status, after.status)
    if not isinstance(event, Accepted):
        assert (log.attempt, log.attempt_from, log.attempt_to) == (
            n,
            before.attempts[n].status,
            want_attempt,
        )
    moved = want_attempt is not before.attempts[n].status
    if moved:
        assert after.attempts[n].late is late
    # A new attempt starts (with its deadline) exactly where the table says.
    started = [e for e in result.effects if isinstance(e, StartAttempt)]
    deadlines = [e for e in result.effects if isinstance(e, ScheduleDeadline)]
    if starts:
        k = len(before.attempts)
        assert started == [StartAttempt(attempt=k, channel=GRID_PLAN[k].channel)]
        assert deadlines == [ScheduleDeadline(attempt=k, at=at(100 + 600))]
        assert log.started == k
        assert after.attempts[k].status is A.QUEUED
    else:
        assert started == deadlines == []
        assert log.started is None
        assert len(after.attempts) == len(before.attempts)
    # One callback per status change, nothing else.
    changes = int(moved) + int(starts) + int(after.status is not before.status)
    assert len(notes(result)) == changes
    if changes == 0:
        assert result.effects == ()
    assert log.applied is (after != before)
    assert_invariants(after)


# --- rules spelled out --------------------------------------------------------------------


def test_accepted_starts_attempt_0_with_its_deadline() -> None:
    state = new(PlanStep(channel=WA, fallback_time=600), PlanStep(channel=SMS))
    result = transition(state, Accepted(at=T0))
    assert result.effects == (
        StartAttempt(attempt=0, channel=WA),
        ScheduleDeadline(attempt=0, at=at(600)),
        Notify(
            sequence=1,
            subject=Subject.ATTEMPT,
            attempt=0,
            previous=None,
            status=A.QUEUED,
            late=False,
            at=T0,
        ),
    )
    assert result.state.status is M.ACCEPTED
    assert result.state.attempts[0].queued_at == T0
    assert result.log.started == 0 and result.log.applied


def test_a_step_without_fallback_time_schedules_no_deadline_and_ignores_one() -> None:
    state = new(PlanStep(channel=WA), PlanStep(channel=SMS))
    result = transition(state, Accepted(at=T0))
    assert [type(e) for e in result.effects] == [StartAttempt, Notify]
    again = transition(result.state, DeadlineReached(at=at(1), attempt=0))
    assert again.state == result.state and again.effects == ()
    assert again.log.reason is Reason.NO_DEADLINE


@pytest.mark.parametrize("kind", [k for k in EVENTS if k != "accepted"])
def test_events_for_attempts_never_started_are_ignored(kind: str) -> None:
    for state in (new(PlanStep(channel=WA)), run(new(PlanStep(channel=WA)), [Accepted(at=T0)])):
        for n in (1, 5, -1):
            result = transition(state, EVENTS[kind](n, 1))
            assert result.state == state and result.effects == ()
            assert result.log.reason is Reason.UNKNOWN_ATTEMPT and not result.log.applied


def test_the_happy_path_emits_one_numbered_callback_per_change() -> None:
    state = new(PlanStep(channel=WA, fallback_time=600), PlanStep(channel=SMS))
    types: list[str] = []
    sequences: list[int] = []
    for event in [
        Accepted(at=T0),
        SendSucceeded(at=at(1), attempt=0, provider_id="wamid.1"),
        StatusReport(at=at(2), attempt=0, status=A.DELIVERED),
        StatusReport(at=at(2), attempt=0, status=A.DELIVERED),  # webhook retried
        StatusReport(at=at(3), attempt=0, status=A.READ),
    ]:
        result = transition(state, event)
        state = result.state
        types += notes(result)
        sequences += [e.sequence for e in result.effects if isinstance(e, Notify)]
    assert types == [
        "attempt.queued",
        "attempt.sent",
        "message.in_progress",
        "attempt.delivered",
        "message.delivered",
        "attempt.read",
        "message.read",
    ]
    assert sequences == list(range(1, 8)) and state.sequence == 7
    first = state.attempts[0]
    assert (first.provider_id, first.sent_at, first.delivered_at, first.read_at) == (
        "wamid.1",
        at(1),
        at(2),
        at(3),
    )
    assert state.delivered_by == 0


def test_whatsapp_delivered_late_after_the_sms_went_out() -> None:
    state = new(PlanStep(channel=WA, fallback_time=600), PlanStep(channel=SMS))
    state = run(
        state,
        [
            Accepted(at=T0),
            SendSucceeded(at=at(1), attempt=0, provider_id="wamid.1"),
            DeadlineReached(at=at(600), attempt=0),
            SendSucceeded(at=at(601), attempt=1, provider_id="SM1"),
            StatusReport(at=at(605), attempt=1, status=A.DELIVERED),
        ],
    )
    assert state.status is M.DELIVERED and state.delivered_by == 1
    assert state.attempts[0].error == "no delivered report within 600 s"
    late = transition(state, StatusReport(at=at(783), attempt=0, status=A.DELIVERED))
    assert late.state.attempts[0].status is A.DELIVERED and late.state.attempts[0].late
    assert late.state.attempts[0].delivered_at == at(783)
    assert late.state.attempts[0].ended_at == at(600)  # the timeout stays on record
    assert late.state.status is M.DELIVERED and late.state.delivered_by == 1
    assert [e for e in late.effects if isinstance(e, Notify)] == [
        Notify(
            sequence=state.sequence + 1,
            subject=Subject.ATTEMPT,
            attempt=0,
            previous=A.TIMED_OUT,
            status=A.DELIVERED,
            late=True,
            at=at(783),
        )
    ]
    assert late.log.reason is Reason.SUPERSEDED and late.log.applied
    # A read on the late attempt does not upgrade a message another attempt delivered.
    read = transition(late.state, StatusReport(at=at(800), attempt=0, status=A.READ))
    assert read.state.status is M.DELIVERED and notes(read) == ["attempt.read"]


def test_a_late_success_while_in_progress_delivers_and_starts_nothing() -> None:
    state = new(
        PlanStep(channel=WA, fallback_time=60),
        PlanStep(channel=SMS, fallback_time=60),
        PlanStep(channel=WA),
    )
    state = run(state, [Accepted(at=T0), DeadlineReached(at=at(60), attempt=0)])
    result = transition(state, StatusReport(at=at(61), attempt=0, status=A.DELIVERED))
    assert result.state.status is M.DELIVERED and result.state.delivered_by == 0
    assert not any(isinstance(e, StartAttempt) for e in result.effects)
    # attempt 1 (SMS) is still queued: its job must not send, its deadline does nothing.
    assert not should_send(result.state, 1)
    tick = transition(result.state, DeadlineReached(at=at(120), attempt=1))
    assert tick.effects == () and tick.log.reason is Reason.MESSAGE_FINAL


def test_the_last_failure_reason_fails_the_message() -> None:
    state = new(PlanStep(channel=WA), PlanStep(channel=SMS))
    state = run(
        state,
        [
            Accepted(at=T0),
            SendFailed(
                at=at(1),
                attempt=0,
                disposition=Disposition.FALL_BACK,
                code=131026,
                reason="not on WhatsApp",
            ),
            SendSucceeded(at=at(2), attempt=1, provider_id="SM1"),
            StatusReport(
                at=at(3),
                attempt=1,
                status=A.FAILED,
                provider_code=30005,
                reason="unknown handset",
                disposition=Disposition.FALL_BACK,
            ),
        ],
    )
    assert state.status is M.FAILED and state.reason == "unknown handset"
    assert (state.attempts[0].error_code, state.attempts[0].error) == (131026, "not on WhatsApp")
    assert (state.attempts[1].error_code, state.attempts[1].ended_at) == (30005, at(3))


def test_a_reported_failure_without_disposition_falls_back() -> None:
    state = run(new(PlanStep(channel=WA), PlanStep(channel=SMS)), [Accepted(at=T0)])
    result = transition(state, StatusReport(at=at(1), attempt=0, status=A.FAILED))
    assert result.state.status is M.IN_PROGRESS
    assert [e for e in result.effects if isinstance(e, StartAttempt)] == [
        StartAttempt(attempt=1, channel=SMS)
    ]


def test_a_deadline_on_the_last_step_fails_the_message() -> None:
    state = run(new(PlanStep(channel=SMS, fallback_time=90)), [Accepted(at=T0)])
    result = transition(state, DeadlineReached(at=at(90), attempt=0))
    assert result.state.status is M.FAILED
    assert result.state.reason == "no delivered report within 90 s"
    assert notes(result) == ["attempt.timed_out", "message.failed"]


def test_a_reported_failure_without_code_or_reason_still_says_why() -> None:
    state = run(new(PlanStep(channel=WA)), [Accepted(at=T0)])
    state = transition(state, StatusReport(at=at(1), attempt=0, status=A.FAILED)).state
    assert state.status is M.FAILED and state.reason == "failed"
    state = run(new(PlanStep(channel=WA)), [Accepted(at=T0)])
    event = StatusReport(at=at(1), attempt=0, status=A.FAILED, provider_code=0)
    assert transition(state, event).state.reason == "failed (code 0)"


def test_success_at_sent_is_final_and_a_later_failure_stays_on_the_attempt() -> None:
    state = new(PlanStep(channel=WA, success=Success.SENT), PlanStep(channel=SMS))
    state = run(state, [Accepted(at=T0)])
    result = transition(state, SendSucceeded(at=at(1), attempt=0, provider_id="wamid.1"))
    assert result.state.status is M.DELIVERED
    assert notes(result) == ["attempt.sent", "message.delivered"]
    failed = transition(
        result.state,
        StatusReport(at=at(2), attempt=0, status=A.FAILED, disposition=Disposition.FALL_BACK),
    )
    assert failed.state.attempts[0].status is A.FAILED and not failed.state.attempts[0].late
    assert failed.state.status is M.DELIVERED and len(failed.state.attempts) == 1
    assert failed.log.reason is Reason.MESSAGE_FINAL


def test_success_at_read_waits_past_delivered() -> None:
    state = new(PlanStep(channel=WA, success=Success.READ, fallback_time=60), PlanStep(channel=SMS))
    state = run(state, [Accepted(at=T0)])
    delivered = transition(state, StatusReport(at=at(1), attempt=0, status=A.DELIVERED))
    assert delivered.state.status is M.IN_PROGRESS
    # delivered is not its success status: the deadline still moves on to SMS. The
    # attempt ends but stays delivered (statuses never move down: it did arrive).
    timeout = transition(delivered.state, DeadlineReached(at=at(60), attempt=0))
    ended = timeout.state.attempts[0]
    assert ended.status is A.DELIVERED and ended.ended_at == at(60)
    assert ended.error == "no read report within 60 s"
    assert [e for e in timeout.effects if isinstance(e, StartAttempt)] == [
        StartAttempt(attempt=1, channel=SMS)
    ]
    # ...and a late read still delivers the message (as read) while SMS is under way.
    read = transition(timeout.state, StatusReport(at=at(70), attempt=0, status=A.READ))
    assert read.state.status is M.READ and read.state.delivered_by == 0
    assert read.state.attempts[0].late


def test_a_late_report_below_its_success_status_only_records() -> None:
    state = new(PlanStep(channel=WA, success=Success.READ, fallback_time=60), PlanStep(channel=SMS))
    state = run(state, [Accepted(at=T0), DeadlineReached(at=at(60), attempt=0)])
    result = transition(state, StatusReport(at=at(61), attempt=0, status=A.DELIVERED))
    assert result.state.attempts[0].status is A.DELIVERED and result.state.attempts[0].late
    assert result.state.status is M.IN_PROGRESS
    assert result.log.reason is Reason.SUPERSEDED


def test_the_provider_id_is_kept_even_when_the_status_cannot_move() -> None:
    state = run(
        new(PlanStep(channel=WA), PlanStep(channel=SMS)),
        [Accepted(at=T0), StatusReport(at=at(1), attempt=0, status=A.DELIVERED)],
    )
    result = transition(state, SendSucceeded(at=at(2), attempt=0, provider_id="wamid.1"))
    assert result.state.attempts[0].provider_id == "wamid.1"
    assert result.state.attempts[0].status is A.DELIVERED
    assert result.effects == () and result.log.applied
    assert result.log.reason is Reason.OUT_OF_ORDER
    # A second send's id does not replace the first (the webhooks match on the first).
    second = transition(result.state, SendSucceeded(at=at(3), attempt=0, provider_id="wamid.2"))
    assert second.state == result.state and not second.log.applied


def test_should_send_only_the_current_queued_attempt_of_a_live_message() -> None:
    state = new(PlanStep(channel=WA, fallback_time=60), PlanStep(channel=SMS))
    assert not should_send(state, 0)
    state = run(state, [Accepted(at=T0)])
    assert should_send(state, 0) and not should_send(state, 1)
    retried = transition(
        state,
        SendFailed(at=at(1), attempt=0, disposition=Disposition.RETRY, code=130429, reason="rate"),
    )
    assert retried.state == state and retried.log.reason is Reason.RETRY
    assert should_send(retried.state, 0)
    state = run(state, [DeadlineReached(at=at(60), attempt=0)])
    assert not should_send(state, 0) and should_send(state, 1)
    state = run(state, [SendSucceeded(at=at(61), attempt=1, provider_id="SM1")])
    assert not should_send(state, 1)


def test_a_status_report_carries_only_provider_statuses() -> None:
    for status in (A.QUEUED, A.TIMED_OUT):
        with pytest.raises(ValueError, match="cannot report"):
            StatusReport(at=T0, attempt=0, status=status)


def test_replay_is_the_fold_of_transition() -> None:
    events: list[Event] = [
        Accepted(at=T0),
        SendSucceeded(at=at(1), attempt=0, provider_id="w"),
        DeadlineReached(at=at(2), attempt=0),
    ]
    start = new(PlanStep(channel=WA, fallback_time=2), PlanStep(channel=SMS))
    assert replay(start, events) == run(start, events)
    assert replay(start, []) == start


# --- properties over random event sequences ---------------------------------------------

# The message's order: each status may only move to these.
FORWARD: dict[MessageStatus, set[MessageStatus]] = {
    M.ACCEPTED: {M.IN_PROGRESS, M.DELIVERED, M.READ, M.FAILED},
    M.IN_PROGRESS: {M.DELIVERED, M.READ, M.FAILED},
    M.DELIVERED: {M.READ},
    M.READ: set(),
    M.FAILED: set(),
}
RANK = {A.QUEUED: 0, A.SENT: 1, A.FAILED: 2, A.TIMED_OUT: 2, A.DELIVERED: 3, A.READ: 4}


def assert_invariants(state: MessageState) -> None:
    """What must hold of every reachable state."""
    attempts = state.attempts
    assert len(attempts) <= len(state.plan)
    for i, attempt in enumerate(attempts):
        assert attempt.number == i and attempt.channel is state.plan[i].channel
        if i < len(attempts) - 1:
            # Only the current attempt can still be in flight.
            assert attempt.status in ENDED or attempt.late or attempt.ended_at is not None
    if state.status is M.ACCEPTED:
        assert [a.status for a in attempts] in ([], [A.QUEUED])
    if state.status is M.IN_PROGRESS:
        current = attempts[-1]
        success = A(state.plan[current.number].success)
        assert current.status not in ENDED and not current.late
        assert RANK[current.status] < RANK[success]
    if state.status in (M.DELIVERED, M.READ):
        assert state.delivered_by is not None
        by = attempts[state.delivered_by]
        assert RANK[by.status] >= RANK[A(state.plan[by.number].success)]
        if state.status is M.READ:
            assert by.status is A.READ
    else:
        assert state.delivered_by is None
    if state.status is M.FAILED:
        assert state.reason
        last = attempts[-1]
        assert last.status in ENDED or last.late or last.ended_at is not None


@st.composite
def plan_steps(draw: st.DrawFn) -> PlanStep:
    channel = draw(st.sampled_from(list(Channel)))
    options = [Success.SENT, Success.DELIVERED] + ([Success.READ] if channel is WA else [])
    return PlanStep(
        channel=channel,
        success=draw(st.sampled_from(options)),
        fallback_time=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=3600))),
    )


plans = st.lists(plan_steps(), min_size=1, max_size=3).map(make_plan)
times = st.integers(min_value=0, max_value=10_000).map(at)
numbers = st.integers(min_value=0, max_value=3)
dispositions = st.sampled_from(list(Disposition))
events = st.one_of(
    st.builds(Accepted, at=times),
    st.builds(SendSucceeded, at=times, attempt=numbers, provider_id=st.sampled_from(["a", "b"])),
    st.builds(
        SendFailed,
        at=times,
        attempt=numbers,
        disposition=dispositions,
        code=st.sampled_from([None, 131026, 130429]),
        reason=st.sampled_from(["x", "y"]),
    ),
    st.builds(
        StatusReport,
        at=times,
        attempt=numbers,
        status=st.sampled_from(sorted(REPORTED)),
        provider_code=st.sampled_from([None, 131047]),
        reason=st.sampled_from([None, "z"]),
        disposition=st.one_of(st.none(), dispositions),
    ),
    st.builds(DeadlineReached, at=times, attempt=numbers),
)
# Mostly accepted first, so sequences get somewhere; sometimes not, to probe the start.
sequences = st.tuples(st.booleans(), st.lists(events, max_size=40)).map(
    lambda pair: [Accepted(at=T0), *pair[1]] if pair[0] else pair[1]
)


def expected_notes(before: MessageState, after: MessageState) -> Counter[tuple[object, ...]]:
    """One callback per status that differs between two states."""
    changes: Counter[tuple[object, ...]] = Counter()
    for i, attempt in enumerate(after.attempts):
        previous = before.attempts[i].status if i < len(before.attempts) else None
        if attempt.status is not previous:
            changes[(Subject.ATTEMPT, i, previous, attempt.status, attempt.late)] += 1
    if after.status is not before.status:
        changes[(Subject.MESSAGE, None, before.status, after.status, False)] += 1
    return changes


@settings(max_examples=400)
@given(plans, sequences)
def test_random_sequences(plan: Plan, seq: list[Event]) -> None:
    state = MessageState(plan=plan)
    started: list[int] = []
    for event in seq:
        result = transition(state, event)
        after, log = result.state, result.log

        # The message never moves backwards in its order.
        assert after.status is state.status or after.status in FORWARD[state.status]
        # Attempts only move up their scale, and none disappears.
        assert len(after.attempts) >= len(state.attempts)
        for old, updated in zip(state.attempts, after.attempts, strict=False):
            assert RANK[updated.status] >= RANK[old.status]
            assert updated.late or not old.late

        starts = [e.attempt for e in result.effects if isinstance(e, StartAttempt)]
        if state.final:
            assert starts == []  # once final, no channel starts
        assert starts == list(range(len(state.attempts), len(after.attempts)))
        started += starts
        for e in result.effects:
            if isinstance(e, StartAttempt):
                assert e.channel is plan[e.attempt].channel
        deadlines = [e for e in result.effects if isinstance(e, ScheduleDeadline)]
        assert deadlines == [
            ScheduleDeadline(attempt=n, at=event.at + timedelta(seconds=t))
            for n in starts
            if (t := plan[n].fallback_time) is not None
        ]

        # One numbered callback per status change, numbers without gaps.
        notify = [e for e in result.effects if isinstance(e, Notify)]
        assert Counter(
            (e.subject, e.attempt, e.previous, e.status, e.late) for e in notify
        ) == expected_notes(state, after)
        assert [e.sequence for e in notify] == list(range(state.sequence + 1, after.sequence + 1))
        assert all(e.at == event.at for e in notify)

        # The log tells what happened.
        assert (log.message_from, log.message_to) == (state.status, after.status)
        assert log.applied is (after != state)
        if not log.applied:
            assert result.effects == () and log.reason is not None

        # A duplicate is a no-op.
        again = transition(after, event)
        assert again.state == after and again.effects == () and not again.log.applied

        assert_invariants(after)
        state = after

    # At most one attempt per plan step, ever.
    assert started == list(range(len(started))) and len(started) <= len(plan)


@settings(max_examples=200)
@given(plans, sequences)
def test_replaying_an_applied_event_later_changes_nothing(plan: Plan, seq: list[Event]) -> None:
    state = MessageState(plan=plan)
    applied: list[Event] = []
    for event in seq:
        result = transition(state, event)
        if result.log.applied:
            applied.append(event)
        state = result.state
    # Webhooks retried hours later, a deadline job run twice: all harmless.
    for event in applied:
        result = transition(state, event)
        assert result.state == state and result.effects == ()


@given(plans, sequences)
def test_the_same_sequence_gives_the_same_state(plan: Plan, seq: list[Event]) -> None:
    def trace(events: list[Event]) -> list[Transition]:
        state, out = MessageState(plan=plan), []
        for event in events:
            out.append(transition(state, event))
            state = out[-1].state
        return out

    first, second = trace(seq), trace(list(seq))
    assert first == second
    assert replay(MessageState(plan=plan), seq) == (
        first[-1].state if first else MessageState(plan=plan)
    )


def test_final_statuses() -> None:
    assert {M.DELIVERED, M.READ, M.FAILED} == FINAL
    assert replace(MessageState(plan=GRID_PLAN), status=M.READ).final


@settings(max_examples=300)
@given(plans, sequences)
def test_snapshot_continues_as_the_replay(plan: Plan, seq: list[Event]) -> None:
    """Applying events one by one from the stored snapshot (JSON and back at every
    step, as apply() does) comes to exactly the replay of the whole log."""
    stored = snapshot_to_json(Snapshot(state=MessageState(plan=plan), seq=0))
    for n, event in enumerate(seq, start=1):
        state = snapshot_from_json(plan, stored).state
        stored = snapshot_to_json(Snapshot(state=transition(state, event).state, seq=n))
    restored = snapshot_from_json(plan, json.loads(json.dumps(stored)))
    assert restored.state == replay(MessageState(plan=plan), seq)
    assert restored.seq == len(seq)
