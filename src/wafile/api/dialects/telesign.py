"""Telesign's Messaging (omnichannel) API: `POST /v1/omnichannel` as Telesign's page
shows it, over wafile's messages (docs/dialects.md, "Telesign").

- Auth: `Authorization: Basic <customer_id>:<api_key>` (base64-encoded as HTTP Basic
  says, or in clear as the page shows it). The API key is a wafile API key; the
  customer id must be the account's id or name (Telesign refuses a key under another
  customer id, and so does wafile).
- `channels` (with `fallback_time`) is the message's channel plan; the WhatsApp
  template `file` is a send by URL (wafile fetches the file and re-hosts it); the SMS
  template `text` is the SMS step's text, sent as written.
- `reference_id` is the message id in hex (core.vendor_callbacks.telesign), so
  `GET /v1/omnichannel/{reference_id}` finds the message again.
- `callback_url` becomes the message's own callback URL in Telesign's format (checked
  as the native one; 3106 when refused); the account's `telesign` endpoints get the
  other Telesign messages.
- `phone_number`: in sandbox mode a number of the right length is enough (Telesign's
  own check), so the page's fictional example works; otherwise it must be in use.
- Every error is Telesign's envelope, `{"reference_id", "external_id", "status":
  {"code", "description", "updated_on"}}`, with Telesign's code for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import datetime
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from wafile.api.context import AppContext
from wafile.api.deps import ContextDep, SessionDep
from wafile.api.dialects.base import DialectError, account_for_key, dialect_app
from wafile.core.accounts import Account
from wafile.core.callbacks import message_document
from wafile.core.vendor_callbacks import telesign as shapes
from wafile.errors import (
    ClientError,
    MessageNotFound,
    SenderNotFound,
    Unauthorized,
    ValidationFailed,
)
from wafile.services.messages import NewMessage, messages
from wafile.services.outbound import check_callback_url, guard_for

__all__ = ["NAME", "TelesignRefusal", "create_app"]

NAME: Final = "telesign"
MAX_BODY: Final = 10 * 1024  # Telesign's payload limit (3116)
MESSAGE_TYPES: Final = frozenset({"ARN", "MKT", "OTP"})
CHANNELS: Final = frozenset({"whatsapp", "sms"})
MAX_EXTERNAL_ID: Final = 100
DEFAULT_FILE_NAME: Final = "file"  # the page: "if not provided, the default file name is"


class TelesignRefusal(Exception):
    """A request Telesign would refuse, with Telesign's status code for it. Not a
    `WafileError`: it exists only in this dialect's shape (its own handler renders it)."""

    def __init__(self, ts_code: int, description: str, *, http_status: int = 400) -> None:
        super().__init__(description)
        self.ts_code = ts_code
        self.http_status = http_status
        self.detail = description


def _envelope(code: int, description: str, now: datetime) -> dict[str, Any]:
    return {
        # Telesign numbers every transaction, refused ones too; this one names nothing.
        "reference_id": secrets.token_hex(16).upper(),
        "external_id": None,
        "status": {
            "code": code,
            "description": description,
            "updated_on": shapes.updated_on(now),
        },
    }


def render(request: Request, error: DialectError) -> Response:
    """Telesign's envelope and code for any failure (clients read `status.code`)."""
    exc = error.error
    if isinstance(exc, TelesignRefusal):
        status, code, text = exc.http_status, exc.ts_code, exc.detail
    elif error.status == 401:
        status, code, text = 401, 3400, "Not authorized"
    elif error.status in (404, 405):  # no such route or method
        status, code, text = error.status, 3110, f"Invalid request: {error.message}"
    elif error.status == 429:
        status, code, text = 429, 3204, "Rate limit exceeded"
    elif error.status >= 500:
        status, code, text = (503 if error.status == 503 else 500), 3500, "System Unavailable"
    else:
        status, code, text = 400, 3110, f"Invalid request: {error.message}"
    ctx: AppContext = request.app.state.ctx
    return JSONResponse(_envelope(code, text, ctx.clock.now()), status_code=status)


def _credentials(header: str | None) -> tuple[str, str]:
    """(customer id, API key) from `Authorization: Basic ...`."""
    if not header:
        raise TelesignRefusal(3405, "Missing required 'Authorization' header", http_status=401)
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "basic" or not value:
        raise TelesignRefusal(
            3412, "Required 'Authorization' header is not in the correct format", http_status=401
        )
    pair = value
    if ":" not in value:  # HTTP Basic: base64 of "customer_id:api_key"
        try:
            pair = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
    customer_id, colon, api_key = pair.partition(":")
    if not colon or not customer_id or not api_key:
        raise TelesignRefusal(
            3412, "Required 'Authorization' header is not in the correct format", http_status=401
        )
    return customer_id, api_key


