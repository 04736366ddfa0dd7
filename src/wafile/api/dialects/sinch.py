"""Sinch's legacy WhatsApp API (`whatsapp/v1/{bot-id}/...`): media providers exactly as
Sinch's "Media provider" page shows them, over wafile's media providers, and the send
that uses them, over wafile's messages (docs/dialects.md, "Sinch").

- Auth: `Authorization: Bearer <wafile API key>`. The `bot-id` is the name of one of the
  account's WhatsApp senders (a Sinch bot is one WhatsApp number); a bot the key's
  account does not have is answered 401, as Sinch answers a bot outside the
  credentials' reach.
- Providers belong to the account, as on the native API: every bot of the account
  sees the same ones.
- `POST .../messages` sends to each recipient one native message by URL (wafile fetches
  the file with the named provider's credentials), WhatsApp only, from the bot. Its
  `callback` becomes each message's own callback URL in Sinch's format (checked as the
  native one), overriding the bot's (the account's `sinch` endpoints) for that send.
- Errors: `{"requestError": {"serviceException": {"messageId", "text"}}}` with the
  native error code as `messageId` (Sinch's introduction is not at hand; this is the
  shape its clients are reported to parse).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.api.context import AppContext
from wafile.api.deps import ContextDep, SessionDep
from wafile.api.dialects.base import DialectError, account_for_key, dialect_app
from wafile.core.accounts import Account
from wafile.core.providers import Auth, ProviderSecret
from wafile.core.vendor_callbacks import sinch as shapes
from wafile.errors import SenderNotFound, Unauthorized, ValidationFailed
from wafile.services.messages import NewMessage, messages
from wafile.services.outbound import check_callback_url, guard_for
from wafile.services.providers import PutProvider, providers, shown_config
from wafile.services.senders import senders

__all__ = ["NAME", "create_app"]

NAME: Final = "sinch"
MAX_RECIPIENTS: Final = 20
# What a Sinch media message may be; wafile sends files, so text and templates are not.
FILE_TYPES: Final = frozenset({"document", "image", "video", "audio", "sticker"})

BotId = Annotated[str, Path(max_length=64)]  # Sinch writes it `{bot-id}`


def render(request: Request, error: DialectError) -> Response:
    """Sinch's error object; 400 for every invalid request, as Sinch documents."""
    status = 400 if error.status == 422 else error.status
    body = {"requestError": {"serviceException": {"messageId": error.code, "text": error.message}}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _account(
    ctx: AppContext, session: AsyncSession, request: Request, bot_id: str
) -> Account:
    """The account of the Bearer key, if it has this bot (a WhatsApp sender's name)."""
    scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
    account = await account_for_key(ctx, key.strip())
    try:
        await senders.get(session, account=account, name=bot_id)
    except SenderNotFound:
        raise Unauthorized(f"no bot {bot_id!r} for these credentials") from None
    return account


class BasicIn(BaseModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class ConfigIn(BaseModel):
    # The page's JSON nests the credentials ({"basic": {...}} or {"bearer": "..."});
    # its table lists `username`, `password` flat in `config`: both are taken.
    basic: BasicIn | None = None
    bearer: str | None = None
    username: str | None = None
    password: str | None = None


class ProviderIn(BaseModel):
    name: str
    type: str
    config: ConfigIn


def _put(body: ProviderIn) -> PutProvider:
    config = body.config
    if config.basic is None and config.username is not None and config.password is not None:
        config = ConfigIn(basic=BasicIn(username=config.username, password=config.password))
    if (config.basic is None) == (config.bearer is None):
        raise ValidationFailed("config: give exactly one of basic {username, password} or bearer")
    if config.basic is not None:
        return PutProvider(
            name=body.name,
            type=body.type,
            auth=Auth.BASIC,
            username=config.basic.username,
            secret=ProviderSecret(value=config.basic.password),
        )
    assert config.bearer is not None
    return PutProvider(
        name=body.name,
        type=body.type,
        auth=Auth.BEARER,
        username=None,
        secret=ProviderSecret(value=config.bearer),
    )


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    url: str | None = Field(default=None, max_length=8192)
    caption: str | None = None
    filename: str | None = Field(default=None, max_length=1024)
    provider: str | None = Field(default=None, max_length=200)


class SendIn(BaseModel):
    to: list[Annotated[str, Field(max_length=32)]] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    message: MessageIn
    callback: str | None = None


def create_app(ctx: AppContext) -> FastAPI:
    app = dialect_app(ctx, name=NAME, render=render)

    @app.post("/whatsapp/v1/{bot_id}/provision/provider")
    async def put_provider(
        bot_id: BotId, body: ProviderIn, request: Request, ctx: ContextDep, session: SessionDep
    ) -> Response:
        """Add a provider, or replace the one of that name: 200, empty body."""
        account = await _account(ctx, session, request, bot_id)
        await providers.put(
            session, ctx.sealer, account_id=account.id, given=_put(body), now=ctx.clock.now()
        )
        return Response(status_code=200)

    @app.get("/whatsapp/v1/{bot_id}/provision/provider")
    async def list_providers(
        bot_id: BotId, request: Request, ctx: ContextDep, session: SessionDep
    ) -> JSONResponse:
        """The providers, as the page's sample shows them (secrets masked)."""
        account = await _account(ctx, session, request, bot_id)
        found = await providers.list_for(session, ctx.sealer, account_id=account.id)
        shown = [
            {"name": p.name, "type": p.type, "config": shown_config(p, secret)}
            for p, secret in found
        ]
        return JSONResponse({"settings": {"application": {"media": {"providers": shown}}}})

    @app.delete("/whatsapp/v1/{bot_id}/provision/provider/{provider_name}")
    async def delete_provider(
        bot_id: BotId,
        provider_name: Annotated[str, Path(max_length=200)],
        request: Request,
        ctx: ContextDep,
        session: SessionDep,
    ) -> Response:
        account = await _account(ctx, session, request, bot_id)
        await providers.remove(session, account_id=account.id, name=provider_name)
        return Response(status_code=200)

    @app.post("/whatsapp/v1/{bot_id}/messages")
    async def send(
        bot_id: BotId, body: SendIn, request: Request, ctx: ContextDep, session: SessionDep
    ) -> JSONResponse:
        """One WhatsApp message per recipient, all or none; 201 with each one's status."""
        account = await _account(ctx, session, request, bot_id)
        if body.callback is not None:  # refused now, not at the first report
            check_callback_url(
                body.callback,
                allow_loopback_http=ctx.settings.callback_loopback_ok,
                field="callback",
            )
        message = body.message
        if message.type not in FILE_TYPES:
            raise ValidationFailed(
                f"message.type: {message.type!r} is not sent here: wafile sends files "
                f"({', '.join(sorted(FILE_TYPES))})"
            )
        if not message.url:
            raise ValidationFailed("message.url: required (the file to send)")
        guard_for(ctx.settings).check_url(message.url, field="message.url")
        statuses: list[dict[str, Any]] = []
        for to in body.to:
            view, _ = await messages.accept(
                session,
                account=account,
                request=NewMessage(
                    to=to,
                    media_url=message.url,
                    provider=message.provider,
                    sender=bot_id,
                    filename=message.filename,
                    caption=message.caption,
                    # Sinch's reports of this send go here instead of the bot's
                    # (the account's `sinch` endpoints), as on Sinch.
                    callback_url=body.callback,
                    callback_format=shapes.FORMAT,
                    channels=({"channel": "whatsapp"},),
                    origin=NAME,
                ),
                idempotency_key=None,
                now=ctx.clock.now(),
            )
            statuses.append(
                {
                    "message_id": shapes.sinch_id(view.message.id),
                    "recipient": view.message.to,
                    "status": "success",
                    "state": "queued",
                }
            )
        return JSONResponse({"type": "whatsapp", "statuses": statuses}, status_code=201)

    return app
