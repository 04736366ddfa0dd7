"""Every operation needs an API key unless it is listed here on purpose.

Read from the OpenAPI document: an operation that depends on the key lookup declares
its security schemes there, so a route that forgets auth shows up as public.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Mount

from wafile.api.app import create_app
from wafile.config import Settings

PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/problems/{code}"),
    ("get", "/f/{media_id}"),  # signed download links: the signature is the credential
    # Meta's webhook: the verify token (GET) and X-Hub-Signature-256 (POST) are the credentials
    ("get", "/webhooks/whatsapp/{sender_id}"),
    ("post", "/webhooks/whatsapp/{sender_id}"),
    ("post", "/webhooks/sms/{sender_id}"),
}


def test_only_the_listed_operations_are_public() -> None:
    app = create_app(Settings(secret_key="k" * 40, database_url="sqlite:///:memory:"))
    spec = app.openapi()
    public = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            schemes = {name for req in op.get("security", []) for name in req}
            if not schemes:
                public.add((method, path))
            else:
                assert schemes == {"HTTPBearer", "APIKeyHeader"}, (method, path)
    assert public == PUBLIC


def _routes(app: Any) -> Iterator[APIRoute]:
    """Every API route, the mounted dialects' too."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif isinstance(route, Mount) and hasattr(route.app, "routes"):
            yield from _routes(route.app)


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def test_no_dependency_or_handler_runs_in_the_thread_pool() -> None:
    """FastAPI runs a plain `def` dependency or endpoint in its thread pool: a thread
    hop per request. Every one of ours is `async def` (FastAPI's own security
    classes are objects with an async `__call__`)."""
    app = create_app(Settings(secret_key="k" * 40, database_url="sqlite:///:memory:"))
    sync = set()
    for route in _routes(app):
        for call in [route.endpoint, *_calls(route.dependant)]:
            target = call if inspect.isfunction(call) else getattr(call, "__call__", call)  # noqa: B004
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                sync.add(f"{route.path}: {getattr(call, '__qualname__', call)!r}")
    assert not sync, sorted(sync)
