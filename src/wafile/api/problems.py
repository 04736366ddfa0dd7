"""RFC 9457 problem+json for every 4xx/5xx of the native API.

A problem reads `{type, title, status, detail, instance, code, request_id}` plus any
extension members the error carries. `type` is `/problems/<code>`, a page this server
serves (see `routers/health.py`), so a client can look the code up.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wafile.errors import (
    ClientError,
    MethodNotAllowed,
    NotFound,
    ValidationFailed,
    WafileError,
    catalogue,
)
from wafile.logs import request_id_var

__all__ = [
    "PROBLEM_JSON",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
    "problem_responses",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring these statuses as problem documents."""
    # The most general error class of each status names it (404: "Not found").
    general: dict[int, type[WafileError]] = {}
    for cls in catalogue().values():
        if cls.status not in general or len(cls.__mro__) < len(general[cls.status].__mro__):
            general[cls.status] = cls
    titles = {status: cls.title() for status, cls in general.items()}
    return {
        status: {"description": titles.get(status, "Problem"), "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


def problem_body(error: WafileError, *, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{error.code}",
        "title": error.title(),
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        "code": error.code,
    }
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    for key, value in error.extra.items():
        body.setdefault(key, value)
    return body


def problem_response(error: WafileError, *, instance: str) -> JSONResponse:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="wafile"'
    if error.status == 416 and "size" in error.extra:
        headers["Content-Range"] = f"bytes */{error.extra['size']}"  # RFC 9110 §14.4
    return JSONResponse(
        problem_body(error, instance=instance),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _for_http_exception(exc: StarletteHTTPException, request: Request) -> WafileError:
    if exc.status_code == 404:
        return NotFound(f"nothing at {request.method} {request.url.path}")
    if exc.status_code == 405:
        return MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    # Any other framework-raised status keeps its number under a generic code.
    error = ClientError(str(exc.detail)) if exc.status_code < 500 else WafileError()
    error.status = exc.status_code  # type: ignore[misc]
    return error


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # `input` is left out on purpose: it may hold a secret the client sent.
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    async def on_wafile_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WafileError)
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.detail)
        return problem_response(exc, instance=request.url.path)

    async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        response = problem_response(_for_http_exception(exc, request), instance=request.url.path)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        where = ".".join(errors[0]["loc"]) if errors else ""
        msg = str(errors[0]["msg"]) if errors else "invalid request"
        detail = f"{where}: {msg}" if where else msg
        error = ValidationFailed(detail, errors=errors)
        return problem_response(error, instance=request.url.path)

    app.add_exception_handler(WafileError, on_wafile_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