async def _account(ctx: AppContext, request: Request) -> Account:
    customer_id, api_key = _credentials(request.headers.get("authorization"))
    try:
        account = await account_for_key(ctx, api_key)
    except Unauthorized:
        raise TelesignRefusal(3411, "Invalid API Key", http_status=401) from None
    if customer_id not in (account.id, account.name):
        raise TelesignRefusal(3410, "Invalid Customer ID", http_status=401)
    return account


def _object(value: Any, missing: tuple[int, str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TelesignRefusal(*missing)
    return value


def _text(value: Any, code: int, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TelesignRefusal(code, f"Invalid value for parameter {name}: {value!r}")
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise TelesignRefusal(3116, "Payload limit size exceeded")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TelesignRefusal(3110, "Invalid request: the body is not JSON") from None
    if not isinstance(doc, dict):
        raise TelesignRefusal(3110, "Invalid request: the body is not a JSON object")
    return doc


def _plan(doc: dict[str, Any]) -> list[dict[str, Any]]:
    channels = doc.get("channels")
    if channels is None:
        raise TelesignRefusal(3300, "Missing parameter channels")
    if not isinstance(channels, list) or not channels:
        raise TelesignRefusal(3113, f"Invalid value for parameter channel: {channels!r}")
    steps: list[dict[str, Any]] = []
    for item in channels:
        if not isinstance(item, dict) or "channel" not in item:
            raise TelesignRefusal(3301, "Missing parameter channel")
        name = item["channel"]
        if name not in CHANNELS:
            # Telesign tries the next channel; wafile has only these two, so say it now.
            raise TelesignRefusal(3100, f"Unknown channel specified: {name}")
        if any(s["channel"] == name for s in steps):
            raise TelesignRefusal(3113, f"Invalid value for parameter channel: {name} twice")
        step: dict[str, Any] = {"channel": name}
        wait = item.get("fallback_time")
        if wait is not None:
            if isinstance(wait, bool) or not isinstance(wait, int | float):
                raise TelesignRefusal(
                    3113, f"Invalid value for parameter channel: fallback_time {wait!r}"
                )
            step["fallback_time"] = float(wait)
        steps.append(step)
    return steps


def _request(doc: dict[str, Any], *, sandbox: bool) -> NewMessage:
    """The native send a Telesign request describes; TelesignRefusal if it is not one."""
    plan = _plan(doc)
    phone = doc.get("phone_number")
    if phone is None:
        raise TelesignRefusal(3302, "Missing parameter phone_number")
    if isinstance(phone, int) and not isinstance(phone, bool):
        phone = str(phone)
    phone = _text(phone, 3101, "phone_number")
    if not phone.strip().lstrip("+").isdigit():
        raise TelesignRefusal(3101, f"Invalid value for parameter phone_number: {phone}")
    message = doc.get("message")
    if message is None:
        raise TelesignRefusal(3303, "Missing parameter message")
    message = _object(message, (3110, "Invalid request: message must be an object"))
    kind = doc.get("message_type")
    if kind is None:
        raise TelesignRefusal(3304, "Missing parameter message_type")
    if kind not in MESSAGE_TYPES:
        raise TelesignRefusal(3102, f"Invalid value for parameter message_type: {kind}")
    external_id = doc.get("external_id")
    if external_id is not None and (
        not isinstance(external_id, str)
        or len(external_id) > MAX_EXTERNAL_ID
        or not external_id.isascii()
    ):
        raise TelesignRefusal(3103, "Unsupported value for parameter external_id")
    callback_url = doc.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise TelesignRefusal(3106, "Invalid value for parameter callback_url")
    # The file travels in the WhatsApp template, whatever the channels: wafile sends
    # files, and its SMS step carries a link to it when the text asks for one.
    whatsapp = _object(
        message.get("whatsapp"), (3306, "Missing message parameters for specified channel")
    )
    if whatsapp.get("template") != "file":
        raise TelesignRefusal(3112, "Specified template does not exist for selected channel")
    params = _object(whatsapp.get("parameters"), (3305, "Missing template specific parameters"))
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise TelesignRefusal(3305, "Missing template specific parameters")
    file_name = params.get("file_name")
    if file_name is not None and (not isinstance(file_name, str) or not file_name.strip()):
        raise TelesignRefusal(3305, "Invalid value for parameter file_name")
    for step in plan:
        if step["channel"] == "sms" and message.get("sms") is not None:
            step["text"] = _sms_text(message["sms"])
    return NewMessage(
        to=phone,
        media_url=url,
        filename=file_name or DEFAULT_FILE_NAME,
        reference=external_id,
        # This transaction's callbacks, in Telesign's shape and signature; it overrides
        # the account's Telesign endpoint for this message, as on Telesign.
        callback_url=callback_url,
        callback_format=shapes.FORMAT,
        channels=tuple(plan),
        origin=NAME,
        # Telesign checks a number's length, not whether it is assigned; the sandbox
        # does the same, so the page's fictional example reaches an emulated phone.
        unassigned_number_ok=sandbox,
    )


def _sms_text(sms: Any) -> str:
    sms = _object(sms, (3306, "Missing message parameters for specified channel"))
    if sms.get("template") != "text":
        raise TelesignRefusal(3112, "Specified template does not exist for selected channel")
    params = _object(sms.get("parameters"), (3305, "Missing template specific parameters"))
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise TelesignRefusal(3305, "Missing template specific parameters")
    # Sent as written: wafile's placeholders ({link}...) are not Telesign's.
    return text.replace("{", "{{").replace("}", "}}")


def _refusal(exc: ClientError, request: NewMessage) -> TelesignRefusal:
    """A native refusal of the send as Telesign's status."""
    detail = exc.detail
    if isinstance(exc, SenderNotFound):
        channel = "sms" if "SMS" in detail else "whatsapp"
        return TelesignRefusal(3200, f"{channel} channel is not enabled for customer")
    if detail.startswith("to:"):
        return TelesignRefusal(3101, f"Invalid value for parameter phone_number: {request.to}")
    if detail.startswith("channels"):
        return TelesignRefusal(3113, f"Invalid value for parameter channel: {detail}")
    return TelesignRefusal(3110, f"Invalid request: {detail}")


def create_app(ctx: AppContext) -> FastAPI:
    app = dialect_app(ctx, name=NAME, render=render)

    async def on_refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TelesignRefusal)
        refused = DialectError(
            status=exc.http_status, code="bad_request", message=exc.detail, error=exc
        )
        return render(request, refused)

    app.add_exception_handler(TelesignRefusal, on_refusal)

    @app.post("/v1/omnichannel")
    async def omnichannel(request: Request, ctx: ContextDep, session: SessionDep) -> JSONResponse:
        account = await _account(ctx, request)
        wanted = _request(await _body(request), sandbox=ctx.settings.sandbox)
        if wanted.callback_url is not None:  # refused now, not at the first callback
            try:
                check_callback_url(
                    wanted.callback_url,
                    allow_loopback_http=ctx.settings.callback_loopback_ok,
                    field="callback_url",
                )
            except ValidationFailed as exc:
                raise TelesignRefusal(
                    3106, f"Invalid value for parameter callback_url: {exc.detail}"
                ) from None
        try:
            assert wanted.media_url is not None
            guard_for(ctx.settings).check_url(wanted.media_url, field="url")
            view, _ = await messages.accept(
                session, account=account, request=wanted, idempotency_key=None, now=ctx.clock.now()
            )
        except (ValidationFailed, SenderNotFound) as exc:
            raise _refusal(exc, wanted) from None
        code, description = shapes.IN_PROGRESS
        return JSONResponse(
            {
                "status": {"code": code, "description": description},
                "reference_id": shapes.reference_id_for(view.message.id),
                "external_id": wanted.reference,
            }
        )

    @app.get("/v1/omnichannel/{reference_id}")
    async def status(
        reference_id: str, request: Request, ctx: ContextDep, session: SessionDep
    ) -> JSONResponse:
        """wafile's addition: the transaction's status, as its callbacks report it."""
        account = await _account(ctx, request)
        message_id = shapes.message_id_for(reference_id.upper())
        try:
            if message_id is None:
                raise MessageNotFound(reference_id)
            view = await messages.view(session, account=account, message_id=message_id)
        except MessageNotFound:
            raise TelesignRefusal(
                3110, f"Invalid request: no transaction {reference_id}", http_status=404
            ) from None
        doc = message_document(view.message, view.state, updated_at=view.message.updated_at)
        return JSONResponse(shapes.status_body(doc, updated_at=doc["updated_at"]))

    return app
