"""`/v1/senders`: the account's WhatsApp business numbers. Credentials go in, never out."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.dialects.commbox import stream_id
from wafile.api.problems import problem_responses
from wafile.core.senders import (
    DEFAULT_GRAPH_URL,
    DEFAULT_GRAPH_VERSION,
    DEFAULT_MPS,
    MAX_MPS,
    DefaultTemplate,
    Sender,
    WhatsAppSender,
)
from wafile.services.senders import senders

router = APIRouter(prefix="/v1", tags=["senders"])


class DefaultTemplateIn(BaseModel):
    category: str = Field(description="document, image or video")
    name: str
    language: str = "en_US"


class SenderIn(BaseModel):
    name: str = Field(description="Unique in the account; letters, digits, `.`, `-`, `_`.")
    phone_number_id: str = Field(description="Meta's id of the business phone number.")
    waba_id: str = Field(description="The WhatsApp Business Account id.")
    display_phone_number: str = Field(description="The number as people see it.")
    access_token: str = Field(description="A system-user token with whatsapp_business_messaging.")
    app_secret: str = Field(description="The Meta app's secret: checks webhook signatures.")
    verify_token: str | None = Field(
        default=None, description="For Meta's webhook handshake; generated when omitted."
    )
    graph_url: str = DEFAULT_GRAPH_URL
    graph_version: str = DEFAULT_GRAPH_VERSION
    mps: int = Field(default=DEFAULT_MPS, ge=1, le=MAX_MPS, description="Messages per second.")
    default: bool = Field(default=False, description="Use it when a send names no sender.")
    default_templates: list[DefaultTemplateIn] = Field(
        default_factory=list,
        description="Approved templates that carry a file as header, per category, used "
        "when the 24-hour window is closed and a send names no template.",
    )


class SenderOut(BaseModel):
    id: str
    name: str
    channel: str
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    graph_url: str
    graph_version: str
    mps: int
    default: bool
    default_templates: list[DefaultTemplateIn]
    webhook_url: str = Field(description="Configure this as the app's webhook at Meta.")
    commbox_stream_id: str = Field(
        description="This sender as a CommBox stream: the `ENCRYPTED_STREAM_ID` of the "
        "`/commbox` dialect's paths."
    )
    created_at: datetime


class SenderCreated(SenderOut):
    verify_token: str | None = Field(
        default=None, description="Only when wafile generated it, and only now."
    )


class SenderList(BaseModel):
    data: list[SenderOut]


def _out(ctx: ContextDep, sender: Sender) -> SenderOut:
    w = sender.whatsapp
    return SenderOut(
        id=sender.id,
        name=sender.name,
        channel=str(sender.channel),
        phone_number_id=w.phone_number_id,
        waba_id=w.waba_id,
        display_phone_number=w.display_phone_number,
        graph_url=w.graph_url,
        graph_version=w.graph_version,
        mps=w.mps,
        default=sender.is_default,
        default_templates=[
            DefaultTemplateIn(category=t.category, name=t.name, language=t.language)
            for t in w.default_templates
        ],
        webhook_url=f"{ctx.settings.effective_public_url}/webhooks/whatsapp/{sender.id}",
        commbox_stream_id=stream_id(ctx.settings.secret_key, sender.id),
        created_at=sender.created_at,
    )


@router.post(
    "/senders",
    status_code=201,
    response_model=SenderCreated,
    responses=problem_responses(401, 409, 422),
)
async def add_sender(
    body: SenderIn, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SenderCreated:
    """Add a WhatsApp business number. Its credentials are stored encrypted and never shown."""
    created = await senders.add(
        session,
        ctx.sealer,
        account=account,
        name=body.name,
        config=WhatsAppSender(
            phone_number_id=body.phone_number_id,
            waba_id=body.waba_id,
            display_phone_number=body.display_phone_number,
            graph_url=body.graph_url.rstrip("/"),
            graph_version=body.graph_version,
            mps=body.mps,
            default_templates=tuple(
                DefaultTemplate(category=t.category, name=t.name, language=t.language)
                for t in body.default_templates
            ),
        ),
        access_token=body.access_token,
        app_secret=body.app_secret,
        verify_token=body.verify_token,
        is_default=body.default,
        now=ctx.clock.now(),
    )
    return SenderCreated(
        **_out(ctx, created.sender).model_dump(), verify_token=created.generated_verify_token
    )


@router.get("/senders", response_model=SenderList, responses=problem_responses(401))
async def list_senders(ctx: ContextDep, session: SessionDep, account: ApiKeyAuth) -> SenderList:
    return SenderList(data=[_out(ctx, s) for s in await senders.list_for(session, account=account)])


@router.get("/senders/{name}", response_model=SenderOut, responses=problem_responses(401, 404))
async def get_sender(
    name: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SenderOut:
    return _out(ctx, await senders.get(session, account=account, name=name))


@router.delete("/senders/{name}", status_code=204, responses=problem_responses(401, 404))
async def remove_sender(name: str, session: SessionDep, account: ApiKeyAuth) -> Response:
    await senders.remove(session, account=account, name=name)
    return Response(status_code=204)
