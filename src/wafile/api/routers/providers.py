"""`/v1/providers`: media providers (Sinch's model), named Basic or Bearer credentials
for fetching the account's remote files. Secrets go in, and come out only masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, model_validator

from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.core.providers import MAX_ALLOWED, PROVIDER_NAME_MAX, Auth, Provider, ProviderSecret
from wafile.services.providers import PutProvider, providers, shown_config

router = APIRouter(prefix="/v1", tags=["providers"])


class BasicIn(BaseModel):
    username: str
    password: str


class ConfigIn(BaseModel):
    basic: BasicIn | None = None
    bearer: str | None = Field(default=None, description="The Bearer token.")

    @model_validator(mode="after")
    def _one_kind(self) -> ConfigIn:
        if (self.basic is None) == (self.bearer is None):
            raise ValueError("give exactly one of `basic` {username, password} or `bearer`")
        return self


class ProviderIn(BaseModel):
    name: str = Field(
        max_length=PROVIDER_NAME_MAX,
        description="Letters A-Z and a-z, `-` and `_`; reusing a name replaces the provider.",
    )
    type: Literal["www"] = "www"
    config: ConfigIn
    allowed: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALLOWED,
        description="Where the credential may be sent: host names (`files.example.com`, "
        "`*.example.com`) or URL prefixes (`https://files.example.com/exports/`). When "
        "given, fetches with this provider to any other URL are refused.",
    )


class ProviderOut(BaseModel):
    name: str
    type: str
    config: dict[str, Any] = Field(description="As given, the password or token masked.")
    allowed: list[str]
    created_at: datetime
    updated_at: datetime


class ProviderList(BaseModel):
    data: list[ProviderOut]


def _out(provider: Provider, secret: ProviderSecret) -> ProviderOut:
    return ProviderOut(
        name=provider.name,
        type=provider.type,
        config=shown_config(provider, secret),
        allowed=list(provider.allowed),
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


@router.post(
    "/providers",
    status_code=201,
    response_model=ProviderOut,
    responses={
        200: {"description": "Replaced", "model": ProviderOut},
        **problem_responses(401, 422),
    },
)
async def put_provider(
    body: ProviderIn,
    ctx: ContextDep,
    session: SessionDep,
    account: ApiKeyAuth,
    response: Response,
) -> ProviderOut:
    """Add a media provider (201), or replace the one of the same name (200)."""
    if body.config.basic is not None:
        auth, username, secret = Auth.BASIC, body.config.basic.username, body.config.basic.password
    else:
        auth, username, secret = Auth.BEARER, None, body.config.bearer or ""
    provider, created = await providers.put(
        session,
        ctx.sealer,
        account_id=account.id,
        given=PutProvider(
            name=body.name,
            type=body.type,
            auth=auth,
            username=username,
            secret=ProviderSecret(value=secret),
            allowed=tuple(body.allowed),
        ),
        now=ctx.clock.now(),
    )
    if not created:
        response.status_code = 200
    return _out(provider, ProviderSecret(value=secret))


@router.get("/providers", response_model=ProviderList, responses=problem_responses(401))
async def list_providers(ctx: ContextDep, session: SessionDep, account: ApiKeyAuth) -> ProviderList:
    """The account's media providers by name, secrets masked."""
    found = await providers.list_for(session, ctx.sealer, account_id=account.id)
    return ProviderList(data=[_out(p, s) for p, s in found])


@router.get("/providers/{name}", response_model=ProviderOut, responses=problem_responses(401, 404))
async def get_provider(
    name: str, ctx: ContextDep, session: SessionDep, account: ApiKeyAuth
) -> ProviderOut:
    return _out(*await providers.get(session, ctx.sealer, account_id=account.id, name=name))


@router.delete("/providers/{name}", status_code=204, responses=problem_responses(401, 404))
async def remove_provider(name: str, session: SessionDep, account: ApiKeyAuth) -> Response:
    await providers.remove(session, account_id=account.id, name=name)
    return Response(status_code=204)
