"""The fallback plan: which channels a message tries, in order, and what counts as
success on each (Telesign's ordered `channels` with `fallback_time`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["MAX_FALLBACK_TIME", "Channel", "Plan", "PlanStep", "Success", "make_plan"]

# Bounded so that a deadline is always a representable datetime, and because no
# provider keeps reporting on a message for longer (Meta retries webhooks for 7 days).
MAX_FALLBACK_TIME: Final = 30 * 24 * 3600.0


class Channel(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"


class Success(StrEnum):
    """The attempt status that counts as success on a channel (the same words as
    `message_state.AttemptStatus`)."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanStep:
    channel: Channel
    success: Success = Success.DELIVERED
    # Seconds to wait for `success` before the next channel starts; None: wait for
    # as long as it takes (only a failure moves on).
    fallback_time: float | None = None

    def __post_init__(self) -> None:
        t = self.fallback_time
        if t is not None and not (math.isfinite(t) and 0 < t <= MAX_FALLBACK_TIME):
            raise ValueError(f"fallback_time must be in (0, {MAX_FALLBACK_TIME:g}] seconds")
        if self.channel is Channel.SMS and self.success is Success.READ:
            # SMS has no read receipts: the step could never succeed.
            raise ValueError("an SMS step cannot wait for 'read': SMS reports no reads")


Plan = tuple[PlanStep, ...]


def make_plan(steps: Iterable[PlanStep]) -> Plan:
    """A plan of at least one step, in the order the channels are tried."""
    plan = tuple(steps)
    if not plan:
        raise ValueError("a plan needs at least one channel")
    return plan
