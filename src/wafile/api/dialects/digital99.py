"""99digital's WhatsApp API v2 (seed 002), under `/99digital`.

- `POST /whatsapp/v2/sendFile`: a file by link, only inside the 24-hour window;
- `POST /whatsapp/v2/sendTemplate`: a template whose header carries the file, for sends
  outside it;
- `POST /whatsapp/v2/getTimers`: the minutes left in the window;
- `POST /whatsapp/v2/setWebhook` / `getWebhook`: the account's 99digital-format webhook
  endpoint (core.vendor_callbacks.digital99): it always gets the clients' incoming
  messages (`"hook": "new"`), and `readStatus` turns the sent, delivered and read
  hooks on (its events filter).

Every call is JSON via POST with `apiKey` (a wafile API key) in the body, and `from`,
the business number as digits, picks the account's WhatsApp sender. Answers carry
`status` "OK" or "FAIL" and a numeric `reason` (`Reason`); a FAIL is HTTP 200 like an
OK, as 99digital's clients read `status`, not the HTTP code.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from enum import IntEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from wafile.api.context import AppContext
from wafile.api.deps import ContextDep, SessionDep
from wafile.api.dialects.base import DialectError, account_for_key, dialect_app
from wafile.core.accounts import Account
from wafile.core.callbacks import INBOUND_RECEIVED, Endpoint, filter_matches
from wafile.core.phones import InvalidNumber, to_e164
from wafile.core.senders import Sender
from wafile.core.vendor_callbacks.digital99 import FORMAT
from wafile.errors import OutboundRefused, SenderNotFound, ValidationFailed
from wafile.services.callbacks import callbacks
from wafile.services.messages import NewMessage, messages
from wafile.services.outbound import guard_for
from wafile.services.senders import senders
from wafile.services.webhooks import webhooks

__all__ = ["NAME", "Reason", "create_app"]

NAME = "99digital"
WHATSAPP_ONLY = ({"channel": "whatsapp"},)
# The page's table of formats sendFile takes, by the link's extension.
FORMATS = frozenset(
    {
        "png", "jpg", "gif", "jpeg",
        "mp4", "avi", "3gpp",
        "mp3", "ogg", "amr", "aac",
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "ppts", "zip", "txt", "rar",
    }
)  # fmt: skip
HEADER_TYPES = {3: "image", 4: "video", 5: "document"}  # 1: no header
BODY_VARIABLES = 10
MAX_PHONE_ALERTS = 5  # setWebhook's systemPhoneAlert: up to 5 numbers
# A 99digital webhook always gets incoming messages; with readStatus 1 also the status
# hooks (build skips the other events these filters let through).
NEW_ONLY = (INBOUND_RECEIVED,)
NEW_AND_STATUSES = (INBOUND_RECEIVED, "attempt.*")


class Reason(IntEnum):
    """`reason` values: 1 to 4 are 99digital's own (getTimers/getWebhook pages); the
    send pages document no others, so wafile numbers its FAILs from 5 on."""

    OK = 1
    FROM_UNKNOWN = 2  # your "from" number account does not exist
    WRONG_API_KEY = 3
    BAD_NUMBER = 4  # 'number' (or 'to') empty or wrong format
    WINDOW_CLOSED = 5  # 24 h since the client's last message: use sendTemplate
    BAD_LINK = 6  # body / headerLink missing, not http(s), or refused
    FORMAT_NOT_ALLOWED = 7  # not a format in the page's table
    GROUP = 8  # groups are not supported, private chats only
    INVALID = 9  # any other invalid field
    SERVER_ERROR = 10


class Fail(ValidationFailed):
    """A FAIL with its reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


router = APIRouter(prefix="/whatsapp/v2")


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    apiKey: str = Field(max_length=512)  # 99digital's field names, camelCase
    from_: str = Field(alias="from", max_length=32)


