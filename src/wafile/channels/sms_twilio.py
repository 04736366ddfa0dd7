"""SMS through a Twilio-compatible Messages API: one POST per attempt, errors read.

One pooled httpx client per process, timeouts on every phase. Twilio's error body
(`{code, message, status}`) becomes `TwilioFailure` with its code, which the caller
classifies with `core.provider_errors.classify_sms` (never the text, which Twilio
changes). A timeout or a 5xx without a Twilio body has no code: the send may have
gone (Twilio has no idempotency key), and the caller decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from wafile import __version__
from wafile.channels.http_pool import polling_transport
from wafile.channels.pooled import PooledClient, ProviderFailure
from wafile.core.senders import TwilioSender

__all__ = ["SmsSent", "SmsState", "TwilioFailure", "TwilioSms"]

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
API_VERSION = "2010-04-01"


@dataclass(kw_only=True)  # not frozen: Python sets attributes on exceptions it raises
class TwilioFailure(ProviderFailure):
    http_status: int | None  # None: no answer at all (timeout, connection refused)
    code: int | None  # Twilio's error code; None when the answer carried none
    message: str = ""

    def __str__(self) -> str:
        where = f"HTTP {self.http_status}" if self.http_status else "no answer"
        code = f"code {self.code}" if self.code is not None else "no Twilio error"
        return f"{where}, {code}: {self.message}"


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSent:
    sid: str
    status: str  # queued, or accepted through a Messaging Service
    segments: int | None  # None until a Messaging Service has picked a number


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsState:
    """A message as the provider sees it now (what a status callback would have said)."""

    status: str
    error_code: int | None
    error_message: str | None
    to: str


class TwilioSms(PooledClient):
    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(
            timeout=TIMEOUT,
            headers={"User-Agent": f"wafile/{__version__}"},
            transport=transport
            or polling_transport(httpx.Limits(max_connections=100, max_keepalive_connections=20)),
        )

    async def send(
        self,
        sender: TwilioSender,
        auth_token: str,
        *,
        to: str,
        body: str,
        status_callback: str | None,
    ) -> SmsSent:
        """Create one Message; 201 means accepted for sending, not delivered."""
        form: dict[str, str] = {"To": to, "Body": body}
        if sender.messaging_service_sid is not None:
            form["MessagingServiceSid"] = sender.messaging_service_sid
        else:
            form["From"] = sender.from_number or ""
        if status_callback is not None:
            form["StatusCallback"] = status_callback
        url = _messages_url(sender) + ".json"
        doc = await self._call("POST", url, auth_token, sender, data=form)
        sid = doc.get("sid")
        if not isinstance(sid, str) or not sid:
            raise TwilioFailure(http_status=201, code=None, message="the answer has no sid")
        return SmsSent(sid=sid, status=str(doc.get("status") or ""), segments=_segments(doc))

    async def fetch(self, sender: TwilioSender, auth_token: str, sid: str) -> SmsState:
        """A sent message's status now: what to go by when its callbacks were lost."""
        url = f"{_messages_url(sender)}/{quote(sid, safe='')}.json"
        doc = await self._call("GET", url, auth_token, sender)
        code = doc.get("error_code")
        message = doc.get("error_message")
        return SmsState(
            status=str(doc.get("status") or ""),
            error_code=code if isinstance(code, int) else None,
            error_message=str(message) if message else None,
            to=str(doc.get("to") or ""),
        )

    async def _call(
        self, method: str, url: str, auth_token: str, sender: TwilioSender, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            resp = await self._http.request(
                method, url, auth=(sender.account_sid, auth_token), **kwargs
            )
        except httpx.TimeoutException:
            raise TwilioFailure(http_status=None, code=None, message="timed out") from None
        except httpx.TransportError as exc:
            why = f"unreachable: {exc}"
            raise TwilioFailure(http_status=None, code=None, message=why) from None
        try:
            doc: Any = resp.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise TwilioFailure(http_status=resp.status_code, code=None, message=resp.reason_phrase)
        if not resp.is_success:
            code = doc.get("code")
            raise TwilioFailure(
                http_status=resp.status_code,
                code=code if isinstance(code, int) else None,
                message=str(doc.get("message") or resp.reason_phrase),
            )
        return doc


def _messages_url(sender: TwilioSender) -> str:
    base = sender.base_url.rstrip("/")
    return f"{base}/{API_VERSION}/Accounts/{quote(sender.account_sid, safe='')}/Messages"


def _segments(doc: dict[str, Any]) -> int | None:
    # Twilio reports num_segments as a string, "0" until a Messaging Service picks a number.
    try:
        n = int(doc.get("num_segments") or 0)
    except (TypeError, ValueError):
        return None
    return n or None
