"""Status callbacks as Twilio sends them: a form POST per status change, signed with
`X-Twilio-Signature`, with Twilio's connection overrides, and the delivery log.

Retries follow Twilio's documented connection overrides, read from the callback URL's
fragment (`https://x/cb#rc=3&rp=all`): `rc` retries (default 1, at most 5) of the
failures named by `rp` (`ct` connect failure, `rt` read timeout, `4xx`, `5xx`, `all`),
within `tt` milliseconds in all. The reference leaves `rp`'s default open; the emulator
retries connection failures only (`ct`), so by default a non-2xx answer is recorded and
not retried. Twilio does no long-lived redelivery, and neither does the emulator.

The signature covers the callback URL exactly as the message gave it (fragment
included) and the form fields; the POST goes to that URL without its fragment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urldefrag, urlencode, urlsplit

import httpx

from wafile.core.twilio_signature import SIGNATURE_HEADER, twilio_signature
from wafile.emulator.sms.records import API_VERSION, Message

__all__ = [
    "LOG_SIZE",
    "POLICIES",
    "USER_AGENT",
    "Attempt",
    "CallbackLog",
    "Delivery",
    "Overrides",
    "deliver",
    "parse_overrides",
    "status_params",
]

USER_AGENT: Final = "TwilioProxy/1.1"
LOG_SIZE: Final = 10_000  # entries kept; a long benchmark must not grow memory forever
POLICIES: Final = frozenset({"ct", "rt", "4xx", "5xx", "all"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Overrides:
    """Twilio's connection settings for one callback URL (times in seconds)."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_time: float = 15.0
    retry_count: int = 1
    retry_policy: frozenset[str] = frozenset({"ct"})

    def retries(self, failure: str) -> bool:
        return "all" in self.retry_policy or failure in self.retry_policy

    def to_json(self) -> dict[str, Any]:
        return {
            "ct": round(self.connect_timeout * 1000),
            "rt": round(self.read_timeout * 1000),
            "tt": round(self.total_time * 1000),
            "rc": self.retry_count,
            "rp": sorted(self.retry_policy),
        }


# (low, high) of each numeric override, as Twilio documents them; out of range is clamped.
_MS_RANGES: Final = {"ct": (100, 10_000), "rt": (100, 15_000), "tt": (100, 15_000)}


def parse_overrides(url: str) -> Overrides:
    """The overrides in `url`'s fragment; unknown keys and unreadable values are ignored."""
    fragment = urlsplit(url).fragment
    found: dict[str, Any] = {}
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        if key in _MS_RANGES:
            number = _int(value)
            if number is not None:
                low, high = _MS_RANGES[key]
                found[key] = min(high, max(low, number)) / 1000
        elif key == "rc":
            number = _int(value)
            if number is not None:
                found[key] = min(5, max(0, number))
        elif key == "rp":
            policy = frozenset(p.strip().lower() for p in value.split(",") if p.strip())
            if policy and policy <= POLICIES:
                found[key] = policy
    default = Overrides()
    return Overrides(
        connect_timeout=found.get("ct", default.connect_timeout),
        read_timeout=found.get("rt", default.read_timeout),
        total_time=found.get("tt", default.total_time),
        retry_count=found.get("rc", default.retry_count),
        retry_policy=found.get("rp", default.retry_policy),
    )


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def status_params(msg: Message, status: str, now: float) -> dict[str, str]:
    """The form fields of a status callback: Twilio's core set for SMS."""
    params = {
        "AccountSid": msg.account_sid,
        "ApiVersion": API_VERSION,
        "From": msg.sender or "",
        "MessageSid": msg.sid,
        "MessageStatus": status,
        "SmsSid": msg.sid,
        "SmsStatus": status,
        "To": msg.to,
    }
    if msg.messaging_service_sid is not None:
        params["MessagingServiceSid"] = msg.messaging_service_sid
    if status in {"failed", "undelivered"} and msg.error_code is not None:
        params["ErrorCode"] = str(msg.error_code)
    if status in {"delivered", "undelivered"}:
        # The carrier's delivery report time, YYMMDDhhmm (UTC).
        params["RawDlrDoneDate"] = datetime.fromtimestamp(int(now), UTC).strftime("%y%m%d%H%M")
    return params


