"""CommBox's WhatsApp API (seed 003), under `/commbox`.

- `POST /whatsapp/uploadmedia/{ENCRYPTED_STREAM_ID}`: a multipart `pic` → the file's
  name and its id (a wafile media id) in CommBox's envelope;
- `POST /v2/whatsapp/sendtemplatedmessage/{ENCRYPTED_STREAM_ID}`: 1 to 20 templated
  messages whose header carries the file (an uploaded id or a link), sent from the
  stream's WhatsApp sender.

A stream is one of the account's WhatsApp senders; its id is opaque and stable, derived
from the sender id with the server secret (`stream_id`), so nothing is stored for it
and `GET /v1/senders` can show it. Auth: `Authorization: Bearer <wafile API key>`.
Every answer, errors included, is CommBox's `{status, description, response_time,
data}` envelope with the page's status codes (400, 401, 404, 429, 500).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from wafile.api.context import AppContext
from wafile.api.deps import ContextDep, SessionDep
from wafile.api.dialects.base import DialectError, account_for_key, dialect_app
from wafile.core.accounts import Account
from wafile.core.senders import Sender
from wafile.core.signed_links import derive_key
from wafile.errors import MalformedUpload, NotFound, ValidationFailed
from wafile.media.ingest import multipart_boundary, too_large
from wafile.services.media import Upload, media
from wafile.services.messages import NewMessage, messages
from wafile.services.outbound import guard_for
from wafile.services.senders import senders

__all__ = ["NAME", "create_app", "stream_id"]

NAME = "commbox"
FILE_FIELD = "pic"
MAX_RECIPIENTS = 20  # per templated-message call, as CommBox documents
MULTIPART_OVERHEAD = 64 * 1024
STREAM_PURPOSE = "commbox-stream"
HEADER_MEDIA = ("document", "image", "video")
WHATSAPP_ONLY = ({"channel": "whatsapp"},)
# The page's fixed descriptions; a 400 and a 404 say what was wrong instead.
DESCRIPTIONS = {
    200: "Operation successful",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def stream_id(secret: str, sender_id: str) -> str:
    """The sender's CommBox stream id: opaque, stable while the server secret is."""
    key = derive_key(secret, STREAM_PURPOSE)
    return hmac.new(key, sender_id.encode(), hashlib.sha256).hexdigest()[:32]


async def _account(
    ctx: ContextDep, authorization: Annotated[str | None, Header()] = None
) -> Account:
    scheme, _, key = (authorization or "").partition(" ")
    return await account_for_key(ctx, key.strip() if scheme.lower() == "bearer" else None)


CommBoxAuth = Annotated[Account, Depends(_account)]
router = APIRouter()


async def _stream(session: AsyncSession, ctx: AppContext, account: Account, stream: str) -> Sender:
    """The account's sender behind a stream id (the account has a handful of senders)."""
    for sender in await senders.list_for(session, account=account):
        if hmac.compare_digest(stream_id(ctx.settings.secret_key, sender.id), stream):
            return sender
    raise NotFound(f"no stream {stream!r} in this account")


def _envelope(
    status: int, description: str, data: list[dict[str, Any]] | None, now: datetime
) -> dict[str, Any]:
    body: dict[str, Any] = {
        # The page's 200 and 400 examples give the status as a string, the others as
        # a number: each is kept as shown.
        "status": str(status) if status in (200, 400) else status,
        "description": description,
        "response_time": _time(now),
    }
    if data is not None:
        body["data"] = data
    return body


