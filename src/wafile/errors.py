"""The one error tree of wafile.

Every error that wafile raises on purpose is a `WafileError`. Each class has a stable
machine `code` and the HTTP `status` it maps to; its docstring is its title (the
default human message). Services raise these; each API family renders them once in its
own envelope (the native API as RFC 9457 problem+json). Nothing below raises
`HTTPException`.

    WafileError                      500 internal_error
    ├── ConfigError                  500 config_error        (start-up only)
    ├── ServiceUnavailable           503 service_unavailable
    │   └── RemoteUnavailable        502 remote_unavailable  (retry later)
    └── ClientError                  400 bad_request
        ├── EmptyFile                400 empty_file
        ├── MalformedUpload          400 malformed_upload
        ├── Unauthorized             401 unauthorized
        ├── Forbidden                403 forbidden
        │   └── LinkInvalid          403 link_invalid
        ├── NotFound                 404 not_found
        │   ├── AccountNotFound      404 account_not_found
        │   ├── ApiKeyNotFound       404 api_key_not_found
        │   ├── MediaNotFound        404 media_not_found
        │   ├── MessageNotFound      404 message_not_found
        │   ├── ProviderNotFound     404 provider_not_found
        │   └── SenderNotFound       404 sender_not_found
        ├── MethodNotAllowed         405 method_not_allowed
        ├── Conflict                 409 conflict
        │   ├── AccountExists        409 account_exists
        │   └── SenderExists         409 sender_exists
        ├── PayloadTooLarge          413 payload_too_large
        ├── UnsupportedMediaType     415 unsupported_media_type
        ├── RangeNotSatisfiable      416 range_not_satisfiable
        └── ValidationFailed         422 validation_error
            ├── MediaTypeMismatch    422 media_type_mismatch
            ├── OutboundRefused      422 outbound_refused
            └── RemoteRejected       422 remote_rejected
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "ApiKeyNotFound",
    "ClientError",
    "ConfigError",
    "Conflict",
    "EmptyFile",
    "Forbidden",
    "LinkInvalid",
    "MalformedUpload",
    "MediaNotFound",
    "MediaTypeMismatch",
    "MessageNotFound",
    "MethodNotAllowed",
    "NotFound",
    "OutboundRefused",
    "PayloadTooLarge",
    "ProviderNotFound",
    "RangeNotSatisfiable",
    "RemoteRejected",
    "RemoteUnavailable",
    "SenderExists",
    "SenderNotFound",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "WafileError",
    "catalogue",
]


class WafileError(Exception):
    """Internal server error."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title()
        # Extension members for the problem document (e.g. `errors`, `limit`).
        self.extra = extra
        super().__init__(self.detail)

    @classmethod
    def title(cls) -> str:
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")


class ConfigError(WafileError):
    """Invalid configuration."""

    code = "config_error"


class ServiceUnavailable(WafileError):
    """Service unavailable."""

    code = "service_unavailable"
    status = 503


class ClientError(WafileError):
    """Bad request."""

    code = "bad_request"
    status = 400


class Unauthorized(ClientError):
    """Missing, invalid or revoked API key."""

    code = "unauthorized"
    status = 401


class Forbidden(ClientError):
    """Not allowed."""

    code = "forbidden"
    status = 403


class NotFound(ClientError):
    """Not found."""

    code = "not_found"
    status = 404


class AccountNotFound(NotFound):
    """Account not found."""

    code = "account_not_found"


class ApiKeyNotFound(NotFound):
    """API key not found."""

    code = "api_key_not_found"


class MethodNotAllowed(ClientError):
    """Method not allowed."""

    code = "method_not_allowed"
    status = 405


class Conflict(ClientError):
    """Conflict with the current state."""

    code = "conflict"
    status = 409


class AccountExists(Conflict):
    """An account with this name already exists."""

    code = "account_exists"


class SenderExists(Conflict):
    """The account already has a sender with this name."""

    code = "sender_exists"


class ValidationFailed(ClientError):
    """The request is not valid."""

    code = "validation_error"
    status = 422


class EmptyFile(ClientError):
    """The file is empty."""

    code = "empty_file"


class MalformedUpload(ClientError):
    """The upload body is truncated or malformed."""

    code = "malformed_upload"


class LinkInvalid(Forbidden):
    """The download link has expired or was altered."""

    code = "link_invalid"


class SenderNotFound(NotFound):
    """No such sender in this account."""

    code = "sender_not_found"


class MessageNotFound(NotFound):
    """No such message in this account."""

    code = "message_not_found"


class MediaNotFound(NotFound):
    """Media not found."""

    code = "media_not_found"


class PayloadTooLarge(ClientError):
    """The file is larger than this server accepts."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ClientError):
    """wafile does not carry files of this type."""

    code = "unsupported_media_type"
    status = 415


class RangeNotSatisfiable(ClientError):
    """The requested range is not within the file."""

    code = "range_not_satisfiable"
    status = 416


class MediaTypeMismatch(ValidationFailed):
    """The claimed type contradicts the file's content."""

    code = "media_type_mismatch"


class ProviderNotFound(NotFound):
    """No such media provider in this account."""

    code = "provider_not_found"


class OutboundRefused(ValidationFailed):
    """wafile does not connect to this URL."""

    code = "outbound_refused"


class RemoteRejected(ValidationFailed):
    """The server holding the file refused to give it."""

    code = "remote_rejected"


class RemoteUnavailable(ServiceUnavailable):
    """The server holding the file did not answer in time or failed."""

    code = "remote_unavailable"
    status = 502


def catalogue() -> dict[str, type[WafileError]]:
    """Every error class by code, for the `/problems/{code}` pages and the docs."""
    found: dict[str, type[WafileError]] = {}
    stack: list[type[WafileError]] = [WafileError]
    while stack:
        cls = stack.pop()
        # A dialect may subclass an error to carry its vendor's details; it keeps the
        # code of the class it refines, which stays the one in the catalogue.
        if cls.__module__ == __name__:
            found[cls.code] = cls
        stack.extend(cls.__subclasses__())
    return found
