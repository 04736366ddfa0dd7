"""Request context: request id, access log, metrics and the last-resort 500.

A pure ASGI middleware (no BaseHTTPMiddleware), so bodies stream through untouched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wafile.api.metrics import HttpMetrics
from wafile.api.problems import problem_response
from wafile.errors import WafileError
from wafile.logs import request_id_var

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware"]

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
# A client's id is kept only if it is short and plain, so it cannot forge log lines.
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"

access_log = logging.getLogger("wafile.access")
log = logging.getLogger(__name__)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _CLIENT_ID_RE.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        started = False
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                # Appended, not set through MutableHeaders, whose set scans and
                # rebuilds the list (1.3% of a busy server's CPU); nothing else in
                # wafile sets this header.
                headers = [*message.get("headers", ()), (_REQUEST_ID_KEY, request_id.encode())]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client gave up before sending its whole body (a provider's webhook
            # timeout under load): nothing was stored, it sends again; no one to answer.
            status = 499
            log.info("client went away during %s %s", scope["method"], scope["path"])
        except Exception:
            # Anything unplanned becomes a problem document, never a traceback.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                response = problem_response(WafileError(), instance=scope["path"])
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe(
                method=scope["method"], route=route, status=status, seconds=elapsed
            )
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
            )
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
