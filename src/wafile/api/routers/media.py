"""`/v1/media`: upload, fetch from a URL, look up, list, download, delete; `/f/{id}`:
signed links."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from wafile.api.cursors import decode_cursor, page_of
from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.core.content_disposition import attachment
from wafile.core.media import Media
from wafile.core.ranges import Unsatisfiable, parse_range
from wafile.errors import RangeNotSatisfiable
from wafile.media.ingest import multipart_boundary, too_large
from wafile.services.media import Upload, media
from wafile.services.remote_media import MAX_URL_LENGTH, remote_media

router = APIRouter(prefix="/v1", tags=["media"])
# Form fields and boundaries around the file; the file itself is counted exactly.
MULTIPART_OVERHEAD = 64 * 1024
links = APIRouter(tags=["media"])


class WhatsAppRoute(BaseModel):
    sendable: bool
    sent_as: str | None
    reason: str


class MediaOut(BaseModel):
    id: str
    filename: str
    mime_type: str
    category: str
    sha256: str
    file_size: int
    created_at: datetime
    expires_at: datetime
    url: str
    url_expires_at: datetime
    whatsapp: WhatsAppRoute
    source_url: str | None = Field(
        default=None, description="The URL wafile fetched the file from; null for an upload."
    )


class FetchIn(BaseModel):
    url: str = Field(max_length=MAX_URL_LENGTH, description="http:// or https:// URL of the file.")
    provider: str | None = Field(
        default=None, description="A media provider's name: its credentials are sent."
    )
    filename: str | None = Field(
        default=None,
        max_length=1024,
        description="Display name; else the origin's Content-Disposition, else the URL's "
        "last path segment, else `file` with the type's extension.",
    )


class MediaPage(BaseModel):
    data: list[MediaOut]
    next_cursor: str | None


def _out(ctx: ContextDep, item: Media) -> MediaOut:
    s = ctx.settings
    url, expires = media.signed_url(
        item,
        secret=s.secret_key,
        base_url=s.effective_public_url,
        lifetime=s.link_lifetime_seconds,
        now=ctx.clock.now().timestamp(),
    )
    return MediaOut(
        id=item.id,
        filename=item.filename,
        mime_type=item.mime_type,
        category=item.category,
        sha256=item.sha256,
        file_size=item.file_size,
        created_at=item.created_at,
        expires_at=item.expires_at,
        url=url,
        url_expires_at=datetime.fromtimestamp(expires, tz=item.created_at.tzinfo),
        whatsapp=WhatsAppRoute(
            sendable=item.whatsapp_sendable,
            sent_as=item.whatsapp_sent_as,
            reason=item.whatsapp_reason,
        ),
        source_url=item.source_url,
    )


@router.post(
    "/media",
    status_code=201,
    response_model=MediaOut,
    summary="Upload a file (multipart `file` part, or the raw body)",
    responses=problem_responses(400, 401, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "type": {"type": "string", "description": "claimed MIME type"},
                            "filename": {"type": "string", "description": "display name"},
                        },
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def upload_media(
    request: Request, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> MediaOut:
    s = ctx.settings
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > s.max_upload_bytes + MULTIPART_OVERHEAD:
        # Refuse at once when the client says up front that it is too big.
        raise too_large(s.max_upload_bytes)
    content_type = request.headers.get("content-type", "")
    ingest = media.new_ingest(max_bytes=s.max_upload_bytes)
    boundary = multipart_boundary(content_type) if content_type else None
    if boundary is not None:
        chunks = ingest.multipart(request.stream(), boundary=boundary)
        upload = Upload()
    else:
        chunks = ingest.raw(
            request.stream(), content_disposition=request.headers.get("content-disposition")
        )
        upload = Upload(claimed_type=content_type or None)
    item = await media.upload(
        session,
        ctx.store,
        account=account,
        ingest=ingest,
        chunks=chunks,
        upload=upload,
        now=ctx.clock.now(),
        retention=s.media_retention,
    )
    return _out(ctx, item)


@router.post(
    "/media:fetch",
    status_code=201,
    response_model=MediaOut,
    summary="Fetch a file from a URL into the media store",
    responses=problem_responses(400, 401, 413, 415, 422, 502),
)
async def fetch_media(body: FetchIn, ctx: ContextDep, account: ApiKeyAuth) -> MediaOut:
    """wafile downloads the file itself (through the SSRF guard, with the provider's
    credentials if named), checks it like an upload and stores it."""
    # No request session: the service opens short transactions of its own, so no
    # database connection is held while the file streams in.
    item = await remote_media.fetch(
        ctx.sessions,
        ctx.store,
        ctx.settings,
        account_id=account.id,
        url=body.url,
        provider=body.provider,
        filename=body.filename,
        now=ctx.clock.now(),
        sealer=ctx.sealer,
    )
    return _out(ctx, item)


@router.get("/media/{media_id}", response_model=MediaOut, responses=problem_responses(401, 404))
async def get_media(
    media_id: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> MediaOut:
    """The media object: url, mime_type, sha256, file_size and how WhatsApp takes it."""
    return _out(ctx, await media.get(session, account=account, media_id=media_id))


@router.get("/media", response_model=MediaPage, responses=problem_responses(401, 422))
async def list_media(
    ctx: ContextDep,
    session: SessionDep,
    account: ApiKeyAuth,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> MediaPage:
    """The account's media, newest first."""
    before = decode_cursor(cursor) if cursor else None
    items = await media.list_page(session, account=account, limit=limit + 1, before=before)
    items, next_cursor = page_of(items, limit, lambda i: (i.created_at, i.id))
    return MediaPage(data=[_out(ctx, i) for i in items], next_cursor=next_cursor)


