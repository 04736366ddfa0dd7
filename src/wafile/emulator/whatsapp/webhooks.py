"""Webhooks as Meta sends them: the envelope, the body bytes and their signature, POSTs
retried with backoff, the delivery log, and the GET verification handshake."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from wafile.core.meta_signature import SIGNATURE_HEADER, hub_signature
from wafile.emulator.whatsapp.world import BusinessNumber, Timing

__all__ = [
    "USER_AGENT",
    "Attempt",
    "Delivery",
    "StatusBatch",
    "WebhookLog",
    "encode_body",
    "envelope",
    "post_with_retries",
    "verify_webhook",
]

USER_AGENT: Final = "facebookexternalua"
LOG_SIZE: Final = 10_000  # entries kept; a long benchmark must not grow memory forever


def envelope(number: BusinessNumber, value: dict[str, Any]) -> dict[str, Any]:
    """Meta's envelope around one change (`messages` field) for this business number."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": number.waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": number.display_phone_number,
                                "phone_number_id": number.phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    """The bytes Meta would post: compact JSON with non-ASCII as \\uXXXX and `/` as `\\/`.

    A receiver that re-serialises the parsed JSON before checking the signature gets
    different bytes, and a failed check, exactly as with Meta.
    """
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


@dataclass(kw_only=True, slots=True)
class Attempt:
    at: float  # unix seconds (the emulator's clock)
    status_code: int | None  # None when there was no HTTP answer
    error: str | None = None


@dataclass(kw_only=True, slots=True)
class Delivery:
    """One webhook: what was (or is being) posted where, and how each attempt went.

    A status webhook carries one status or, batched, several: `statuses` lists each
    (message id, status); `message_id` and `status` name the only one, or are None."""

    id: int
    kind: str  # "status" or "message"
    phone_number_id: str
    message_id: str | None
    status: str | None  # sent/delivered/read/failed for status webhooks
    url: str | None
    body: bytes
    signature: str
    attempts: list[Attempt] = field(default_factory=list)
    # pending -> delivered | gave_up; no_webhook_url when the number has none; cancelled
    outcome: str = "pending"
    statuses: tuple[tuple[str, str], ...] = ()

    def matches(self, filters: Mapping[str, str]) -> bool:
        """Whether the log filters select this entry; `message_id` and `status` select a
        batched one when one of its statuses has both."""
        plain = {k: v for k, v in filters.items() if k not in {"message_id", "status"}}
        if not all(str(getattr(self, k)) == v for k, v in plain.items()):
            return False
        pairs = self.statuses or ((str(self.message_id), str(self.status)),)
        wanted_id, wanted_status = filters.get("message_id"), filters.get("status")
        return any(
            wanted_id in (None, mid) and wanted_status in (None, status) for mid, status in pairs
        )

    def to_json(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "id": self.id,
            "kind": self.kind,
            "phone_number_id": self.phone_number_id,
            "message_id": self.message_id,
            "status": self.status,
            "statuses": [{"message_id": m, "status": s} for m, s in self.statuses],
            "url": self.url,
            "body": json.loads(self.body),
            "raw_body": self.body.decode("ascii"),
            "signature": self.signature,
            "attempts": [
                {"at": a.at, "status_code": a.status_code, "error": a.error} for a in self.attempts
            ],
            "response_status": last.status_code if last else None,
            "outcome": self.outcome,
        }


@dataclass(kw_only=True, slots=True)
class StatusBatch:
    """Statuses for one number's webhook URL waiting to be posted together (Meta batches
    them): each is (message id, status, status object). `full` ends the wait early;
    `done` resolves once the POST is over (retries included), so each message's next
    status still waits for this one."""

    number: BusinessNumber
    done: asyncio.Future[None]
    items: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


class WebhookLog:
    """Every webhook the emulator produced, newest last, bounded to LOG_SIZE entries."""

    def __init__(self, size: int = LOG_SIZE) -> None:
        self._entries: deque[Delivery] = deque(maxlen=size)
        self._next_id = 1

    def add(
        self,
        *,
        number: BusinessNumber,
        kind: str,
        message_id: str | None,
        status: str | None,
        payload: dict[str, Any],
        statuses: tuple[tuple[str, str], ...] = (),
    ) -> Delivery:
        body = encode_body(payload)
        entry = Delivery(
            id=self._next_id,
            kind=kind,
            phone_number_id=number.phone_number_id,
            message_id=message_id,
            status=status,
            url=number.webhook_url,
            body=body,
            signature=hub_signature(number.app_secret, body),
            outcome="pending" if number.webhook_url else "no_webhook_url",
            statuses=statuses,
        )
        self._next_id += 1
        self._entries.append(entry)
        return entry

    def __iter__(self) -> Iterator[Delivery]:
        return iter(list(self._entries))

    def clear(self) -> None:
        self._entries.clear()
        self._next_id = 1


async def post_with_retries(
    client: httpx.AsyncClient,
    entry: Delivery,
    timing: Callable[[], Timing],
    now: Callable[[], float],
) -> None:
    """POST until a 2xx answer or the retry delays run out (then `gave_up`).

    `timing` is read before each step so a changed scale applies to webhooks in flight.
    """
    if entry.url is None:
        return
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: entry.signature,
        "User-Agent": USER_AGENT,
    }
    attempt = 0
    while True:
        # Waiting for one of the emulator's own connections is not the receiver being
        # slow (Meta queues its webhooks; it does not fail them for that): no pool
        # timeout. A burst of thousands of statuses timed out in that wait and then
        # backed off for minutes, which measured the emulator, not wafile.
        timeout = httpx.Timeout(timing().webhook_timeout, pool=None)
        try:
            response = await client.post(
                entry.url, content=entry.body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            entry.attempts.append(Attempt(at=now(), status_code=None, error=_describe(exc)))
        else:
            entry.attempts.append(Attempt(at=now(), status_code=response.status_code))
            if response.is_success:
                entry.outcome = "delivered"
                return
        delays = timing().retry_delays
        if attempt >= len(delays):
            entry.outcome = "gave_up"
            return
        await asyncio.sleep(timing().delay(delays[attempt]))
        attempt += 1


async def verify_webhook(
    client: httpx.AsyncClient, url: str, verify_token: str, wait: float
) -> dict[str, Any]:
    """Meta's GET handshake: the endpoint must answer 200 with the challenge as its body."""
    challenge = str(secrets.randbelow(10**9) + 10**9)  # Meta's challenges are digits
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
    result: dict[str, Any] = {"url": url, "challenge": challenge, "status_code": None}
    try:
        response = await client.get(url, params=params, timeout=wait)
    except httpx.HTTPError as exc:
        return {**result, "ok": False, "detail": f"unreachable: {_describe(exc)}"}
    result["status_code"] = response.status_code
    if response.status_code != 200:
        return {**result, "ok": False, "detail": f"answered HTTP {response.status_code}"}
    if response.text.strip() != challenge:
        return {**result, "ok": False, "detail": "answered 200 without echoing hub.challenge"}
    return {**result, "ok": True, "detail": "the challenge was echoed"}


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
