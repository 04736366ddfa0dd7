"""A customer's callback receiver for tests (the `receiver` fixture serves one)."""

from __future__ import annotations

import threading
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["Receiver", "verified"]


class Receiver:
    """A customer's callback receiver: records every request; answers as told per path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: dict[str, Response] = {}

        async def receive(request: Request) -> Response:
            path = request.url.path
            body = await request.body()
            with self.lock:
                self.got.append((path, dict(request.headers), body))
                answer = self.answers.get(path)
            return answer or Response("ok", status_code=200)

        self.app = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.got if p == path]


def verified(secret: str, got: list[tuple[dict[str, str], bytes]]) -> list[dict[str, Any]]:
    """Every request's event, each signature checked by the reference library."""
    return [Webhook(secret).verify(body, headers) for headers, body in got]
