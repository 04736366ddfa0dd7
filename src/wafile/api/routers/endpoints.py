"""`/v1/webhooks`: where wafile sends the account's callbacks, and what became of them.

Outbound: the business's receivers. (Inbound provider webhooks are `routers/webhooks.py`.)
A signing secret is shown once, when it is made; no GET ever returns one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from wafile.api.cursors import decode_cursor, page_of
from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.core.callbacks import Delivery, DeliveryAttempt, Endpoint
from wafile.services.callbacks import callbacks

router = APIRouter(prefix="/v1", tags=["webhooks"])

EVENTS_HELP = (
    "Event types to receive: `*` (all, the default), `message.*`, `attempt.*`, `inbound.*`, "
    "or types such as `message.delivered`, `message.failed`, `attempt.timed_out`, "
    "`inbound.received` (a message a user sent to one of the account's senders)."
)


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, description="https:// (http only to loopback in sandbox).")
    events: list[str] | None = Field(default=None, max_length=50, description=EVENTS_HELP)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    format: str = Field(
        default="standard",
        max_length=32,
        description="What it receives and how it is signed: `standard` (wafile's events, "
        "Standard Webhooks) or a vendor dialect's callback shape (docs/dialects.md).",
    )


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = Field(default=None, max_length=50, description=EVENTS_HELP)
    description: str | None = Field(default=None, max_length=500, description="'' clears it.")
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    format: str
    failing: bool = Field(description="Deliveries have kept failing (see docs/api.md).")
    failing_since: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None = Field(description="Why the last attempt failed; null: it worked.")
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="`whsec_...`: verifies signatures. Shown only now.")


class EndpointList(BaseModel):
    data: list[EndpointOut]


class SecretOut(BaseModel):
    secret: str = Field(description="`whsec_...`: shown only now.")


class AttemptOut(BaseModel):
    number: int
    manual: bool
    requested_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int
    response: str | None = Field(description="The first 500 characters of the answer.")


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str | None = Field(description="null: the message's callback_url.")
    message_id: str | None = Field(description="The message of the event; null: inbound.")
    inbound_id: str | None = Field(
        description="The inbound message of an `inbound.received` event (`GET /v1/inbound`)."
    )
    url: str
    event_id: str
    event_type: str
    sequence: int = Field(description="The message's event number; 0 for inbound events.")
    status: Literal["pending", "delivered", "failed"]
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    attempts: list[AttemptOut]
    event: dict[str, Any] = Field(description="The body that is sent (signed as it is).")


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


def _endpoint(e: Endpoint) -> EndpointOut:
    return EndpointOut(
        id=e.id,
        url=e.url,
        events=list(e.events),
        description=e.description,
        enabled=e.enabled,
        format=e.format,
        failing=e.failing,
        failing_since=e.failing_since,
        last_attempt_at=e.last_attempt_at,
        last_status_code=e.last_status_code,
        last_error=e.last_error,
        created_at=e.created_at,
        updated_at=e.updated_at,
    )


def _delivery(d: Delivery, attempts: list[DeliveryAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        endpoint_id=d.endpoint_id,
        message_id=d.message_id,
        inbound_id=d.inbound_id,
        url=d.url,
        event_id=d.event_id,
        event_type=d.event_type,
        sequence=d.sequence,
        status=d.status.value,
        created_at=d.created_at,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
        delivered_at=d.delivered_at,
        attempts=[
            AttemptOut(
                number=a.number,
                manual=a.manual,
                requested_at=a.requested_at,
                status_code=a.status_code,
                error=a.error,
                latency_ms=a.latency_ms,
                response=a.response,
            )
            for a in attempts
        ],
        event=json.loads(d.body),
    )


@router.post(
    "/webhooks",
    status_code=201,
    response_model=EndpointCreated,
    responses=problem_responses(401, 422),
)
async def add_endpoint(
    body: EndpointIn, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> EndpointCreated:
    """Add a receiver of the account's callbacks; its signing secret is shown only now."""
    endpoint, secret = await callbacks.create_endpoint(
        session,
        ctx.sealer,
        account=account,
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
        allow_loopback_http=ctx.settings.callback_loopback_ok,
        now=ctx.clock.now(),
        format=body.format,
    )
    return EndpointCreated(**_endpoint(endpoint).model_dump(), secret=secret)


