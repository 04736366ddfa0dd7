"""The message state machine: `transition(state, event) -> (state, effects, log entry)`.

A message tries the channels of its plan one attempt at a time, attempt n on step n.
Webhooks, timers and API calls only produce events; this one pure function decides
what they change, which attempt starts next and which callbacks go out.

Message status: `accepted` (no channel has taken it yet) → `in_progress` (an attempt
left `queued`) → `delivered` | `read` | `failed`. Attempt status: `queued → sent →
delivered → read`, or `failed`, or `timed_out` (its plan step's fallback time passed
first; Telesign's 3056).

Rules:

- Reports only move an attempt up one scale: queued < sent < failed = timed_out <
  delivered < read. Repeats and lower statuses are logged and change nothing, so
  duplicate and reordered webhooks are harmless. `failed` and `timed_out` end the
  attempt's part in the flow; only proof that the recipient has the file (delivered,
  read) still moves it, marked `late`, so the business learns "WhatsApp delivered at
  12:03, after the SMS went out". A `sent` after `failed` resurrects nothing.
- While the message is not final, the first attempt (superseded or not) to reach its
  step's success status makes it `delivered` (`read` when it reached read), and no
  other channel starts; a later `read` on that attempt upgrades delivered → read.
- The current attempt's `fall_back` failure, or its deadline, starts the next step
  (or fails the message with that reason when none is left); a `fail` failure fails
  the message at once.
- A `retry` failure changes nothing here: the job layer sends again. A *reported*
  failure (webhook) classified `retry` falls back instead: the provider has dropped
  that message, and sending it again would be a second attempt on the same step,
  which the state machine never starts (one attempt per step: peers that resend
  double-send and double-charge).
- A final message stays final. In particular `failed` stays failed when a late
  success arrives: the business already got a final `failed` callback and may have
  acted on it (sent the file another way), so the late report is recorded on its
  attempt and notified, and the message status is never taken back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, NamedTuple

from wafile.core.plan import Channel, Plan
from wafile.core.provider_errors import Disposition

__all__ = [
    "ENDED",
    "FINAL",
    "REPORTED",
    "Accepted",
    "Attempt",
    "AttemptStatus",
    "DeadlineReached",
    "Effect",
    "Event",
    "LogEntry",
    "MessageState",
    "MessageStatus",
    "Notify",
    "Reason",
    "ScheduleDeadline",
    "SendFailed",
    "SendSucceeded",
    "StartAttempt",
    "StatusReport",
    "Subject",
    "Transition",
    "replay",
    "should_send",
    "transition",
]


class MessageStatus(StrEnum):
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class AttemptStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


FINAL: Final = frozenset({MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED})
ENDED: Final = frozenset({AttemptStatus.FAILED, AttemptStatus.TIMED_OUT})
# What a provider can report about an attempt (timed_out is wafile's own verdict).
REPORTED: Final = frozenset(
    {AttemptStatus.SENT, AttemptStatus.DELIVERED, AttemptStatus.READ, AttemptStatus.FAILED}
)

# How much a status tells about an attempt; an attempt only moves up. failed and
# timed_out rank above sent (they end the flow) and below delivered (a recipient who
# has the file has it, whatever was said before).
_EVIDENCE: Final = {
    AttemptStatus.QUEUED: 0,
    AttemptStatus.SENT: 1,
    AttemptStatus.FAILED: 2,
    AttemptStatus.TIMED_OUT: 2,
    AttemptStatus.DELIVERED: 3,
    AttemptStatus.READ: 4,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    number: int  # = its plan step
    channel: Channel
    queued_at: datetime
    status: AttemptStatus = AttemptStatus.QUEUED
    # The status was reached after the attempt stopped steering the message: it had
    # failed or timed out, a later attempt had superseded it, or the message was
    # already final through another attempt.
    late: bool = False
    provider_id: str | None = None
    segments: int | None = None  # SMS segments, as the provider counted them
    error_code: int | None = None  # the provider's, for failed; None for timed_out
    error: str | None = None  # why it failed or timed out
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    ended_at: datetime | None = None  # when it failed or timed out


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageState:
    plan: Plan
    status: MessageStatus = MessageStatus.ACCEPTED
    attempts: tuple[Attempt, ...] = ()  # the last one is the current attempt
    delivered_by: int | None = None  # the attempt that made the message final-successful
    reason: str | None = None  # why the message failed
    sequence: int = 0  # the last Notify.sequence handed out

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


# Events: every one carries when it happened (the provider's timestamp for reports).


@dataclass(frozen=True, kw_only=True, slots=True)
class Accepted:
    """The message is stored: start attempt 0."""

    at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class SendSucceeded:
    """The channel's API accepted the send: the attempt is `sent`."""

    at: datetime
    attempt: int
    provider_id: str
    segments: int | None = None  # SMS: what the provider bills


