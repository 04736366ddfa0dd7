"""`/v1/account`: who am I."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from wafile.api.deps import ApiKeyAuth
from wafile.api.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["account"])


class AccountOut(BaseModel):
    id: str
    name: str
    created_at: datetime


@router.get(
    "/account",
    response_model=AccountOut,
    responses=problem_responses(401),
    summary="The account the API key acts for",
)
async def get_account(account: ApiKeyAuth) -> AccountOut:
    return AccountOut(id=account.id, name=account.name, created_at=account.created_at)