@router.get("/webhooks", response_model=EndpointList, responses=problem_responses(401))
async def list_endpoints(session: SessionDep, account: ApiKeyAuth) -> EndpointList:
    """The account's endpoints, oldest first, each with its health."""
    found = await callbacks.list_endpoints(session, account=account)
    return EndpointList(data=[_endpoint(e) for e in found])


async def _page(
    session: SessionDep,
    account: ApiKeyAuth,
    *,
    endpoint_id: str | None,
    message_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    before = decode_cursor(cursor) if cursor else None
    found = await callbacks.deliveries(
        session,
        account=account,
        limit=limit + 1,
        before=before,
        endpoint_id=endpoint_id,
        message_id=message_id,
        status=status,
    )
    found, next_cursor = page_of(found, limit, lambda f: (f[0].created_at, f[0].id))
    return DeliveryPage(data=[_delivery(d, a) for d, a in found], next_cursor=next_cursor)


Status = Annotated[Literal["pending", "delivered", "failed"] | None, Query()]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


@router.get(
    "/webhooks/deliveries", response_model=DeliveryPage, responses=problem_responses(401, 422)
)
async def list_deliveries(
    session: SessionDep,
    account: ApiKeyAuth,
    message_id: Annotated[str | None, Query(description="Only this message's")] = None,
    status: Status = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """Every delivery of the account (endpoints and callback_url), newest first."""
    return await _page(
        session,
        account,
        endpoint_id=None,
        message_id=message_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/webhooks/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryOut,
    responses=problem_responses(401, 404),
)
async def retry_delivery(
    delivery_id: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> DeliveryOut:
    """Send this delivery's event once more, now (one attempt; see its log for the result)."""
    found = await callbacks.redeliver(
        session, account=account, delivery_id=delivery_id, now=ctx.clock.now()
    )
    return _delivery(found, [])


@router.get(
    "/webhooks/{endpoint_id}", response_model=EndpointOut, responses=problem_responses(401, 404)
)
async def get_endpoint(endpoint_id: str, session: SessionDep, account: ApiKeyAuth) -> EndpointOut:
    return _endpoint(
        await callbacks.get_endpoint(session, account=account, endpoint_id=endpoint_id)
    )


@router.patch(
    "/webhooks/{endpoint_id}",
    response_model=EndpointOut,
    responses=problem_responses(401, 404, 422),
)
async def update_endpoint(
    endpoint_id: str, body: EndpointPatch, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> EndpointOut:
    """Change the URL, the event filter, the description, or enable/disable it."""
    updated = await callbacks.update_endpoint(
        session,
        account=account,
        endpoint_id=endpoint_id,
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
        allow_loopback_http=ctx.settings.callback_loopback_ok,
        now=ctx.clock.now(),
    )
    return _endpoint(updated)


@router.delete("/webhooks/{endpoint_id}", status_code=204, responses=problem_responses(401, 404))
async def delete_endpoint(endpoint_id: str, session: SessionDep, account: ApiKeyAuth) -> Response:
    """Remove the endpoint and its delivery log; its pending deliveries stop."""
    await callbacks.delete_endpoint(session, account=account, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    response_model=SecretOut,
    responses=problem_responses(401, 404),
)
async def rotate_endpoint_secret(
    endpoint_id: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SecretOut:
    """A new signing secret, shown only now; every request from now on is signed with it."""
    secret = await callbacks.rotate_endpoint_secret(
        session, ctx.sealer, account=account, endpoint_id=endpoint_id, now=ctx.clock.now()
    )
    return SecretOut(secret=secret)


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses=problem_responses(401, 404, 422),
)
async def endpoint_deliveries(
    endpoint_id: str,
    session: SessionDep,
    account: ApiKeyAuth,
    status: Status = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """The endpoint's delivery log, newest first: every attempt with its answer."""
    return await _page(
        session,
        account,
        endpoint_id=endpoint_id,
        message_id=None,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/account/callback-secret",
    status_code=201,
    response_model=SecretOut,
    responses=problem_responses(401),
)
async def rotate_callback_secret(
    ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> SecretOut:
    """A new secret for the signatures of `callback_url` deliveries, shown only now."""
    secret = await callbacks.rotate_callback_secret(
        session, ctx.sealer, account=account, now=ctx.clock.now()
    )
    return SecretOut(secret=secret)
