"""A sender's messages-per-second limit: GCRA, a token bucket kept as one number.

GCRA (the generic cell rate algorithm) keeps, per sender, `next_at`: the "theoretical
arrival time", when the bucket is empty again. Sends are spaced `interval` apart
(1/mps), and up to `burst` may go at once after a quiet spell: a send may take the
slot `max(now, next_at - tolerance)`, with `tolerance = (burst - 1) * interval`, and
moves `next_at` to `max(next_at, now) + interval`. However the requests interleave,
any window of `t` seconds then holds at most `burst + t * mps` slots.

A send whose slot is at most `max_wait` away takes it (its job sleeps until then). One
further away takes nothing and is refused: its job goes back to the queue and is told
when to come back. Refused sends are spread out along `retry_at`, the end of a line
that advances one interval per refusal, so that a backlog of N sends returns about
when slots free up (a refused send that returns at its `retry_at` finds its slot free
unless a newcomer took it), not all together every `max_wait` to be refused again.

Times are integer microseconds since the epoch, so the database runs the very same
arithmetic in one statement, exactly, on SQLite and PostgreSQL (`db/rate_limits.py`).
Everything here is pure: the current time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "LATE_FLOOR",
    "MAX_WAIT",
    "Bucket",
    "Decision",
    "Granted",
    "Refused",
    "SendRate",
    "check_at_once",
    "fresh",
    "from_micros",
    "grant_limit",
    "granted_slots",
    "micros",
    "most_at_once",
    "take",
    "take_all",
]

MICROS_PER_SECOND: Final = 1_000_000
# The longest a send job sleeps for its slot (holding a worker slot); a longer wait
# sends the job back to the queue instead.
MAX_WAIT: Final = timedelta(seconds=1)
# The least lateness a send may have after its slot: ordinary scheduling delays (an
# event loop wakes a little after the time asked) must not cost slots.
LATE_FLOOR: Final = 20_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def micros(at: datetime | timedelta) -> int:
    """A time as microseconds since the epoch, or a duration in microseconds."""
    if isinstance(at, timedelta):
        return at // _MICROSECOND
    return (at - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRate:
    """`mps` sends a second on average, and up to `burst` at once after a quiet spell."""

    mps: int

    def __post_init__(self) -> None:
        if self.mps < 1:
            raise ValueError("mps must be at least 1")

    @property
    def burst(self) -> int:
        # A tenth of a second's worth: Meta measures throughput over time, and a small
        # burst lets a worker catch up on slots it claimed a little late.
        return max(1, self.mps // 10)

    @property
    def interval(self) -> int:
        """Microseconds between two sends, rounded up: never faster than `mps`."""
        return -(-MICROS_PER_SECOND // self.mps)

    @property
    def tolerance(self) -> int:
        """How far ahead of `next_at` a send may go: what makes the burst."""
        return (self.burst - 1) * self.interval

    @property
    def late_limit(self) -> int:
        """How late after its slot a send may still go, in microseconds.

        A send held up longer (its process stalled, its event loop was busy) gives the
        slot up and takes a new one: sent anyway, it would go together with the sends
        of the slots after it, more at once than the limit allows.
        """
        return max(self.interval // 2, LATE_FLOOR)


@dataclass(frozen=True, kw_only=True, slots=True)
class Bucket:
    """A sender's state (microseconds since the epoch)."""

    next_at: int  # the theoretical arrival time: the bucket is empty again from here
    retry_at: int  # the end of the line of refused sends: where the next one is sent


@dataclass(frozen=True, kw_only=True, slots=True)
class Granted:
    at: int  # the send's slot: from now to `max_wait` later


@dataclass(frozen=True, kw_only=True, slots=True)
class Refused:
    retry_at: int  # come back then (more than `max_wait` from now); nothing was taken


Decision = Granted | Refused


def fresh(now: int) -> Bucket:
    """The bucket of a sender that never sent: full, and nobody in line."""
    return Bucket(next_at=now, retry_at=now)


def take(bucket: Bucket, *, now: int, rate: SendRate, max_wait: int) -> tuple[Bucket, Decision]:
    """Take a slot for one send at `now`, waiting at most `max_wait`; the new bucket too."""
    if bucket.next_at <= grant_limit(now, rate=rate, max_wait=max_wait):
        slot = max(now, bucket.next_at - rate.tolerance)
        return replace(bucket, next_at=max(bucket.next_at, now) + rate.interval), Granted(at=slot)
    back = max(bucket.retry_at, bucket.next_at - rate.tolerance)
    return replace(bucket, retry_at=back + rate.interval), Refused(retry_at=back)


def take_all(
    bucket: Bucket, count: int, *, now: int, rate: SendRate, max_wait: int
) -> tuple[Bucket, list[Granted]] | None:
    """`count` slots at once, exactly as `count` calls of `take` at `now` would grant
    them, when they would grant them all; otherwise None, and nothing is taken (no
    slot, no place in the line). Concurrent sends of one sender take their slots in
    one statement this way (`db/rate_limits.py`). `count` is at most `most_at_once`."""
    check_at_once(count, rate, max_wait)
    # After its first grant a bucket's next_at is at least `now`, so the i-th of the
    # sends finds next_at = base + i * interval; the last of them decides.
    base = max(bucket.next_at, now)
    if base + (count - 1) * rate.interval > grant_limit(now, rate=rate, max_wait=max_wait):
        return None
    next_at = base + count * rate.interval
    return replace(bucket, next_at=next_at), granted_slots(next_at, count, now=now, rate=rate)


def most_at_once(rate: SendRate, max_wait: int) -> int:
    """The most slots `take_all` takes at once: as many as a full bucket grants within
    `max_wait` (a fresh bucket's row is written without a check, so no more)."""
    return 1 + (rate.tolerance + max_wait) // rate.interval


def check_at_once(count: int, rate: SendRate, max_wait: int) -> None:
    """ValueError unless `take_all` may take `count` slots at once."""
    if not 1 <= count <= most_at_once(rate, max_wait):
        raise ValueError(f"count must be from 1 to {most_at_once(rate, max_wait)}")


def granted_slots(next_at: int, count: int, *, now: int, rate: SendRate) -> list[Granted]:
    """The `count` slots a `take_all` took (or `take`, one), in order, from `next_at`
    after it (what the database returns)."""
    # The i-th send's slot is max(now, next_at_i - tolerance), its next_at_i being
    # next_at after - (count - i) * interval (the first one's too: see `take_all`).
    return [
        Granted(at=max(now, next_at - (count - i) * rate.interval - rate.tolerance))
        for i in range(count)
    ]


def grant_limit(now: int, *, rate: SendRate, max_wait: int) -> int:
    """A slot is granted when `next_at` is at most this (its wait is then <= max_wait)."""
    return now + rate.tolerance + max_wait
