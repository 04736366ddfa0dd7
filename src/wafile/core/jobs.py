"""The job: one unit of deferred work in the database queue, and when to try it again.

A job is claimed with a lease (an owner and an expiry); each claim counts as one
attempt. A failed attempt runs again after an exponential backoff with jitter until
`max_attempts` is used up; then the job is dead: kept for inspection, never dropped.

Everything here is pure: randomness and the current time come in as arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, Final

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_ATTEMPTS",
    "ERROR_TEXT_LIMIT",
    "Backoff",
    "Job",
    "JobState",
    "LeaseLost",
    "Priority",
    "backoff_delay",
    "error_text",
    "next_attempt_at",
]

DEFAULT_MAX_ATTEMPTS: Final = 10
ERROR_TEXT_LIMIT: Final = 2000  # characters of `last_error` kept: enough to debug, bounded


class Priority(IntEnum):
    """Which due jobs a worker claims first. Under a backlog, jobs run late by the time
    it takes to work through the jobs due before them; a higher priority skips that
    line. Timers are exact by nature, and a fallback send has already kept its
    recipient waiting for the fallback time."""

    NORMAL = 0
    FALLBACK = 5  # the send of a plan's second (or later) channel
    REPORT = 5  # a provider's status webhook: cheap, and it finishes messages
    TIMER = 10  # a fallback deadline


class JobState(StrEnum):
    PENDING = "pending"  # waiting for its run_at, or claimable
    RUNNING = "running"  # leased (the lease may have expired: then claimable again)
    DEAD = "dead"  # attempts exhausted; kept for inspection


class LeaseLost(Exception):
    """The job was taken over (its lease expired) while its handler ran: what the
    handler wrote is rolled back, the new holder runs it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    id: str
    kind: str
    payload: Mapping[str, Any]
    run_at: datetime
    attempts: int  # claims so far, this one included while running
    max_attempts: int
    created_at: datetime
    dedupe_key: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None
    dead_at: datetime | None = None
    priority: int = Priority.NORMAL

    @property
    def state(self) -> JobState:
        if self.dead_at is not None:
            return JobState.DEAD
        return JobState.RUNNING if self.lease_owner is not None else JobState.PENDING

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempts)


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """`first * factor**(n-1)` seconds after the n-th failure, at most `cap`.

    Jitter only shortens the delay, by up to `jitter` of it, so workers that failed
    together (a provider outage) spread out instead of retrying in one burst, and
    no delay ever exceeds `cap`.
    """

    first: float = 5.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not (0 < self.first <= self.cap and self.factor >= 1 and 0 <= self.jitter < 1):
            raise ValueError("need 0 < first <= cap, factor >= 1 and 0 <= jitter < 1")


DEFAULT_BACKOFF: Final = Backoff()


def backoff_delay(failures: int, policy: Backoff, rand: float) -> timedelta:
    """The wait after the `failures`-th failure (1 = the first); `rand` in [0, 1).

    Pass `random.Random().random()` in production, a fixed value in tests.
    """
    if failures < 1:
        raise ValueError("failures counts from 1")
    if not 0 <= rand < 1:
        raise ValueError("rand must be in [0, 1)")
    # Compare exponents rather than computing factor**n, which overflows a float.
    if policy.factor == 1 or failures - 1 < math.log(policy.cap / policy.first, policy.factor):
        raw = min(policy.cap, policy.first * policy.factor ** (failures - 1))
    else:
        raw = policy.cap
    return timedelta(seconds=raw * (1 - policy.jitter * rand))


def next_attempt_at(
    *, attempts: int, max_attempts: int, now: datetime, policy: Backoff, rand: float
) -> datetime | None:
    """When a job whose `attempts`-th attempt just failed runs again; None: it is dead."""
    if attempts >= max_attempts:
        return None
    return now + backoff_delay(max(1, attempts), policy, rand)


def error_text(exc: BaseException, *, limit: int = ERROR_TEXT_LIMIT) -> str:
    """`Type: message` on one bounded line, for `last_error` and the logs.

    The caller still scrubs it: messages can quote secrets (URLs with passwords,
    tokens), and what to scrub is the logging layer's knowledge.
    """
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
