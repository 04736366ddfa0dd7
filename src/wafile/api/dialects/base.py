"""What every dialect shares: a FastAPI sub-app whose every error, including routing's
404/405 and request validation, is answered in the vendor's own error shape (never a
native problem+json, never FastAPI's default), and authentication that resolves the
vendor's credential to a wafile account through the native key lookup.

A dialect is a module with `NAME` and `create_app(ctx) -> FastAPI` built with
`dialect_app`. It translates shapes, auth, status codes and errors onto the services
and holds no business rule of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from wafile.api.context import AppContext
from wafile.core.accounts import Account
from wafile.db.engine import transaction
from wafile.errors import WafileError
from wafile.services.api_keys import api_keys

__all__ = ["DialectError", "ErrorRenderer", "account_for_key", "dialect_app"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class DialectError:
    """Any failure of a dialect request, before the vendor's shape is put on it."""

    status: int  # the native HTTP status (a renderer may map it to the vendor's)
    code: str  # the native error code (`wafile.errors`), e.g. "unauthorized"
    message: str
    error: Exception | None = None  # the original, for vendor-specific mapping


ErrorRenderer = Callable[[Request, DialectError], Response]


def dialect_app(ctx: AppContext, *, name: str, render: ErrorRenderer) -> FastAPI:
    """A sub-app for one dialect, mounted under `/<name>` (and maybe at the root)."""
    app = FastAPI(title=f"wafile: {name} dialect", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ctx = ctx  # the native dependencies (ContextDep, SessionDep) work here too

    async def on_wafile(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WafileError)
        return render(
            request,
            DialectError(status=exc.status, code=exc.code, message=exc.detail, error=exc),
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return render(
            request,
            DialectError(status=400, code="validation_error", message=_first_error(exc), error=exc),
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return render(
            request,
            DialectError(status=exc.status_code, code=code, message=str(exc.detail), error=exc),
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("%s dialect: unexpected error on %s", name, request.url.path)
        return render(
            request, DialectError(status=500, code="internal_error", message="internal error")
        )

    app.add_exception_handler(WafileError, on_wafile)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
    return app


async def account_for_key(ctx: AppContext, key: str | None) -> Account:
    """The account a vendor-style credential (a wafile API key) acts for; `Unauthorized`
    for a missing or bad one, exactly as on the native API."""
    async with transaction(ctx.sessions) as session:
        return await api_keys.authenticate(session, key or "", now=ctx.clock.now())


def _first_error(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