def _time(now: datetime) -> str:
    """As the page shows it: UTC, seven fractional digits, `Z`."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# Upload -----------------------------------------------------------------------


@router.post("/whatsapp/uploadmedia/{stream}")
async def upload_media(
    stream: str, request: Request, ctx: ContextDep, session: SessionDep, account: CommBoxAuth
) -> dict[str, Any]:
    s = ctx.settings
    await _stream(session, ctx, account, stream)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > s.max_upload_bytes + MULTIPART_OVERHEAD:
        raise too_large(s.max_upload_bytes)
    content_type = request.headers.get("content-type", "")
    boundary = multipart_boundary(content_type) if content_type else None
    if boundary is None:
        raise MalformedUpload(f"send the file as multipart/form-data with a `{FILE_FIELD}` part")
    ingest = media.new_ingest(max_bytes=s.max_upload_bytes)
    item = await media.upload(
        session,
        ctx.store,
        account=account,
        ingest=ingest,
        chunks=ingest.multipart(request.stream(), boundary=boundary, file_field=FILE_FIELD),
        upload=Upload(),
        now=ctx.clock.now(),
        retention=s.media_retention,
    )
    return _envelope(
        200, DESCRIPTIONS[200], [{"filename": item.filename, "id": item.id}], ctx.clock.now()
    )


# Templated messages -----------------------------------------------------------


class _Loose(BaseModel):
    # CommBox's object fields (ManagerId...) and Meta's extras are ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class MediaRef(_Loose):
    id: str | None = Field(default=None, max_length=200)
    link: str | None = Field(default=None, max_length=8192)
    filename: str | None = Field(default=None, max_length=1024)


class Parameter(_Loose):
    type: str
    text: str | None = None
    document: MediaRef | None = None
    image: MediaRef | None = None
    video: MediaRef | None = None


class Component(_Loose):
    type: str
    parameters: list[Parameter] = Field(default_factory=list, max_length=20)


class Language(_Loose):
    code: str = Field(default="en_US", max_length=16)


class Template(_Loose):
    name: str = Field(max_length=512)
    language: Language = Field(default_factory=Language)
    components: list[Component] = Field(default_factory=list, max_length=10)


class TemplateData(_Loose):
    to: str = Field(max_length=32)
    template: Template


class Recipient(_Loose):
    schedule: int | None = None
    template_data: TemplateData


class TemplatedIn(_Loose):
    data: list[Recipient] = Field(min_length=1, max_length=MAX_RECIPIENTS)


class _Refused(ValidationFailed):
    """A 400 about one recipient (CommBox names it in `data`)."""

    def __init__(self, recipient: str, detail: str) -> None:
        super().__init__(detail)
        self.recipient = recipient


@router.post("/v2/whatsapp/sendtemplatedmessage/{stream}")
async def send_templated(
    stream: str, body: TemplatedIn, ctx: ContextDep, session: SessionDep, account: CommBoxAuth
) -> dict[str, Any]:
    """All recipients in one transaction: one refused recipient refuses the call."""
    sender = await _stream(session, ctx, account, stream)
    now = ctx.clock.now()
    sent: list[dict[str, Any]] = []
    for item in body.data:
        to = item.template_data.to
        request = _new_message(item, sender)
        if request.media_url is not None:
            guard_for(ctx.settings).check_url(request.media_url, field="header link")
        try:
            view, _ = await messages.accept(
                session, account=account, request=request, idempotency_key=None, now=now
            )
        except ValidationFailed as exc:
            raise _Refused(to, exc.detail) from None
        sent.append({"recipient": to, "status": 200, "id": view.message.id})
    return _envelope(200, DESCRIPTIONS[200], sent, now)


def _new_message(item: Recipient, sender: Sender) -> NewMessage:
    data = item.template_data
    if item.schedule is not None:
        raise _Refused(data.to, "schedule: wafile sends at once; leave schedule out")
    template = data.template
    file: MediaRef | None = None
    for component in template.components:
        if component.type.lower() == "header":
            for p in component.parameters:
                if p.type in HEADER_MEDIA:
                    file = getattr(p, p.type)
    if file is None:
        raise _Refused(
            data.to,
            "template: wafile sends files: give a header component with a document, image "
            "or video parameter (the uploaded id or a link)",
        )
    if (file.id is None) == (file.link is None):
        raise _Refused(data.to, "template header: give exactly one of id and link")
    texts = [
        p.text or ""
        for c in template.components
        if c.type.lower() == "body"
        for p in c.parameters
        if p.type == "text"
    ]
    return NewMessage(
        origin=NAME,
        to=data.to if data.to.startswith("+") else "+" + data.to,
        media_id=file.id,
        media_url=file.link,
        filename=file.filename,
        sender=sender.name,
        channels=WHATSAPP_ONLY,
        template={"name": template.name, "language": template.language.code, "parameters": texts},
    )


# Errors -----------------------------------------------------------------------


def _render(request: Request, error: DialectError) -> Response:
    """The page's codes only: other client errors are 400, other server errors 500, and
    an unknown route or method is 404."""
    ctx: AppContext = request.app.state.ctx
    status = error.status
    if status in (404, 405):
        status = 404
    elif status >= 500:
        status = 500
    elif status not in (401, 429):
        status = 400
    data: list[dict[str, Any]] | None = None
    description = DESCRIPTIONS.get(status, error.message)
    if status == 400:
        recipient = getattr(error.error, "recipient", "")
        data = [{"recipient": recipient, "status": 400, "failed": error.message}]
    elif status == 404 and not isinstance(error.error, StarletteHTTPException):
        description = error.message  # an unknown stream or file, not an unknown route
    return JSONResponse(_envelope(status, description, data, ctx.clock.now()), status_code=status)


def create_app(ctx: AppContext) -> FastAPI:
    app = dialect_app(ctx, name=NAME, render=_render)
    app.include_router(router)
    return app