class SendFileIn(_Base):
    to: str = Field(max_length=64)
    body: str = Field(max_length=8192)
    caption: str | None = None
    replyTo: str | None = Field(default=None, max_length=200)
    showRequest: Annotated[int, Field(ge=0, le=1)] = 0
    localStorage: Annotated[int, Field(ge=0, le=1)] = 0  # accepted: wafile always re-hosts


class SendTemplateIn(_Base):
    model_config = ConfigDict(extra="allow", populate_by_name=True)  # bodyVariable1..10
    to: str = Field(max_length=64)
    name: str = Field(max_length=512)
    headerType: int
    headerLink: str | None = Field(default=None, max_length=8192)
    showRequest: Annotated[int, Field(ge=0, le=1)] = 0


class GetTimersIn(_Base):
    number: str = Field(max_length=64)


class GetWebhookIn(_Base):
    pass


class SetWebhookIn(_Base):
    url: str = Field(max_length=2048)  # " " (blank) clears it
    system: Annotated[int, Field(ge=0, le=1)] = 0
    systemPhoneAlert: str | None = Field(default=None, max_length=200)
    readStatus: Annotated[int, Field(ge=0, le=1)] = 0
    retry: Annotated[int, Field(ge=0, le=1)] = 0


async def _sender_of(session: AsyncSession, ctx: AppContext, body: _Base) -> tuple[Account, Sender]:
    account = await account_for_key(ctx, body.apiKey)
    wanted = body.from_.lstrip("+")
    for sender in await senders.list_for(session, account=account):
        if sender.whatsapp.display_phone_number.lstrip("+") == wanted:
            return account, sender
    raise Fail(
        Reason.FROM_UNKNOWN, f"from: {body.from_!r} is not a WhatsApp number of this account"
    )


def _number(field: str, value: str) -> str:
    if "-" in value or "@" in value:  # a group id (e.g. 972501234567-1600000000@g.us)
        raise Fail(Reason.GROUP, f"{field}: files go to private chats only, not groups")
    try:
        return to_e164(value)
    except InvalidNumber as exc:
        raise Fail(Reason.BAD_NUMBER, f"{field}: {exc}") from None


def _link(ctx: AppContext, field: str, url: str, *, formats: frozenset[str] | None) -> None:
    try:
        guard_for(ctx.settings).check_url(url, field=field)
    except OutboundRefused as exc:
        raise Fail(Reason.BAD_LINK, exc.detail) from None
    if formats is not None:
        ext = posixpath.splitext(urlsplit(url).path)[1].lstrip(".").lower()
        if ext and ext not in formats:
            raise Fail(
                Reason.FORMAT_NOT_ALLOWED,
                f"{field}: .{ext} files cannot be sent (allowed: {', '.join(sorted(formats))})",
            )


def _echo(body: BaseModel) -> dict[str, Any]:
    """The request as sent, without its apiKey (`showRequest: 1`)."""
    return body.model_dump(by_alias=True, exclude={"apiKey"}, exclude_unset=True)


async def _accept(
    session: AsyncSession, account: Account, request: NewMessage, now: datetime
) -> str:
    try:
        view, _ = await messages.accept(
            session, account=account, request=request, idempotency_key=None, now=now
        )
    except Fail:
        raise
    except ValidationFailed as exc:
        raise Fail(Reason.INVALID, exc.detail) from None
    return view.message.id


