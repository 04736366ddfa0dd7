"""Typed dependencies: `ContextDep`, `SessionDep`, `ApiKeyAuth`.

`SessionDep` is the request's one transaction: committed when the handler returns,
before the response is sent, and rolled back on any error (the edge owns the
transaction; services never commit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.api.context import AppContext
from wafile.core.accounts import Account
from wafile.db.engine import autocommit, transaction
from wafile.errors import Unauthorized
from wafile.services.api_keys import api_keys

__all__ = ["ApiKeyAuth", "ContextDep", "SessionDep", "presented_key"]


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop on every request (seen in a profile).
async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(ctx: ContextDep) -> AsyncIterator[AsyncSession]:
    async with transaction(ctx.sessions) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer wfk_...`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: wfk_...`"
)


async def presented_key(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_api_key_header)],
) -> str:
    """The key from `Authorization: Bearer` or `X-API-Key` (dialects add their own)."""
    if bearer is not None and bearer.credentials:
        return bearer.credentials
    if header_key:
        return header_key
    raise Unauthorized("send your API key as `Authorization: Bearer <key>` or `X-API-Key`")


async def authenticated_account(
    ctx: ContextDep, key: Annotated[str, Depends(presented_key)]
) -> Account:
    # A short session of its own: the handler's session connects only when the
    # handler first needs it, so an upload never holds the connection (SQLite has
    # one) while its bytes stream in. One read (and now and then a write of
    # last_used_at) needs no transaction around it.
    async with autocommit(ctx.sessions) as session:
        return await api_keys.authenticate(session, key, now=ctx.clock.now())


ApiKeyAuth = Annotated[Account, Depends(authenticated_account)]
