"""What both emulators' control APIs share: the error shape, JSON bodies, and the
guard every route goes through (the optional control token, errors as JSON, never
a bare 500)."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["Handler", "control_error", "guard", "json_body"]

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]


def control_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


async def json_body(request: Request, invalid: type[Exception]) -> Any:
    """The request's JSON (`{}` when empty); `invalid` is raised for anything else."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid(f"body: not valid JSON ({exc})") from None


def guard(
    control_token: Callable[[], str | None],
    *,
    bad_input: type[Exception],
    not_found: type[Exception],
) -> Callable[[Handler], Handler]:
    """Wrap a route: Bearer `control_token()` when there is one; `bad_input` → 400,
    `not_found` → 404, anything else → 500 with a message (logged)."""

    def guarded(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            token = control_token()
            if token is not None:
                scheme, _, given = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("utf-8", "replace"), token.encode()
                ):
                    return control_error(401, "the control API needs Bearer <control_token>")
            try:
                return await handler(request)
            except bad_input as exc:
                return control_error(400, str(exc))
            except not_found as exc:
                return control_error(404, str(exc.args[0]) if exc.args else "not found")
            except Exception:  # never a bare 500 page: say what broke
                log.exception("control request failed")
                return control_error(500, "the emulator failed on this request; see its log")

        return wrapped

    return guarded
