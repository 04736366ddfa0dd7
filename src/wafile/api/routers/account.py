"""`/v1/account`: who am I."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from wafile.api.deps import ApiKeyAuth, SessionDep
from wafile.api.problems import problem_responses
from wafile.api.routers.messages import ChannelIn
from wafile.core.accounts import Account
from wafile.services.messages import messages

router = APIRouter(prefix="/v1", tags=["account"])


class AccountOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    default_channels: list[dict[str, Any]] | None = Field(
        description="The plan of a send that gives no `channels`; null: WhatsApp only."
    )


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_channels: list[ChannelIn] | None = Field(
        min_length=1,
        max_length=2,
        description="The plan of a send that gives no `channels`, in the same shape; "
        "null: WhatsApp only.",
    )


def _out(account: Account) -> AccountOut:
    channels = account.default_channels
    return AccountOut(
        id=account.id,
        name=account.name,
        created_at=account.created_at,
        default_channels=list(channels) if channels is not None else None,
    )


@router.get(
    "/account",
    response_model=AccountOut,
    responses=problem_responses(401),
    summary="The account the API key acts for",
)
async def get_account(account: ApiKeyAuth) -> AccountOut:
    return _out(account)


@router.patch(
    "/account",
    response_model=AccountOut,
    responses=problem_responses(401, 404, 422),
    summary="Change the account's settings",
)
async def patch_account(body: AccountPatch, session: SessionDep, account: ApiKeyAuth) -> AccountOut:
    """`default_channels`: the plan of sends without `channels` (e.g. WhatsApp, then SMS
    after 600 s). Its senders must exist now; they are looked up again at each send."""
    channels = body.default_channels
    updated = await messages.set_default_plan(
        session,
        account=account,
        channels=(
            tuple(c.model_dump(exclude_none=True) for c in channels)
            if channels is not None
            else None
        ),
    )
    return _out(updated)
