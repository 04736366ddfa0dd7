"""`/v1/sms-senders`: the account's SMS senders on a Twilio-compatible Messages API.
The auth token goes in, never out."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.core.senders import (
    DEFAULT_SMS_MPS,
    DEFAULT_TWILIO_URL,
    MAX_MPS,
    SmsSender,
    TwilioSender,
)
from wafile.services.senders import senders
from wafile.services.sms_webhooks import sms_status_url

router = APIRouter(prefix="/v1", tags=["senders"])


class SmsSenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        description="Unique in the account (across WhatsApp and SMS senders); letters, "
        "digits, `.`, `-`, `_`."
    )
    account_sid: str = Field(description="The provider account's SID (AC + 32 hex digits).")
    auth_token: str = Field(description="Its auth token: authenticates sends, checks callbacks.")
    from_number: str | None = Field(
        default=None, description="The number, short code or sender id to send from."
    )
    messaging_service_sid: str | None = Field(
        default=None, description="A Messaging Service (MG…) instead of from_number."
    )
    base_url: str = Field(default=DEFAULT_TWILIO_URL, description="The Messages API's root.")
    mps: int = Field(default=DEFAULT_SMS_MPS, ge=1, le=MAX_MPS, description="Messages per second.")
    default: bool = Field(default=False, description="Use it when a plan's SMS step names none.")


class SmsSenderOut(BaseModel):
    id: str
    name: str
    channel: str
    account_sid: str
    from_number: str | None
    messaging_service_sid: str | None
    base_url: str
    mps: int
    default: bool
    status_callback_url: str = Field(description="Where wafile asks the provider to report.")
    created_at: datetime


class SmsSenderList(BaseModel):
    data: list[SmsSenderOut]


def _out(ctx: ContextDep, sender: SmsSender) -> SmsSenderOut:
    t = sender.sms
    return SmsSenderOut(
        id=sender.id,
        name=sender.name,
        channel=str(sender.channel),
        account_sid=t.account_sid,
        from_number=t.from_number,
        messaging_service_sid=t.messaging_service_sid,
        base_url=t.base_url,
        mps=t.mps,
        default=sender.is_default,
        status_callback_url=sms_status_url(ctx.settings, sender.id),
        created_at=sender.created_at,
    )


@router.post(
    "/sms-senders",
    status_code=201,
    response_model=SmsSenderOut,
    responses=problem_responses(401, 409, 422),
)
async def add_sms_sender(
    body: SmsSenderIn, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SmsSenderOut:
    """Add an SMS sender. Its auth token is stored encrypted and never shown."""
    sender = await senders.add_sms(
        session,
        ctx.sealer,
        account=account,
        name=body.name,
        config=TwilioSender(
            account_sid=body.account_sid,
            from_number=body.from_number,
            messaging_service_sid=body.messaging_service_sid,
            base_url=body.base_url.rstrip("/"),
            mps=body.mps,
        ),
        auth_token=body.auth_token,
        is_default=body.default,
        now=ctx.clock.now(),
    )
    return _out(ctx, sender)


@router.get("/sms-senders", response_model=SmsSenderList, responses=problem_responses(401))
async def list_sms_senders(
    ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SmsSenderList:
    found = await senders.sms_list_for(session, account=account)
    return SmsSenderList(data=[_out(ctx, s) for s in found])


@router.get(
    "/sms-senders/{name}", response_model=SmsSenderOut, responses=problem_responses(401, 404)
)
async def get_sms_sender(
    name: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SmsSenderOut:
    return _out(ctx, await senders.sms_get(session, account=account, name=name))


@router.delete("/sms-senders/{name}", status_code=204, responses=problem_responses(401, 404))
async def remove_sms_sender(name: str, session: SessionDep, account: ApiKeyAuth) -> Response:
    await senders.sms_remove(session, account=account, name=name)
    return Response(status_code=204)
