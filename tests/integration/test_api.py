"""The native API under a real uvicorn, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import NOW, LiveServer, assert_problem, make_key, make_settings
from wafile.api.app import create_app
from wafile.config import Settings
from wafile.db.engine import session_factory, transaction
from wafile.errors import ConfigError
from wafile.services.api_keys import api_keys


async def test_account_with_bearer_and_x_api_key(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    async with live_server.client() as http:
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
            resp = await http.get("/v1/account", headers=headers)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["name"] == "acme" and body["id"].startswith("acc_")
            assert body["created_at"].startswith("2026-11-23T00:00:00")


async def test_each_tenant_sees_its_own_account(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key_a, key_b = await make_key(engine, "alpha"), await make_key(engine, "beta")
    async with live_server.client() as http:
        a = await http.get("/v1/account", headers={"X-API-Key": key_a})
        b = await http.get("/v1/account", headers={"X-API-Key": key_b})
    assert (a.json()["name"], b.json()["name"]) == ("alpha", "beta")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "wfk_000000000000_" + "0" * 48},
        {"Authorization": "Bearer"},
    ],
)
async def test_bad_or_missing_key_is_401_problem(
    live_server: LiveServer, headers: dict[str, str]
) -> None:
    async with live_server.client() as http:
        resp = await http.get("/v1/account", headers=headers)
    assert_problem(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_key_is_401(live_server: LiveServer, engine: AsyncEngine) -> None:
    key = await make_key(engine)
    async with live_server.client() as http:
        assert (await http.get("/v1/account", headers={"X-API-Key": key})).status_code == 200
        async with transaction(session_factory(engine)) as s:
            await api_keys.revoke(s, key, now=NOW)
        resp = await http.get("/v1/account", headers={"X-API-Key": key})
    assert_problem(resp, 401, "unauthorized")


async def test_unknown_route_and_wrong_method_are_problems(live_server: LiveServer) -> None:
    async with live_server.client() as http:
        body = assert_problem(await http.get("/no/such/path?x=1"), 404, "not_found")
        assert body["instance"] == "/no/such/path"
        assert_problem(await http.delete("/healthz"), 405, "method_not_allowed")
        assert_problem(await http.get("/problems/nope"), 404, "not_found")


async def test_problem_types_are_documented(live_server: LiveServer) -> None:
    async with live_server.client() as http:
        resp = await http.get("/problems/unauthorized")
    assert resp.json() == {
        "code": "unauthorized",
        "status": 401,
        "title": "Missing, invalid or revoked API key",
    }


async def test_request_id_is_echoed_or_generated(live_server: LiveServer) -> None:
    async with live_server.client() as http:
        given = await http.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = await http.get("/healthz")
        forged = await http.get("/healthz", headers={"X-Request-ID": "evil\tline"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert forged.headers["x-request-id"] != "evil\tline"


async def test_health_ready_metrics_openapi_docs(live_server: LiveServer) -> None:
    async with live_server.client() as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": {"ok": True}, "media": {"ok": True}}
        await http.get("/v1/account")
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert (
            'wafile_http_requests_total{method="GET",route="/v1/account",status="401"} 1.0'
            in metrics.text
        )
        assert (
            'wafile_http_request_duration_seconds_bucket{le="0.005",method="GET",'
            'route="/healthz"}' in metrics.text
        )
        assert 'python_gc_collections_total{generation="2"}' in metrics.text
        assert "wafile_gc_frozen_objects " in metrics.text
        spec = (await http.get("/openapi.json")).json()
        assert "/v1/account" in spec["paths"]
        assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_readyz_reports_a_media_store_that_stopped_working(
    tmp_path: Path, settings: Settings, engine: AsyncEngine
) -> None:
    media_dir = Path(settings.effective_media_url.removeprefix("file://"))
    with LiveServer(settings) as server:
        async with server.client() as http:
            assert (await http.get("/readyz")).status_code == 200
            shutil.rmtree(media_dir)
            media_dir.write_text("a file where the media folder was")
            resp = await http.get("/readyz")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["media"]["ok"] is False and "not writable" in checks["media"]["detail"]


def test_an_unusable_media_url_stops_the_app_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    settings = make_settings(
        tmp_path, "sqlite://", media_url=(tmp_path / "blocker" / "media").as_uri()
    )
    with pytest.raises(ConfigError, match=r"^WAFILE_MEDIA_URL: "):
        create_app(settings)


async def test_readyz_reports_an_unreachable_database(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        "postgresql://nobody@127.0.0.1:1/none",  # nothing listens on port 1
    )
    with LiveServer(settings) as server:
        async with server.client() as http:
            ready = await http.get("/readyz")
            account = await http.get("/v1/account", headers={"X-API-Key": "wfk_x"})
            key = "wfk_000000000000_" + "0" * 48
            down = await http.get("/v1/account", headers={"X-API-Key": key})
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is False
    assert_problem(account, 401, "unauthorized")  # malformed keys never reach the database
    assert_problem(down, 503, "service_unavailable")
