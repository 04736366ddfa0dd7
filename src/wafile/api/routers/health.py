"""Public operational routes: liveness, readiness, metrics and the problem catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from wafile import __version__
from wafile.api.deps import ContextDep
from wafile.errors import NotFound, catalogue
from wafile.services.health import check_ready

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and the media store takes files",
    responses={503: {"description": "A dependency is down; `checks` says which"}},
)
async def readyz(ctx: ContextDep) -> JSONResponse:
    checks = await check_ready(ctx.engine, ctx.store)
    ok = all(c.ok for c in checks)
    body: dict[str, Any] = {
        "status": "ok" if ok else "unavailable",
        "checks": {
            c.name: {"ok": c.ok, **({"detail": c.detail} if c.detail else {})} for c in checks
        },
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    return Response(ctx.metrics.render(), media_type=ctx.metrics.content_type)


@router.get("/problems/{code}", summary="What a problem `type` means")
async def problem_type(code: str) -> dict[str, Any]:
    cls = catalogue().get(code)
    if cls is None:
        raise NotFound(f"no problem type {code!r}")
    return {"code": cls.code, "status": cls.status, "title": cls.title()}
