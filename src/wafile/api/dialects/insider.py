"""Insider's transactional WhatsApp API (seed 000), under `/insider`.

- `POST /v1/media/upload`: a multipart form (`file`, `type`, `messaging_product`) →
  `{"id"}`, the wafile media id;
- `GET /v1/media/{id}` → `url` (a signed wafile link), `mime_type`, `sha256`,
  `file_size` and `File_size` (the page's spelling), `id`, `messaging_product`;
- `POST /v1/send`: a batch of Meta-format messages (a file by uploaded `id` or by
  `link`, or a template whose header carries the file) → one wafile message each,
  WhatsApp only; a `callback` URL becomes the account's Insider-format endpoint.

Auth: the wafile API key in `X-INS-AUTH-KEY`. Errors: Meta's Graph error object, which
Insider forwards in its own webhooks (`{"error": {"message", "type", "code"}}`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.multipart import parse_options_header
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from wafile.api.context import AppContext
from wafile.api.deps import ContextDep, SessionDep
from wafile.api.dialects.base import DialectError, account_for_key, dialect_app
from wafile.core.accounts import Account
from wafile.core.media import Media
from wafile.core.vendor_callbacks.insider import FORMAT, KEY_PREFIX
from wafile.errors import MalformedUpload, ValidationFailed
from wafile.media.ingest import multipart_boundary, too_large
from wafile.services.callbacks import callbacks
from wafile.services.media import Upload, media
from wafile.services.messages import NewMessage, messages
from wafile.services.outbound import guard_for

__all__ = ["NAME", "create_app"]

NAME = "insider"
MAX_BATCH = 100  # messages per send request (Insider names no limit; one transaction)
# Form fields and boundaries around the file (as the native upload allows).
MULTIPART_OVERHEAD = 64 * 1024
FILE_TYPES = ("document", "image", "video", "audio")
WHATSAPP_ONLY = ({"channel": "whatsapp"},)  # Insider sends on WhatsApp, never falls back


async def _account(
    ctx: ContextDep,
    key: Annotated[str | None, Header(alias="x-ins-auth-key")] = None,
) -> Account:
    return await account_for_key(ctx, key)


InsiderAuth = Annotated[Account, Depends(_account)]
router = APIRouter()


# Media ------------------------------------------------------------------------


@router.post("/v1/media/upload")
async def upload(
    request: Request, ctx: ContextDep, session: SessionDep, account: InsiderAuth
) -> dict[str, str]:
    s = ctx.settings
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > s.max_upload_bytes + MULTIPART_OVERHEAD:
        raise too_large(s.max_upload_bytes)
    ingest = media.new_ingest(max_bytes=s.max_upload_bytes)
    chunks = ingest.multipart(
        request.stream(), boundary=_boundary(request.headers.get("content-type", ""))
    )
    item = await media.upload(
        session,
        ctx.store,
        account=account,
        ingest=ingest,
        chunks=chunks,
        upload=Upload(),  # the form's `type` field is the claim, checked against the bytes
        now=ctx.clock.now(),
        retention=s.media_retention,
    )
    return {"id": item.id}


def _boundary(content_type: str) -> bytes:
    """The form's boundary. The page's curl sends `Content-Type: application/json` with
    `--form`; curl then keeps that type and appends `; boundary=...`, so any type with a
    boundary is taken as a form."""
    found = multipart_boundary(content_type) if content_type else None
    if found is not None:
        return found
    _, params = parse_options_header(content_type)
    boundary: bytes | None = params.get(b"boundary")
    if not boundary:
        raise MalformedUpload("send the file as a multipart form (curl --form 'file=@...')")
    return boundary


@router.get("/v1/media/{media_id}")
async def get_media(
    media_id: str, ctx: ContextDep, session: SessionDep, account: InsiderAuth
) -> dict[str, Any]:
    item = await media.get(session, account=account, media_id=media_id)
    return _media_out(ctx, item)


def _media_out(ctx: AppContext, item: Media) -> dict[str, Any]:
    s = ctx.settings
    url, _ = media.signed_url(
        item,
        secret=s.secret_key,
        base_url=s.effective_public_url,
        lifetime=s.link_lifetime_seconds,
        now=ctx.clock.now().timestamp(),
    )
    return {
        "url": url,
        "mime_type": item.mime_type,
        "sha256": item.sha256,
        "file_size": item.file_size,
        "File_size": item.file_size,  # the page's own spelling; clients may read either
        "id": item.id,
        "messaging_product": "whatsapp",
    }


# Send -------------------------------------------------------------------------


class _Loose(BaseModel):
    # Meta's message objects carry more than wafile reads (messaging_product,
    # recipient_type, policy...): ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class MediaObject(_Loose):
    id: str | None = Field(default=None, max_length=200)
    link: str | None = Field(default=None, max_length=8192)
    caption: str | None = None
    filename: str | None = Field(default=None, max_length=1024)


class Language(_Loose):
    code: str = Field(default="en_US", max_length=16)


class Parameter(_Loose):
    type: str
    text: str | None = None
    document: MediaObject | None = None
    image: MediaObject | None = None
    video: MediaObject | None = None


class Component(_Loose):
    type: str
    parameters: list[Parameter] = Field(default_factory=list, max_length=20)


class Template(_Loose):
    name: str = Field(max_length=512)
    language: Language = Field(default_factory=Language)
    components: list[Component] = Field(default_factory=list, max_length=10)


class Context(_Loose):
    message_id: str = Field(max_length=200)


class Message(_Loose):
    type: str
    document: MediaObject | None = None
    image: MediaObject | None = None
    video: MediaObject | None = None
    audio: MediaObject | None = None
    template: Template | None = None
    context: Context | None = None


class Item(_Loose):
    phoneNumber: str = Field(max_length=32)  # Insider's field name
    message: Message
    callback: str | None = Field(default=None, max_length=2048)


class SendIn(_Loose):
    messages: list[Item] = Field(min_length=1, max_length=MAX_BATCH)


class Queued(BaseModel):
    phoneNumber: str
    key: str
    status: Literal["queued"] = "queued"


class SendOut(BaseModel):
    messages: list[Queued]


@router.post("/v1/send")
async def send(body: SendIn, ctx: ContextDep, session: SessionDep, account: InsiderAuth) -> SendOut:
    """The whole batch in one transaction: one refused message refuses the batch, so a
    retried batch never sends the others twice."""
    now = ctx.clock.now()
    queued: list[Queued] = []
    for i, item in enumerate(body.messages):
        request = _new_message(item, f"messages[{i}]")
        if request.media_url is not None:
            guard_for(ctx.settings).check_url(request.media_url, field=f"messages[{i}].link")
        view, _ = await messages.accept(
            session, account=account, request=request, idempotency_key=None, now=now
        )
        queued.append(Queued(phoneNumber=item.phoneNumber, key=KEY_PREFIX + view.message.id))
    callback = next((i.callback for i in reversed(body.messages) if i.callback), None)
    if callback is not None:
        await _use_callback(session, ctx, account, callback)
    return SendOut(messages=queued)


def _new_message(item: Item, where: str) -> NewMessage:
    message = item.message
    reply_to = message.context.message_id if message.context else None
    if message.type in FILE_TYPES:
        file = getattr(message, message.type)
        if file is None:
            raise ValidationFailed(f"{where}.message.{message.type}: missing")
        return NewMessage(
            origin=NAME,
            to=item.phoneNumber,
            channels=WHATSAPP_ONLY,
            media_id=file.id,
            media_url=_link_of(file, f"{where}.message.{message.type}"),
            filename=file.filename,
            caption=file.caption,
            reply_to=reply_to,
        )
    if message.type == "template" and message.template is not None:
        template = message.template
        header = next((c for c in template.components if c.type.lower() == "header"), None)
        file = _header_file(header)
        if file is None:
            raise ValidationFailed(
                f"{where}.message.template: wafile sends files: give a header component "
                "with a document, image or video parameter"
            )
        texts = [
            p.text or ""
            for c in template.components
            if c.type.lower() == "body"
            for p in c.parameters
            if p.type == "text"
        ]
        return NewMessage(
            origin=NAME,
            to=item.phoneNumber,
            channels=WHATSAPP_ONLY,
            media_id=file.id,
            media_url=_link_of(file, f"{where}.message.template header"),
            filename=file.filename,
            template={
                "name": template.name,
                "language": template.language.code,
                "parameters": texts,
            },
            reply_to=reply_to,
        )
    raise ValidationFailed(
        f"{where}.message.type: wafile sends files: document, image, video, audio, or a "
        f"template with a media header (got {message.type!r})"
    )


def _header_file(header: Component | None) -> MediaObject | None:
    if header is None:
        return None
    for p in header.parameters:
        found = p.document or p.image or p.video
        if found is not None:
            return found
    return None


def _link_of(file: MediaObject, where: str) -> str | None:
    """The link, when there is no uploaded `id` (it stands in for `link`): one of them."""
    if (file.id is None) == (file.link is None):
        raise ValidationFailed(f"{where}: give exactly one of id and link")
    return file.link


async def _use_callback(session: AsyncSession, ctx: AppContext, account: Account, url: str) -> None:
    """The account's Insider-format endpoint goes to `url` (created on first use)."""
    loopback = ctx.settings.callback_loopback_ok
    now = ctx.clock.now()
    for endpoint in await callbacks.list_endpoints(session, account=account):
        if endpoint.format == FORMAT:
            if endpoint.url != url:
                await callbacks.update_endpoint(
                    session,
                    account=account,
                    endpoint_id=endpoint.id,
                    url=url,
                    allow_loopback_http=loopback,
                    now=now,
                )
            return
    await callbacks.create_endpoint(
        session,
        ctx.sealer,
        account=account,
        url=url,
        events=None,
        description="Insider callback (set by POST /insider/v1/send)",
        enabled=True,
        allow_loopback_http=loopback,
        now=now,
        format=FORMAT,
    )


# Errors -----------------------------------------------------------------------


def _render(request: Request, error: DialectError) -> Response:
    """Meta's Graph error object (Insider's webhooks carry it as is): `code` is the HTTP
    status, `type` wafile's error code; an invalid request is 400, as at Meta."""
    status = 400 if error.status == 422 else error.status
    return JSONResponse(
        {"error": {"message": error.message, "type": error.code, "code": status}},
        status_code=status,
    )


def create_app(ctx: AppContext) -> FastAPI:
    app = dialect_app(ctx, name=NAME, render=_render)
    app.include_router(router)
    return app