@dataclass(kw_only=True, slots=True)
class Attempt:
    at: float  # unix seconds (the emulator's clock)
    status_code: int | None  # None when there was no HTTP answer
    error: str | None = None  # ct / rt / other: why there was no answer

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "status_code": self.status_code, "error": self.error}


@dataclass(kw_only=True, slots=True)
class Delivery:
    """One status callback: what is (or was) posted where, and how each attempt went."""

    id: int
    message_sid: str
    status: str
    url: str  # as the message gave it; signed as is
    params: dict[str, str]
    signature: str
    overrides: Overrides
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"  # pending -> delivered | failed; cancelled by reset/close

    @property
    def post_url(self) -> str:
        return urldefrag(self.url).url

    @property
    def body(self) -> bytes:
        return urlencode(self.params).encode("ascii")

    def to_json(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "id": self.id,
            "message_sid": self.message_sid,
            "status": self.status,
            "url": self.url,
            "params": dict(self.params),
            "signature": self.signature,
            "overrides": self.overrides.to_json(),
            "attempts": [a.to_json() for a in self.attempts],
            "response_status": last.status_code if last else None,
            "outcome": self.outcome,
        }


class CallbackLog:
    """Every status callback the emulator produced, oldest first, bounded to LOG_SIZE."""

    def __init__(self, size: int = LOG_SIZE) -> None:
        self._entries: deque[Delivery] = deque(maxlen=size)
        self._next_id = 1

    def add(self, *, msg: Message, status: str, url: str, auth_token: str, now: float) -> Delivery:
        params = status_params(msg, status, now)
        entry = Delivery(
            id=self._next_id,
            message_sid=msg.sid,
            status=status,
            url=url,
            params=params,
            signature=twilio_signature(auth_token, url, params),
            overrides=parse_overrides(url),
        )
        self._next_id += 1
        self._entries.append(entry)
        return entry

    def __iter__(self) -> Iterator[Delivery]:
        return iter(list(self._entries))

    def clear(self) -> None:
        self._entries.clear()
        self._next_id = 1


async def deliver(client: httpx.AsyncClient, entry: Delivery, now: Callable[[], float]) -> None:
    """POST the callback; retry as its overrides allow; record every attempt."""
    o = entry.overrides
    loop = asyncio.get_running_loop()
    deadline = loop.time() + o.total_time
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: entry.signature,
        "User-Agent": USER_AGENT,
    }
    retries_left = o.retry_count
    while True:
        left = max(0.01, deadline - loop.time())
        # No pool timeout: the wait for one of the emulator's own connections is not
        # part of the provider's budget for the receiver (see the WhatsApp emulator).
        timeout = httpx.Timeout(
            left, connect=min(o.connect_timeout, left), read=min(o.read_timeout, left), pool=None
        )
        failure: str
        try:
            response = await client.post(
                entry.post_url, content=entry.body, headers=headers, timeout=timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            entry.attempts.append(Attempt(at=now(), status_code=None, error=_named("ct", exc)))
            failure = "ct"
        except httpx.ReadTimeout as exc:
            entry.attempts.append(Attempt(at=now(), status_code=None, error=_named("rt", exc)))
            failure = "rt"
        except httpx.HTTPError as exc:
            entry.attempts.append(Attempt(at=now(), status_code=None, error=_named("other", exc)))
            failure = "other"
        else:
            code = response.status_code
            entry.attempts.append(Attempt(at=now(), status_code=code))
            if response.is_success:
                entry.outcome = "delivered"
                return
            failure = "4xx" if 400 <= code < 500 else "5xx" if code >= 500 else "other"
        if retries_left <= 0 or not o.retries(failure) or loop.time() >= deadline:
            entry.outcome = "failed"
            return
        retries_left -= 1


def _named(kind: str, exc: Exception) -> str:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{kind} ({detail})"
