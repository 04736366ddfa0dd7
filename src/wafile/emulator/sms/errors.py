"""Twilio's errors: the JSON body of a refused request, and the codes the emulator uses.

The body is `{"code", "message", "more_info", "status"}` (plus `detail` on 20003, as
Twilio sends it). Codes follow the reference (sms-provider.md, section 1.6); the message
texts are Twilio's where known and only for people: Twilio warns they may change, so
clients must act on `code`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "ASYNC_ERRORS",
    "MORE_INFO",
    "SYNC_ERRORS",
    "AsyncError",
    "EndStatus",
    "TwilioError",
    "auth_failed",
    "body_required",
    "body_too_long",
    "from_not_owned",
    "from_required",
    "internal_error",
    "invalid_media_url",
    "invalid_status_callback",
    "invalid_to",
    "method_not_allowed",
    "not_found",
    "scripted_refusal",
    "service_invalid",
    "service_not_found",
    "to_required",
    "too_many_media",
]

MORE_INFO: Final = "https://www.twilio.com/docs/errors/{code}"


class TwilioError(Exception):
    """A request Twilio refuses, rendered as its error JSON with `status` as HTTP status."""

    def __init__(self, code: int, message: str, status: int = 400, detail: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        body["more_info"] = MORE_INFO.format(code=self.code)
        body["status"] = self.status
        return body


# Refusals a phone can be scripted with (`fail_with`): the send answers at once with
# this HTTP status and no message is created. `{to}` is filled with the recipient.
SYNC_ERRORS: Final[Mapping[int, tuple[int, str]]] = MappingProxyType(
    {
        20429: (429, "Too Many Requests"),
        20500: (500, "An internal server error has occurred"),
        20503: (503, "Service unavailable"),
        21211: (400, "The 'To' number {to} is not a valid phone number."),
        21408: (
            400,
            "Permission to send an SMS has not been enabled for the region indicated "
            "by the 'To' number: {to}.",
        ),
        21610: (400, "Attempt to send to unsubscribed recipient"),
        21614: (400, "'To' number {to} is not a valid mobile number"),
    }
)

EndStatus = Literal["failed", "undelivered"]


@dataclass(frozen=True, slots=True)
class AsyncError:
    """An error that ends an accepted message: `failed` (never sent) or `undelivered`
    (sent, then the carrier reported failure)."""

    code: int
    status: EndStatus
    message: str


ASYNC_ERRORS: Final[Mapping[int, AsyncError]] = MappingProxyType(
    {
        e.code: e
        for e in (
            AsyncError(30001, "failed", "Queue overflow"),
            AsyncError(30002, "failed", "Account suspended"),
            AsyncError(30003, "undelivered", "Unreachable destination handset"),
            AsyncError(30004, "undelivered", "Message blocked"),
            AsyncError(30005, "undelivered", "Unknown destination handset"),
            AsyncError(30006, "undelivered", "Landline or unreachable carrier"),
            AsyncError(30007, "undelivered", "Message filtered"),
            AsyncError(30008, "undelivered", "Unknown error"),
            AsyncError(30010, "failed", "Message price exceeds max price"),
        )
    }
)


def auth_failed() -> TwilioError:
    return TwilioError(
        20003, "Authenticate", status=401, detail="Your AccountSid or AuthToken was incorrect."
    )


def not_found(path: str) -> TwilioError:
    return TwilioError(20404, f"The requested resource {path} was not found", status=404)


def method_not_allowed(method: str) -> TwilioError:
    return TwilioError(20004, f"Method not allowed: {method}", status=405)


def internal_error() -> TwilioError:
    return TwilioError(20500, "An internal server error has occurred", status=500)


def to_required() -> TwilioError:
    return TwilioError(21604, "A 'To' phone number is required.")


def from_required() -> TwilioError:
    return TwilioError(
        21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message"
    )


def body_required(*, messaging_service: bool) -> TwilioError:
    # Twilio answers 21619 when a Messaging Service sends, 21602 for a plain From.
    if messaging_service:
        return TwilioError(21619, "A text message body, media url or content sid is required")
    return TwilioError(21602, "Message body is required.")


def body_too_long(limit: int) -> TwilioError:
    return TwilioError(21617, f"The concatenated message body exceeds the {limit} character limit.")


def invalid_to(to: str) -> TwilioError:
    return TwilioError(21211, f"The 'To' number {to} is not a valid phone number.")


def from_not_owned(sender: str) -> TwilioError:
    return TwilioError(
        21606,
        f"The From phone number {sender} is not a valid, SMS-capable inbound phone number "
        "or short code for your account.",
    )


def service_invalid(sid: str) -> TwilioError:
    return TwilioError(21705, f"The Messaging Service Sid {sid} is invalid.")


def service_not_found(sid: str) -> TwilioError:
    return TwilioError(21701, f"The Messaging Service Sid {sid} does not exist.")


def invalid_status_callback(url: str) -> TwilioError:
    return TwilioError(21609, f"The StatusCallback URL {url} is not a valid URL.")


def invalid_media_url(urls: list[str]) -> TwilioError:
    return TwilioError(
        21620,
        f"Media urls: {', '.join(urls)} are invalid. Please use only valid http and https urls",
    )


def too_many_media(limit: int) -> TwilioError:
    return TwilioError(21623, f"Too many media urls provided: at most {limit} per message.")


def scripted_refusal(code: int, to: str) -> TwilioError:
    """The synchronous refusal a phone's `fail_with` (one of SYNC_ERRORS) asks for."""
    status, template = SYNC_ERRORS[code]
    return TwilioError(code, template.format(to=to), status=status)