@router.post("/sendFile")
async def send_file(body: SendFileIn, ctx: ContextDep, session: SessionDep) -> dict[str, Any]:
    account, sender = await _sender_of(session, ctx, body)
    to = _number("to", body.to)
    _link(ctx, "body", body.body, formats=FORMATS)
    now = ctx.clock.now()
    window = await webhooks.window(session, sender=sender, to=to, now=now)
    if not window.open:
        # The page: sendFile only within 24 h of the client's last message; the
        # sender's default template is not used here (that is sendTemplate).
        raise Fail(
            Reason.WINDOW_CLOSED,
            "the client has not written in the last 24 hours: use sendTemplate",
        )
    unique = await _accept(
        session,
        account,
        NewMessage(
            origin=NAME,
            to=to,
            media_url=body.body,
            caption=body.caption,
            reply_to=body.replyTo,
            sender=sender.name,
            channels=WHATSAPP_ONLY,
        ),
        now,
    )
    out: dict[str, Any] = {
        "status": "OK",
        "unique": unique,
        "body": body.body,
        "caption": body.caption,
        "timestamp": int(now.timestamp()),
        "from": body.from_,
        "to": body.to,
        "templateTimeLeft": str(window.minutes_left),
        "conversationTimeLeft": 0,  # deprecated: always 0, as the page says
        "reason": int(Reason.OK),
    }
    if body.showRequest:
        out["originalRequest"] = _echo(body)
    return out


@router.post("/sendTemplate")
async def send_template(
    body: SendTemplateIn, ctx: ContextDep, session: SessionDep
) -> dict[str, Any]:
    account, sender = await _sender_of(session, ctx, body)
    to = _number("to", body.to)
    kind = HEADER_TYPES.get(body.headerType)
    if kind is None:
        raise Fail(
            Reason.INVALID,
            "headerType: wafile sends files: 3 (image), 4 (video) or 5 (document)",
        )
    if not body.headerLink:
        raise Fail(Reason.BAD_LINK, "headerLink: the file's link is required with a header")
    _link(ctx, "headerLink", body.headerLink, formats=None)
    extra = body.model_extra or {}
    variables = [extra.get(f"bodyVariable{i}") for i in range(1, BODY_VARIABLES + 1)]
    while variables and variables[-1] is None:
        variables.pop()
    if any(v is None for v in variables):
        raise Fail(Reason.INVALID, "bodyVariable1..10: give every variable up to the last")
    now = ctx.clock.now()
    unique = await _accept(
        session,
        account,
        NewMessage(
            origin=NAME,
            to=to,
            media_url=body.headerLink,
            sender=sender.name,
            channels=WHATSAPP_ONLY,
            template={"name": body.name, "language": "en_US", "parameters": variables},
        ),
        now,
    )
    window = await webhooks.window(session, sender=sender, to=to, now=now)
    out: dict[str, Any] = {
        "status": "OK",
        "unique": unique,
        "body": body.headerLink,
        "timestamp": int(now.timestamp()),
        "from": body.from_,
        "to": body.to,
        "templateTimeLeft": str(window.minutes_left),
        "conversationTimeLeft": 0,
        "reason": int(Reason.OK),
    }
    if body.showRequest:
        out["originalRequest"] = _echo(body)
    return out


@router.post("/getTimers")
async def get_timers(body: GetTimersIn, ctx: ContextDep, session: SessionDep) -> dict[str, Any]:
    _, sender = await _sender_of(session, ctx, body)
    number = _number("number", body.number)
    window = await webhooks.window(session, sender=sender, to=number, now=ctx.clock.now())
    return {
        "status": "OK",
        "number": body.number,
        "templateTimeLeft": str(window.minutes_left),
        "conversationTimeLeft": 0,  # deprecated: always 0, as 99digital says
        "reason": int(Reason.OK),
    }


# Webhook ----------------------------------------------------------------------


async def _webhook(session: AsyncSession, account: Account) -> Endpoint | None:
    found = await callbacks.list_endpoints(session, account=account)
    return next((e for e in found if e.format == FORMAT), None)


def _webhook_out(endpoint: Endpoint | None) -> dict[str, Any]:
    """getWebhook's answer. wafile has no system notifications (`system` 0) and always
    retries a failed delivery (`retry` 1); `readStatus` is whether the endpoint is on
    and its filter takes the status hooks (see docs/dialects.md)."""
    statuses = (
        endpoint is not None
        and endpoint.enabled
        and filter_matches(endpoint.events, "attempt.read")
    )
    return {
        "status": "OK",
        "url": endpoint.url if endpoint else "",
        "system": 0,
        "systemPhoneAlert": "",
        "retry": 1,
        "readStatus": int(statuses),
        "reason": int(Reason.OK),
    }


