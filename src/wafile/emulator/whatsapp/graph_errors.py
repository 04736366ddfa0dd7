"""Graph API errors as Meta sends them: the synchronous envelope of a failed request and
the asynchronous error objects inside `failed` status webhooks.

Codes, titles and HTTP statuses follow the reference (whatsapp-cloud-api.md, sections 2
and 3). Where it lists more than one status, the emulator answers what real Graph
answers in practice: 400 for nearly everything, 401 for tokens, 404 for a template that
does not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "ERROR_HREF",
    "AsyncError",
    "GraphError",
    "async_error",
    "invalid_parameter",
    "invalid_token",
    "media_upload_error",
    "missing_parameter",
    "pair_rate_limited",
    "parameter_value_invalid",
    "rate_limited",
    "template_format_mismatch",
    "template_not_found",
    "template_param_mismatch",
    "template_unusable",
    "unknown_object",
    "unknown_path",
    "unsupported_message_type",
]

ERROR_HREF: Final = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


class GraphError(Exception):
    """A request Graph refuses: rendered as `{"error": {...}}` with its HTTP status."""

    def __init__(
        self,
        *,
        code: int,
        message: str,
        status: int = 400,
        type: str = "OAuthException",  # Graph's own field name
        subcode: int | None = None,
        details: str | None = None,
        is_transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.type = type
        self.subcode = subcode
        self.details = details
        self.is_transient = is_transient

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details is not None:
            # WhatsApp errors carry the product and a human explanation here.
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.is_transient is not None:
            error["is_transient"] = self.is_transient
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
        return {"error": error}


def invalid_token(reason: str = "Cannot parse access token") -> GraphError:
    return GraphError(code=190, status=401, message=f"Invalid OAuth access token - {reason}")


def unknown_object(object_id: str, method: str) -> GraphError:
    """An id that does not exist, or that this token may not see (Graph says both at once)."""
    return GraphError(
        code=100,
        subcode=33,
        type="GraphMethodException",
        message=(
            f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation. Please read the Graph API documentation at "
            "https://developers.facebook.com/docs/graph-api"
        ),
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(code=2500, message=f"Unknown path components: {path}")


def invalid_parameter(details: str) -> GraphError:
    return GraphError(code=100, message="(#100) Invalid parameter", details=details)


def missing_parameter(name: str) -> GraphError:
    return GraphError(
        code=131008,
        message="(#131008) Required parameter is missing",
        details=f"The parameter {name} is required.",
    )


def parameter_value_invalid(details: str) -> GraphError:
    return GraphError(
        code=131009, message="(#131009) Parameter value is not valid", details=details
    )


def unsupported_message_type(details: str) -> GraphError:
    return GraphError(code=131051, message="(#131051) Unsupported message type", details=details)


def media_upload_error(details: str) -> GraphError:
    return GraphError(code=131053, message="(#131053) Media upload error", details=details)


def rate_limited() -> GraphError:
    return GraphError(
        code=130429,
        subcode=2494055,
        message="(#130429) Rate limit hit",
        details="Cloud API message throughput has been reached.",
        is_transient=True,
    )


def pair_rate_limited() -> GraphError:
    return GraphError(
        code=131056,
        message="(#131056) (Business Account, Consumer Account) pair rate limit hit",
        details=(
            "Too many messages sent from the sender phone number to the same recipient "
            "phone number in a short period of time."
        ),
        is_transient=True,
    )


def template_not_found(name: str, language: str) -> GraphError:
    return GraphError(
        code=132001,
        status=404,
        message="(#132001) Template name does not exist in the translation",
        details=f"template name ({name}) does not exist in {language}",
    )


def template_unusable(name: str, status: str) -> GraphError:
    """A template that exists but may not be sent: paused (132015), disabled (132016)."""
    if status == "PAUSED":
        return GraphError(
            code=132015,
            message="(#132015) Template is paused",
            details=f"Template {name} is paused due to low quality.",
        )
    return GraphError(
        code=132016,
        message="(#132016) Template is disabled",
        details=f"Template {name} has been paused too many times and is permanently disabled.",
    )


def template_param_mismatch(details: str) -> GraphError:
    return GraphError(
        code=132000,
        message="(#132000) Number of parameters does not match the expected number of params",
        details=details,
    )


def template_format_mismatch(details: str) -> GraphError:
    return GraphError(
        code=132012,
        message="(#132012) Parameter format does not match format in the created template",
        details=details,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class AsyncError:
    """One entry of `statuses[].errors[]` in a `failed` status webhook."""

    code: int
    title: str
    details: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": ERROR_HREF,
        }


_ASYNC: Final[Mapping[int, tuple[str, str]]] = MappingProxyType(
    {
        131000: ("Something went wrong", "Message failed to send due to an unknown error."),
        131026: (
            "Message undeliverable",
            "Unable to deliver message. Reasons can include: the recipient phone number is "
            "not a WhatsApp phone number; the recipient has not accepted the new Terms of "
            "Service; the recipient is using an old WhatsApp version.",
        ),
        131047: (
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number.",
        ),
        131049: (
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be "
            "delivered.",
        ),
        131050: (
            "Unable to deliver the message. This recipient has chosen to stop receiving "
            "marketing messages on WhatsApp from your business",
            "The user has stopped marketing messages from this business.",
        ),
        131053: ("Media upload error", "Unable to upload the media used in the message."),
        130472: (
            "User's number is part of an experiment",
            "Failed to send message because this user's phone number is part of an experiment.",
        ),
        131016: ("Service unavailable", "A service is temporarily unavailable."),
    }
)


def async_error(code: int, details: str | None = None) -> AsyncError:
    """The webhook error for `code`, with Meta's title; unknown codes get a generic one."""
    title, default = _ASYNC.get(code, ("Error", f"Message failed with error {code}."))
    return AsyncError(code=code, title=title, details=details or default)
