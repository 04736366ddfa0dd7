"""Callback formats: the shape and the signature of what an endpoint receives.

wafile's own format (`standard`) is the event document of `core.callbacks`, signed the
Standard Webhooks way. A vendor dialect adds its vendor's format here: `build` turns
the native event document into the vendor's body (or None: the vendor reports nothing
for this event), `sign` gives the vendor's signature headers for the raw body. Both are
pure; the body is built when the event happens and stored, so every retry sends the
same bytes, and signed at each attempt. `retry_schedule` is when a failed delivery is
tried again: the vendor's own where its documentation gives one, else wafile's
(`RETRY_SCHEDULE`, about three days, which `WAFILE_CALLBACK_RETRY_SCHEDULE` replaces).

A vendor format is named after its dialect (`api/dialects`), and a message records
the dialect it came through (its origin). An endpoint in a vendor's format receives
only that dialect's messages, as the vendor's own callback URL would; a `standard`
endpoint receives every message of the account (`endpoint_receives`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from wafile.core.accounts import Account
from wafile.core.vendor_callbacks import digital99, insider, sinch, telesign

__all__ = [
    "FORMATS",
    "RETRY_SCHEDULE",
    "STANDARD",
    "CallbackFormat",
    "Signer",
    "endpoint_receives",
    "format_named",
]

# (raw body, the target's secret, the event id, the time of this attempt, the account
# whose message it is) -> headers
Signer = Callable[[bytes, str, str, datetime, Account], dict[str, str]]

# wafile's schedule. Seconds before automatic attempt n+1 (index n): immediately, then
# backing off over about three days (Standard Webhooks / Svix style). After the last
# one the delivery is `failed` (still in the log; redeliver it by hand).
RETRY_SCHEDULE: Final[tuple[float, ...]] = (
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackFormat:
    name: str
    # The vendor's body for one native event document; None: nothing to send for it.
    build: Callable[[dict[str, Any]], dict[str, Any] | None]
    # The vendor's signature headers; None: Standard Webhooks (the channel signs).
    sign: Signer | None = None
    # When a failed delivery is tried again (RETRY_SCHEDULE's shape): the vendor's own
    # schedule; None: wafile's (RETRY_SCHEDULE, or WAFILE_CALLBACK_RETRY_SCHEDULE).
    retry_schedule: tuple[float, ...] | None = None


STANDARD: Final = "standard"


def _native(event: dict[str, Any]) -> dict[str, Any]:
    return event


_FORMATS: dict[str, CallbackFormat] = {
    STANDARD: CallbackFormat(name=STANDARD, build=_native),
    insider.FORMAT: CallbackFormat(name=insider.FORMAT, build=insider.build),
    telesign.FORMAT: CallbackFormat(name=telesign.FORMAT, build=telesign.build, sign=telesign.sign),
    sinch.FORMAT: CallbackFormat(
        name=sinch.FORMAT, build=sinch.build, retry_schedule=sinch.RETRY_SCHEDULE
    ),
    digital99.FORMAT: CallbackFormat(
        name=digital99.FORMAT, build=digital99.build, retry_schedule=digital99.RETRY_SCHEDULE
    ),
}
FORMATS: Final[Mapping[str, CallbackFormat]] = MappingProxyType(_FORMATS)


def format_named(name: str) -> CallbackFormat:
    """The format; `ValueError` for an unknown name."""
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"unknown callback format {name!r} (known: {known})") from None


def endpoint_receives(endpoint_format: str, *, origin: str, own_format: str | None) -> bool:
    """Whether an endpoint in `endpoint_format` receives the events of a message that
    came through `origin` and whose own callback URL (if any) is in `own_format`.

    A `standard` endpoint receives every message. A vendor's endpoint (the callback URL
    configured for the account) receives only its dialect's messages, and not those
    that named a callback URL of their own in its format: Telesign's `callback_url`
    and Sinch's `callback` override the configured URL for that send.
    """
    if endpoint_format == STANDARD:
        return True
    return endpoint_format == origin and own_format != endpoint_format