@router.delete("/media/{media_id}", status_code=204, responses=problem_responses(401, 404))
async def delete_media(
    media_id: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> Response:
    """Delete the media; its stored file goes when no other media shares the content."""
    await media.delete(session, ctx.store, account=account, media_id=media_id)
    return Response(status_code=204)


@router.get(
    "/media/{media_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **problem_responses(401, 404, 416),
    },
)
async def download_media(
    media_id: str, request: Request, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> Response:
    """The file itself; supports `Range` and `If-None-Match`."""
    item = await media.get(session, account=account, media_id=media_id)
    return await _stream(ctx, request, item)


@links.get(
    "/f/{media_id}",
    response_class=StreamingResponse,
    summary="Download through a signed link (no API key)",
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **problem_responses(403, 404, 416),
    },
)
async def download_by_link(
    media_id: str,
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    e: Annotated[int, Query(description="expiry, unix seconds")],
    s: Annotated[str, Query(description="signature", max_length=128)],
) -> Response:
    item = await media.by_link(
        session,
        media_id=media_id,
        expires=e,
        signature=s,
        secret=ctx.settings.secret_key,
        now=ctx.clock.now().timestamp(),
    )
    return await _stream(ctx, request, item)


async def _stream(ctx: ContextDep, request: Request, item: Media) -> Response:
    etag = f'"{item.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": attachment(item.filename),
        "Cache-Control": "private, max-age=0",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's partial copy is of another version
    try:
        byte_range = parse_range(range_header, item.file_size)
    except Unsatisfiable:
        raise RangeNotSatisfiable(
            f"the file has {item.file_size} bytes", size=item.file_size
        ) from None
    chunks = await media.open(ctx.store, item, byte_range)
    if byte_range is None:
        headers["Content-Length"] = str(item.file_size)
        return StreamingResponse(chunks, media_type=item.mime_type, headers=headers)
    headers["Content-Length"] = str(byte_range.length)
    headers["Content-Range"] = byte_range.content_range(item.file_size)
    return StreamingResponse(chunks, status_code=206, media_type=item.mime_type, headers=headers)