@dataclass(frozen=True, kw_only=True, slots=True)
class SendFailed:
    """The channel's API refused the send (synchronous failure)."""

    at: datetime
    attempt: int
    disposition: Disposition
    code: int | None
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusReport:
    """A provider webhook or callback about an attempt."""

    at: datetime
    attempt: int
    status: AttemptStatus
    provider_code: int | None = None
    reason: str | None = None
    disposition: Disposition | None = None  # for failed; None reads as fall_back

    def __post_init__(self) -> None:
        if self.status not in REPORTED:
            raise ValueError(f"a provider cannot report {self.status!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineReached:
    """The attempt's plan step fallback time has passed."""

    at: datetime
    attempt: int


Event = Accepted | SendSucceeded | SendFailed | StatusReport | DeadlineReached


# Effects: what the caller must do, in this order, in the same transaction.


@dataclass(frozen=True, kw_only=True, slots=True)
class StartAttempt:
    """Create the attempt row and its send job."""

    attempt: int
    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleDeadline:
    """Enqueue a job that produces `DeadlineReached(attempt)` at `at`."""

    attempt: int
    at: datetime


class Subject(StrEnum):
    MESSAGE = "message"
    ATTEMPT = "attempt"


@dataclass(frozen=True, kw_only=True, slots=True)
class Notify:
    """One callback event for the business: one status change of the message or an attempt."""

    sequence: int  # per message, from 1, without gaps
    subject: Subject
    attempt: int | None  # for Subject.ATTEMPT
    previous: MessageStatus | AttemptStatus | None  # None: the attempt was just created
    status: MessageStatus | AttemptStatus
    late: bool
    at: datetime

    @property
    def type(self) -> str:
        """The callback's event type, e.g. `message.delivered`, `attempt.timed_out`."""
        return f"{self.subject}.{self.status}"


Effect = StartAttempt | ScheduleDeadline | Notify


class Reason(StrEnum):
    """Why an event did not move a status (or, if it moved the attempt, the message)."""

    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out of order"
    SUPERSEDED = "superseded attempt"
    MESSAGE_FINAL = "message final"
    UNKNOWN_ATTEMPT = "unknown attempt"  # names an attempt that was never started
    NO_DEADLINE = "no deadline"  # a deadline for a step without fallback_time
    RETRY = "retry on the same channel"  # recorded; the job layer retries


@dataclass(frozen=True, kw_only=True, slots=True)
class LogEntry:
    """What one event did, for the message's event log."""

    event: Event
    applied: bool  # the state changed
    reason: Reason | None
    attempt: int | None
    attempt_from: AttemptStatus | None
    attempt_to: AttemptStatus | None
    message_from: MessageStatus
    message_to: MessageStatus
    started: int | None = None  # the attempt this event started


class Transition(NamedTuple):
    state: MessageState
    effects: tuple[Effect, ...]
    log: LogEntry


def transition(state: MessageState, event: Event) -> Transition:
    """Apply one event; the new state, the effects to carry out, and the log entry."""
    if isinstance(event, Accepted):
        if state.attempts:
            return _unchanged(state, event, Reason.DUPLICATE, None)
        change = _Change(state, event.at)
        change.start(0)
        return change.done(event, None, None)
    number = event.attempt
    if not 0 <= number < len(state.attempts):
        return _unchanged(state, event, Reason.UNKNOWN_ATTEMPT, None)
    if isinstance(event, DeadlineReached):
        return _deadline(state, event)
    if isinstance(event, SendFailed) and event.disposition is Disposition.RETRY:
        if number != len(state.attempts) - 1:
            why = Reason.SUPERSEDED
        else:
            why = Reason.MESSAGE_FINAL if state.final else Reason.RETRY
        return _unchanged(state, event, why, number)
    return _report(state, event)


def replay(state: MessageState, events: Iterable[Event]) -> MessageState:
    """The state after `events` in order (rebuilding a message from its event log)."""
    for event in events:
        state = transition(state, event).state
    return state


def should_send(state: MessageState, attempt: int) -> bool:
    """Whether a send job for `attempt` should still call its channel.

    False once the attempt was superseded, has a status, or the message is final
    (for example delivered late by an earlier attempt while this send waited).
    """
    current = state.current
    return (
        not state.final
        and current is not None
        and current.number == attempt
        and current.status is AttemptStatus.QUEUED
    )


class _Change:
    """The changes one event makes, collected with their effects (local, then frozen)."""

    def __init__(self, state: MessageState, at: datetime) -> None:
        self.before = state
        self.state = state
        self.at = at
        self.effects: list[Effect] = []
        self.started: int | None = None

    def notify(
        self,
        subject: Subject,
        attempt: int | None,
        previous: MessageStatus | AttemptStatus | None,
        status: MessageStatus | AttemptStatus,
        late: bool = False,
    ) -> None:
        seq = self.state.sequence + 1
        self.state = replace(self.state, sequence=seq)
        self.effects.append(
            Notify(
                sequence=seq,
                subject=subject,
                attempt=attempt,
                previous=previous,
                status=status,
                late=late,
                at=self.at,
            )
        )

    def set_attempt(self, attempt: Attempt) -> None:
        attempts = list(self.state.attempts)
        previous = attempts[attempt.number]
        attempts[attempt.number] = attempt
        self.state = replace(self.state, attempts=tuple(attempts))
        if attempt.status is not previous.status:
            self.notify(
                Subject.ATTEMPT, attempt.number, previous.status, attempt.status, attempt.late
            )

    def set_message(
        self, status: MessageStatus, *, delivered_by: int | None = None, reason: str | None = None
    ) -> None:
        previous = self.state.status
        self.state = replace(self.state, status=status, delivered_by=delivered_by, reason=reason)
        self.notify(Subject.MESSAGE, None, previous, status)

    def start(self, number: int) -> None:
        step = self.state.plan[number]
        self.state = replace(
            self.state,
            attempts=(
                *self.state.attempts,
                Attempt(number=number, channel=step.channel, queued_at=self.at),
            ),
        )
        self.started = number
        self.effects.append(StartAttempt(attempt=number, channel=step.channel))
        if step.fallback_time is not None:
            deadline = self.at + timedelta(seconds=step.fallback_time)
            self.effects.append(ScheduleDeadline(attempt=number, at=deadline))
        self.notify(Subject.ATTEMPT, number, None, AttemptStatus.QUEUED)

    def advance(self, reason: str | None) -> None:
        """The current attempt has ended: the next step starts, or the message fails."""
        following = len(self.state.attempts)
        if following < len(self.state.plan):
            self.start(following)
            if self.state.status is MessageStatus.ACCEPTED:
                self.set_message(MessageStatus.IN_PROGRESS)
        else:
            self.set_message(MessageStatus.FAILED, reason=reason)

    def done(self, event: Event, reason: Reason | None, number: int | None) -> Transition:
        before = _unchanged(self.before, event, reason, number).log
        return Transition(
            self.state,
            tuple(self.effects),
            replace(
                before,
                applied=self.state != self.before,
                attempt_to=self.state.attempts[number].status if number is not None else None,
                message_to=self.state.status,
                started=self.started,
            ),
        )


def _unchanged(
    state: MessageState, event: Event, reason: Reason | None, number: int | None
) -> Transition:
    status = state.attempts[number].status if number is not None else None
    return Transition(
        state,
        (),
        LogEntry(
            event=event,
            applied=False,
            reason=reason,
            attempt=number,
            attempt_from=status,
            attempt_to=status,
            message_from=state.status,
            message_to=state.status,
        ),
    )


def _deadline(state: MessageState, event: DeadlineReached) -> Transition:
    number = event.attempt
    step = state.plan[number]
    if step.fallback_time is None:
        return _unchanged(state, event, Reason.NO_DEADLINE, number)
    if number != len(state.attempts) - 1:
        return _unchanged(state, event, Reason.SUPERSEDED, number)
    if state.final:
        # This includes an attempt that reached its success status: it made the message final.
        return _unchanged(state, event, Reason.MESSAGE_FINAL, number)
    attempt = state.attempts[number]
    why = f"no {step.success} report within {step.fallback_time:g} s"
    change = _Change(state, event.at)
    # A delivered attempt still waiting for `read` keeps its status (statuses only move
    # up); it ends all the same, and a `read` after this counts as late.
    delivered = attempt.status is AttemptStatus.DELIVERED
    status = AttemptStatus.DELIVERED if delivered else AttemptStatus.TIMED_OUT
    change.set_attempt(replace(attempt, status=status, error=why, ended_at=event.at))
    change.advance(why)
    return change.done(event, None, number)


def _report(state: MessageState, event: SendSucceeded | SendFailed | StatusReport) -> Transition:
    number = event.attempt
    attempt = state.attempts[number]
    current = number == len(state.attempts) - 1
    new, code, why, disposition = _reading(event)
    change = _Change(state, event.at)

    if isinstance(event, SendSucceeded) and attempt.provider_id is None:
        # Kept even when the status cannot move: late webhooks are matched by this id.
        attempt = replace(attempt, provider_id=event.provider_id, segments=event.segments)
        change.set_attempt(attempt)

    if new is attempt.status:
        return change.done(event, Reason.DUPLICATE, number)
    if _EVIDENCE[new] <= _EVIDENCE[attempt.status]:
        return change.done(event, Reason.OUT_OF_ORDER if current else Reason.SUPERSEDED, number)

    # A superseded attempt has always failed or timed out already (or is late).
    late = (
        attempt.late
        or attempt.status in ENDED
        or attempt.ended_at is not None
        or (state.final and state.delivered_by != number)
    )
    change.set_attempt(_moved(attempt, new, event.at, late=late, code=code, why=why))

    step = state.plan[number]
    if new is AttemptStatus.FAILED:
        # An attempt still in flow is the current one; it steers the message unless final.
        if state.final:
            return change.done(event, Reason.MESSAGE_FINAL, number)
        if disposition is Disposition.FAIL:
            change.set_message(MessageStatus.FAILED, reason=why)
        else:
            change.advance(why)
        return change.done(event, None, number)

    if not state.final and _EVIDENCE[new] >= _EVIDENCE[AttemptStatus(step.success)]:
        reached = MessageStatus.READ if new is AttemptStatus.READ else MessageStatus.DELIVERED
        change.set_message(reached, delivered_by=number)
    elif (
        state.status is MessageStatus.DELIVERED
        and state.delivered_by == number
        and new is AttemptStatus.READ
    ):
        change.set_message(MessageStatus.READ, delivered_by=number)
    elif state.status is MessageStatus.ACCEPTED:
        change.set_message(MessageStatus.IN_PROGRESS)
    elif not current:
        return change.done(event, Reason.SUPERSEDED, number)
    elif state.final:
        return change.done(event, Reason.MESSAGE_FINAL, number)
    return change.done(event, None, number)


def _reading(
    event: SendSucceeded | SendFailed | StatusReport,
) -> tuple[AttemptStatus, int | None, str | None, Disposition]:
    """The status an event proposes, with its error code, reason and disposition."""
    if isinstance(event, SendSucceeded):
        return AttemptStatus.SENT, None, None, Disposition.FALL_BACK
    if isinstance(event, SendFailed):
        return AttemptStatus.FAILED, event.code, event.reason, event.disposition
    why = event.reason
    if event.status is AttemptStatus.FAILED and why is None:
        code = event.provider_code
        why = f"failed (code {code})" if code is not None else "failed"
    return event.status, event.provider_code, why, event.disposition or Disposition.FALL_BACK


def _moved(
    attempt: Attempt,
    status: AttemptStatus,
    at: datetime,
    *,
    late: bool,
    code: int | None,
    why: str | None,
) -> Attempt:
    if status is AttemptStatus.FAILED:
        return replace(attempt, status=status, late=late, error_code=code, error=why, ended_at=at)
    moved = replace(attempt, status=status, late=late)
    if status is AttemptStatus.SENT:
        return replace(moved, sent_at=at)
    if status is AttemptStatus.DELIVERED:
        return replace(moved, delivered_at=at)
    return replace(moved, read_at=at)
