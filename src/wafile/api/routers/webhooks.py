"""`/webhooks/whatsapp/{sender_id}`: Meta's handshake and deliveries (no API key: the
signature over the raw body, with the sender's app secret, is the authentication);
`/webhooks/sms/{sender_id}`: the SMS provider's status callbacks (X-Twilio-Signature)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from wafile.api.deps import ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.db.engine import autocommit
from wafile.errors import PayloadTooLarge
from wafile.services.sms_webhooks import sms_webhooks
from wafile.services.webhooks import webhooks

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
# Meta's payloads stay under 3 MB; anything far larger is not Meta.
MAX_BODY = 4 * 1024 * 1024


@router.get(
    "/whatsapp/{sender_id}",
    response_class=PlainTextResponse,
    responses=problem_responses(403, 404),
    summary="Meta's webhook verification handshake",
)
async def verify(
    sender_id: str,
    ctx: ContextDep,
    session: SessionDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=1024)] = None,
) -> PlainTextResponse:
    answer = await webhooks.handshake(
        session, ctx.sealer, sender_id=sender_id, mode=mode, token=token, challenge=challenge
    )
    return PlainTextResponse(answer)


@router.post(
    "/whatsapp/{sender_id}",
    status_code=200,
    responses=problem_responses(401, 404, 413),
    summary="Meta's webhook deliveries (statuses, inbound messages)",
)
async def receive(sender_id: str, request: Request, ctx: ContextDep) -> Response:
    body = await _body(request)
    # Checked with reads that need no transaction, then stored with the bodies other
    # requests receive meanwhile: one commit for all of them, before the 200.
    async with autocommit(ctx.sessions) as reads:
        signed = await webhooks.check(
            reads,
            ctx.sealer,
            sender_id=sender_id,
            body=body,
            signature=request.headers.get("x-hub-signature-256"),
        )
    await ctx.webhook_bodies.submit(ctx.sessions, signed)
    return Response(status_code=200)


@router.post(
    "/sms/{sender_id}",
    status_code=204,
    responses=problem_responses(401, 404, 413),
    summary="The SMS provider's status callbacks",
)
async def receive_sms(
    sender_id: str, request: Request, ctx: ContextDep, session: SessionDep
) -> Response:
    await sms_webhooks.receive(
        session,
        ctx.sealer,
        ctx.settings,
        sender_id=sender_id,
        body=await _body(request),
        signature=request.headers.get("x-twilio-signature"),
        now=ctx.clock.now(),
    )
    return Response(status_code=204)


async def _body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"a webhook body is at most {MAX_BODY} bytes", limit=MAX_BODY)
    return bytes(body)
