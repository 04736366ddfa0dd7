"""The emulator's ASGI app: Graph-style routes (`/v23.0/...`), the media download URL and
the control API under `/_control`. Runs standalone or mounted under a prefix
(`Mount("/_emulator/whatsapp", app)`); every URL it hands out is built from the request."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wafile.emulator.whatsapp.control import control_error, control_routes
from wafile.emulator.whatsapp.graph_errors import (
    GraphError,
    invalid_parameter,
    missing_parameter,
    unknown_object,
    unknown_path,
)
from wafile.emulator.whatsapp.state import DOWNLOAD_PATH, WhatsAppEmulator

__all__ = ["base_url", "bearer_token", "create_whatsapp_app"]

log = logging.getLogger(__name__)
_VERSION: Final = re.compile(r"v[0-9]+\.[0-9]+")
Handler = Callable[[Request], Awaitable[Response]]


_ROOT_KEY: Final = "wafile.emulator.root_path"


class _RememberRoot:
    """Notes the root_path this app was entered with; inner mounts (`/_control`) extend
    scope["root_path"] in place, and URLs must be built from the app's own root."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_ROOT_KEY] = scope.get("root_path", "")
        await self.app(scope, receive, send)


def _root(request: Request) -> str:
    return str(request.scope.get(_ROOT_KEY, request.scope.get("root_path", ""))).rstrip("/")


def base_url(request: Request) -> str:
    """This app's own root URL, ending in `/`, including the prefix it is mounted under.

    Starlette's `request.base_url` gives the outermost app's root instead, which is wrong
    when this app is mounted (`Mount("/_emulator/whatsapp", app)`).
    """
    return str(request.url.replace(path=_root(request) + "/", query="", fragment=""))


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _graph_response(exc: GraphError, version: str | None = None) -> JSONResponse:
    response = JSONResponse(exc.envelope(), status_code=exc.status)
    if exc.status == 401:
        response.headers["www-authenticate"] = 'OAuth "Facebook Platform" "invalid_token"'
    if version:
        response.headers["facebook-api-version"] = version
    return response


def _graph(handler: Handler) -> Handler:
    """Graph errors as Meta's envelope, anything unexpected as Graph's code 1 (500)."""

    async def wrapped(request: Request) -> Response:
        version = request.path_params.get("version")
        try:
            if version is not None and not _VERSION.fullmatch(version):
                raise unknown_path(request.url.path)
            response = await handler(request)
        except GraphError as exc:
            return _graph_response(exc, version)
        except Exception:
            log.exception("emulator request failed")
            return _graph_response(
                GraphError(
                    code=1,
                    status=500,
                    message="An unknown error occurred",
                    is_transient=True,
                ),
                version,
            )
        if version:
            response.headers["facebook-api-version"] = version
        return response

    return wrapped


def create_whatsapp_app(emulator: WhatsAppEmulator) -> Starlette:
    """The emulator as an ASGI app. Standalone, its lifespan closes the emulator at
    shutdown; when mounted, the host app should `await emulator.aclose()` itself."""

    @_graph
    async def upload(request: Request) -> Response:
        number = emulator.authorise(
            bearer_token(request), request.path_params["phone_number_id"], "POST"
        )
        try:
            form = await request.form()
        except Exception as exc:  # multipart parse errors come in several classes
            raise invalid_parameter(f"The body must be multipart/form-data: {exc}") from None
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise missing_parameter("file")
            product = form.get("messaging_product")
            if product is None:
                raise missing_parameter("messaging_product")
            if product != "whatsapp":
                raise invalid_parameter('Param messaging_product must be "whatsapp".')
            declared = form.get("type")
            mime = declared if isinstance(declared, str) and declared else file.content_type
            if not mime:
                raise missing_parameter("type")
            data = await file.read()
            media_id = emulator.upload(number, data, mime, file.filename)
        finally:
            await form.close()
        return JSONResponse({"id": media_id})

    @_graph
    async def send(request: Request) -> Response:
        number = emulator.authorise(
            bearer_token(request), request.path_params["phone_number_id"], "POST"
        )
        try:
            body: Any = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise invalid_parameter("The request body must be JSON.") from None
        return JSONResponse(await emulator.send(number, body))

    @_graph
    async def graph_object(request: Request) -> Response:
        object_id = request.path_params["object_id"]
        token = bearer_token(request)
        owner = request.query_params.get("phone_number_id")
        number = emulator.world.number(object_id)
        if request.method == "GET" and number is not None:
            emulator.authorise(token, object_id, "GET")
            return JSONResponse(
                {
                    "verified_name": number.verified_name,
                    "display_phone_number": number.display_phone_number,
                    "quality_rating": "GREEN",
                    "platform_type": "CLOUD_API",
                    "throughput": {"level": "STANDARD"},
                    "id": number.phone_number_id,
                }
            )
        if request.method == "DELETE":
            emulator.delete_media(token, object_id, owner)
            return JSONResponse({"success": True})
        return JSONResponse(emulator.media_info(token, object_id, owner, base_url(request)))

    @_graph
    async def download(request: Request) -> Response:
        media = emulator.download(bearer_token(request), request.query_params.get("hash", ""))
        return Response(media.data, media_type=media.mime_type)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Unknown paths and methods: a control error under /_control, Graph's elsewhere."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        path = request.url.path.removeprefix(_root(request))
        if path.startswith("/_control"):
            return control_error(status, f"no control route {request.method} {path}")
        segments = path.strip("/").split("/")
        if status == 405 and _VERSION.fullmatch(segments[0]):
            return _graph_response(unknown_object(segments[-1], request.method))
        return _graph_response(unknown_path(path))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await emulator.aclose()

    routes = [
        Mount("/_control", routes=control_routes(emulator, base_url)),
        Route("/" + DOWNLOAD_PATH, download, methods=["GET"]),
        Route("/{version}/{phone_number_id}/media", upload, methods=["POST"]),
        Route("/{version}/{phone_number_id}/messages", send, methods=["POST"]),
        Route("/{version}/{object_id}", graph_object, methods=["GET", "DELETE"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_RememberRoot)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
