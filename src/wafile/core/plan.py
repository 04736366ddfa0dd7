"""The fallback plan: which channels a message tries, in order, and what counts as
success on each (Telesign's ordered `channels` with `fallback_time`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "MAX_FALLBACK_TIME",
    "MIN_FALLBACK_TIME",
    "Channel",
    "Plan",
    "PlanStep",
    "Success",
    "make_plan",
    "plan_from_json",
    "plan_to_json",
]

# Bounded so that a deadline is always a representable datetime, and because no
# provider keeps reporting on a message for longer (Meta retries webhooks for 7 days).
MAX_FALLBACK_TIME: Final = 30 * 24 * 3600.0
# Below a second a deadline is noise: the worker's poll and the provider's own latency
# are of that order, and no channel can prove delivery faster.
MIN_FALLBACK_TIME: Final = 1.0


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
    # The sender that sends this step (resolved when the message is accepted).
    sender_id: str | None = None
    # SMS only: the text, with {link}, {filename} and {caption} placeholders.
    text: str | None = None

    def __post_init__(self) -> None:
        t = self.fallback_time
        if t is not None and not (math.isfinite(t) and MIN_FALLBACK_TIME <= t <= MAX_FALLBACK_TIME):
            raise ValueError(
                f"fallback_time must be between {MIN_FALLBACK_TIME:g} and "
                f"{MAX_FALLBACK_TIME:g} seconds"
            )
        if self.text is not None and self.channel is not Channel.SMS:
            raise ValueError("only an SMS step takes a text")
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


def plan_to_json(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "channel": str(step.channel),
            "success": str(step.success),
            "fallback_time": step.fallback_time,
            "sender_id": step.sender_id,
            "text": step.text,
        }
        for step in plan
    ]


def plan_from_json(doc: list[dict[str, Any]]) -> Plan:
    return make_plan(
        PlanStep(
            channel=Channel(step["channel"]),
            success=Success(step.get("success") or Success.DELIVERED),
            fallback_time=step.get("fallback_time"),
            sender_id=step.get("sender_id"),
            text=step.get("text"),
        )
        for step in doc
    )