@router.post("/setWebhook")
async def set_webhook(body: SetWebhookIn, ctx: ContextDep, session: SessionDep) -> dict[str, Any]:
    account, _ = await _sender_of(session, ctx, body)
    alerts = [n for n in (body.systemPhoneAlert or "").split(",") if n.strip()]
    if len(alerts) > MAX_PHONE_ALERTS:
        raise Fail(Reason.INVALID, f"systemPhoneAlert: at most {MAX_PHONE_ALERTS} numbers")
    for number in alerts:
        _number("systemPhoneAlert", number.strip())
    url = body.url.strip()
    endpoint = await _webhook(session, account)
    loopback, now = ctx.settings.callback_loopback_ok, ctx.clock.now()
    events = NEW_AND_STATUSES if body.readStatus else NEW_ONLY
    try:
        if not url:
            if endpoint is not None:
                await callbacks.delete_endpoint(session, account=account, endpoint_id=endpoint.id)
            return _webhook_out(None)
        if endpoint is None:
            endpoint, _ = await callbacks.create_endpoint(
                session,
                ctx.sealer,
                account=account,
                url=url,
                events=events,
                description="99digital webhook (set by POST /99digital/whatsapp/v2/setWebhook)",
                enabled=True,
                allow_loopback_http=loopback,
                now=now,
                format=FORMAT,
            )
        else:
            endpoint = await callbacks.update_endpoint(
                session,
                account=account,
                endpoint_id=endpoint.id,
                url=url,
                events=events,
                enabled=True,
                allow_loopback_http=loopback,
                now=now,
            )
    except ValidationFailed as exc:
        raise Fail(Reason.BAD_LINK, exc.detail) from None
    return _webhook_out(endpoint)


@router.post("/getWebhook")
async def get_webhook(body: GetWebhookIn, ctx: ContextDep, session: SessionDep) -> dict[str, Any]:
    account, _ = await _sender_of(session, ctx, body)
    return _webhook_out(await _webhook(session, account))


# Errors -----------------------------------------------------------------------

_FIELD_REASONS = {
    "apiKey": Reason.WRONG_API_KEY,
    "from": Reason.FROM_UNKNOWN,
    "to": Reason.BAD_NUMBER,
    "number": Reason.BAD_NUMBER,
    "body": Reason.BAD_LINK,
    "headerLink": Reason.BAD_LINK,
    "url": Reason.BAD_LINK,
}


def _reason(error: DialectError) -> Reason:
    exc = error.error
    if isinstance(exc, Fail):
        return exc.reason
    if error.code == "unauthorized":
        return Reason.WRONG_API_KEY
    if isinstance(exc, SenderNotFound):
        return Reason.FROM_UNKNOWN
    if isinstance(exc, RequestValidationError):
        for problem in exc.errors():
            loc = [str(p) for p in problem.get("loc", ())]
            if loc[:1] == ["body"]:  # where in the request; the field follows
                loc = loc[1:]
            if loc and loc[0] in _FIELD_REASONS:
                return _FIELD_REASONS[loc[0]]
    if error.status >= 500:
        return Reason.SERVER_ERROR
    return Reason.INVALID


def _render(request: Request, error: DialectError) -> Response:
    """`{"status": "FAIL", "reason", "message"}`: HTTP 200 for a FAIL of a call (its
    clients read `status`), the real status for an unknown route or a server error."""
    http = 200
    if isinstance(error.error, StarletteHTTPException) or error.status >= 500:
        http = error.status
    return JSONResponse(
        {"status": "FAIL", "reason": int(_reason(error)), "message": error.message},
        status_code=http,
    )


def create_app(ctx: AppContext) -> FastAPI:
    app = dialect_app(ctx, name=NAME, render=_render)
    app.include_router(router)
    return app
