"""What the emulator remembers about each message, and Twilio's JSON for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final

from wafile.core.sms_segments import SmsSegments

__all__ = ["API_VERSION", "Message", "StatusChange", "message_path", "rfc2822"]

API_VERSION: Final = "2010-04-01"


def rfc2822(timestamp: float) -> str:
    """Twilio's date format: `Thu, 30 Jul 2015 20:12:31 +0000`."""
    return format_datetime(datetime.fromtimestamp(int(timestamp), UTC))


def message_path(account_sid: str, sid: str, suffix: str = ".json") -> str:
    """A message's path below the API root, as Twilio writes its `uri`."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}{suffix}"


@dataclass(kw_only=True, slots=True)
class StatusChange:
    status: str
    at: float  # unix seconds (the emulator's clock)
    error_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "at": self.at, "error_code": self.error_code}


@dataclass(kw_only=True, slots=True)
class Message:
    """One outbound message: what was asked, where it stands, and how it got there."""

    sid: str
    account_sid: str
    to: str
    sender: str | None  # Twilio's `from`; None until a Messaging Service picks one
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    segments: SmsSegments
    created: float
    status: str
    updated: float
    sent: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    history: list[StatusChange] = field(default_factory=list)

    @property
    def num_segments(self) -> int:
        # A Messaging Service has not chosen its sender yet: Twilio reports 0 until then.
        if self.sender is None:
            return 0
        return 1 if self.media_urls and not self.body else self.segments.count

    def resource(self, root: str) -> dict[str, Any]:
        """Twilio's Message resource. `root` is the path this app is served under
        ("" standalone), so `uri` resolves against the host it was fetched from."""
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.created),
            "date_sent": rfc2822(self.sent) if self.sent is not None else None,
            "date_updated": rfc2822(self.updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.sender,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": root + message_path(self.account_sid, self.sid, "/Media.json")
            },
            "to": self.to,
            "uri": root + message_path(self.account_sid, self.sid),
        }

    def details(self, root: str, base_url: str) -> dict[str, Any]:
        """The resource plus what the control API adds: absolute URL, callback URL,
        media URLs, encoding and the status history."""
        return {
            **self.resource(root),
            "url": base_url + message_path(self.account_sid, self.sid).lstrip("/"),
            "status_callback": self.status_callback,
            "media_urls": list(self.media_urls),
            "encoding": str(self.segments.encoding),
            "history": [change.to_json() for change in self.history],
        }

    def inbox_entry(self) -> dict[str, Any]:
        """The message as the phone's inbox shows it."""
        return {
            "sid": self.sid,
            "from": self.sender,
            "body": self.body,
            "media_urls": list(self.media_urls),
            "status": self.status,
            "error_code": self.error_code,
            "num_segments": self.num_segments,
            "encoding": str(self.segments.encoding),
            "date_created": rfc2822(self.created),
        }
