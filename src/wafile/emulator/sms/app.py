"""The SMS emulator's ASGI app: Twilio's Messages routes under `/2010-04-01/...` and the
control API under `/_control`. Runs standalone or mounted under a prefix
(`Mount("/_emulator/sms", app)`); every URL and `uri` it hands out is built from the
request, so it is right in both places."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wafile.emulator.sms.control import control_error, control_routes
from wafile.emulator.sms.errors import (
    TwilioError,
    internal_error,
    method_not_allowed,
    not_found,
)
from wafile.emulator.sms.records import API_VERSION
from wafile.emulator.sms.state import SmsEmulator

__all__ = ["base_url", "create_sms_app", "root_path"]

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]

_ROOT_KEY: Final = "wafile.emulator.sms.root_path"
_FORM: Final = "application/x-www-form-urlencoded"


class _RememberRoot:
    """Notes the root_path this app was entered with; inner mounts (`/_control`) extend
    scope["root_path"] in place, and URLs must be built from the app's own root."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_ROOT_KEY] = scope.get("root_path", "")
        await self.app(scope, receive, send)


def root_path(request: Request) -> str:
    """The path prefix this app is served under: "" standalone, "/_emulator/sms" mounted."""
    return str(request.scope.get(_ROOT_KEY, request.scope.get("root_path", ""))).rstrip("/")


def base_url(request: Request) -> str:
    """This app's own root URL, ending in `/`, including the prefix it is mounted under.

    Starlette's `request.base_url` gives the outermost app's root instead, which is wrong
    when this app is mounted.
    """
    return str(request.url.replace(path=root_path(request) + "/", query="", fragment=""))


def _twilio_response(exc: TwilioError) -> JSONResponse:
    response = JSONResponse(exc.to_json(), status_code=exc.status)
    if exc.status == 401:
        response.headers["www-authenticate"] = 'Basic realm="Twilio API"'
    return response


def _twilio(handler: Handler) -> Handler:
    """Twilio errors as Twilio's JSON, anything unexpected as 20500 (never a bare 500)."""

    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except TwilioError as exc:
            response = _twilio_response(exc)
        except Exception:
            log.exception("SMS emulator request failed")
            response = _twilio_response(internal_error())
        response.headers["twilio-request-id"] = "RQ" + secrets.token_hex(16)
        return response

    return wrapped


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body's fields in order (repeats kept). Any other body holds no
    fields, as with Twilio, which then answers that `To` is missing."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _FORM:
        return []
    raw = await request.body()
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)


def create_sms_app(emulator: SmsEmulator) -> Starlette:
    """The emulator as an ASGI app. Standalone, its lifespan closes the emulator at
    shutdown; when mounted, the host app should `await emulator.aclose()` itself."""

    @_twilio
    async def create(request: Request) -> Response:
        account = emulator.authenticate(
            request.path_params["account_sid"], request.headers.get("authorization")
        )
        msg = emulator.send(account, await _form_fields(request))
        return JSONResponse(msg.resource(root_path(request)), status_code=201)

    @_twilio
    async def fetch(request: Request) -> Response:
        account = emulator.authenticate(
            request.path_params["account_sid"], request.headers.get("authorization")
        )
        msg = emulator.message(account, request.path_params["sid"])
        return JSONResponse(msg.resource(root_path(request)))

    async def http_error(request: Request, exc: Exception) -> Response:
        """Unknown paths and methods: a control error under /_control, Twilio's elsewhere."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        path = request.url.path.removeprefix(root_path(request))
        if path.startswith("/_control"):
            return control_error(status, f"no control route {request.method} {path}")
        error = method_not_allowed(request.method) if status == 405 else not_found(path)
        return _twilio_response(error)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await emulator.aclose()

    messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"
    routes = [
        Mount("/_control", routes=control_routes(emulator, root_path, base_url)),
        Route(messages + ".json", create, methods=["POST"]),
        Route(messages + "/{sid}.json", fetch, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_RememberRoot)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
