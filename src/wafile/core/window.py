"""WhatsApp's customer-service window: free-form messages only within 24 hours of the
user's last message to the business number; outside it, only approved templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["WINDOW", "WindowState", "window_state"]

WINDOW = timedelta(hours=24)


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowState:
    open: bool
    last_inbound_at: datetime | None
    closes_at: datetime | None
    minutes_left: int  # whole minutes, rounded down; 0 when closed


def window_state(last_inbound_at: datetime | None, now: datetime) -> WindowState:
    if last_inbound_at is None:
        return WindowState(open=False, last_inbound_at=None, closes_at=None, minutes_left=0)
    closes = last_inbound_at + WINDOW
    left = closes - now
    is_open = left > timedelta(0)
    return WindowState(
        open=is_open,
        last_inbound_at=last_inbound_at,
        closes_at=closes,
        minutes_left=int(left.total_seconds() // 60) if is_open else 0,
    )
