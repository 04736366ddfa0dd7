"""Across dialects, over real HTTP: every dialect answers an unknown path, a wrong method
and a bad credential in its own shape, never problem+json (nor FastAPI's default
`{"detail": ...}`); the native API answers its errors as problem+json, never in a
vendor's envelope, also for a vendor's path without its prefix; and
`WAFILE_DIALECT_AT_ROOT=insider` serves Insider's upload at the root while the native
routes still answer natively."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conformance.test_insider import JPEG, curl_form
from tests.support import PROBLEM, LiveServer, assert_problem, make_key
from wafile.api.dialects import DIALECTS
from wafile.config import Settings

BAD_KEY = "wfk_not_a_key_at_all"
BASIC_BAD = "Basic " + "RkZGRkZGRkYtRkZGRi1GRkZGOmJhZA=="  # FFFFFFFF-FFFF-FFFF:bad
STREAM = "c3RyZWFtLW5vdC1pc3N1ZWQ"  # CommBox: a stream id wafile never issued

# Per prefix: (method, path, request keywords) of a real route with a bad credential,
# and a wrong method on a real path.
BAD_CREDENTIAL: dict[str, tuple[str, str, dict[str, Any]]] = {
    "insider": ("GET", "/v1/media/med_x", {"headers": {"x-ins-auth-key": BAD_KEY}}),
    "telesign": (
        "POST",
        "/v1/omnichannel",
        {"headers": {"Authorization": BASIC_BAD}, "json": {"channels": []}},
    ),
    "99digital": (
        "POST",
        "/whatsapp/v2/getTimers",
        {"json": {"apiKey": BAD_KEY, "from": "15550009999", "number": "972507654321"}},
    ),
    "commbox": (
        "POST",
        f"/whatsapp/uploadmedia/{STREAM}",
        {"headers": {"Authorization": f"Bearer {BAD_KEY}"}, "files": {"pic": ("a.jpg", JPEG)}},
    ),
    "sinch": (
        "GET",
        "/whatsapp/v1/sandbox/provision/provider",
        {"headers": {"Authorization": f"Bearer {BAD_KEY}"}},
    ),
}
WRONG_METHOD: dict[str, tuple[str, str]] = {  # each a real path
    "insider": ("PUT", "/v1/send"),
    "telesign": ("DELETE", "/v1/omnichannel"),
    "99digital": ("GET", "/whatsapp/v2/sendFile"),
    "commbox": ("GET", f"/whatsapp/uploadmedia/{STREAM}"),
    "sinch": ("PUT", "/whatsapp/v1/sandbox/messages"),
}


def test_every_dialect_is_covered() -> None:
    assert set(BAD_CREDENTIAL) == set(WRONG_METHOD) == set(DIALECTS)


def vendor_shaped(resp: httpx.Response) -> None:
    """An error in the vendor's shape: not problem+json, not FastAPI's default body."""
    ctype = resp.headers.get("content-type", "")
    assert not ctype.startswith(PROBLEM), (resp.request.url, resp.text)
    if ctype.startswith("application/json"):
        body = resp.json()
        assert not (isinstance(body, dict) and set(body) == {"detail"}), resp.text
        assert not (isinstance(body, dict) and {"type", "title", "code"} <= set(body)), resp.text


@pytest.mark.parametrize("prefix", sorted(DIALECTS))
async def test_a_dialect_never_answers_problem_json(live_server: LiveServer, prefix: str) -> None:
    async with live_server.client() as http:
        method, path, request = BAD_CREDENTIAL[prefix]
        refused = await http.request(method, f"/{prefix}{path}", **request)
        vendor_shaped(refused)
        # 99digital answers a refused call 200 with `"status": "FAIL"`; the others 401.
        assert refused.status_code == (200 if prefix == "99digital" else 401), refused.text
        unknown = await http.get(f"/{prefix}/v1/no/such/path")
        vendor_shaped(unknown)
        assert unknown.status_code == 404
        method, path = WRONG_METHOD[prefix]
        wrong = await http.request(method, f"/{prefix}{path}")
        vendor_shaped(wrong)
        # CommBox uses only its page's codes: an unknown method is its 404.
        assert wrong.status_code == (404 if prefix == "commbox" else 405)


async def test_the_native_api_always_answers_problem_json(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    async with live_server.client() as http:
        assert_problem(await http.get("/v1/account"), 401, "unauthorized")
        assert_problem(
            await http.get("/v1/account", headers={"Authorization": f"Bearer {BAD_KEY}"}),
            401,
            "unauthorized",
        )
        auth = {"Authorization": f"Bearer {key}"}
        assert_problem(await http.get("/v1/no/such/path", headers=auth), 404, "not_found")
        assert_problem(await http.delete("/v1/account", headers=auth), 405, "method_not_allowed")
        invalid = await http.post("/v1/messages", headers=auth, json={"to": 12})
        assert_problem(invalid, 422, "validation_error")
        # Vendors' own paths without their prefix are not routes of the native API.
        for method, path in (
            ("POST", "/v1/omnichannel"),
            ("POST", "/whatsapp/v2/sendFile"),
            ("POST", "/v1/media/upload"),
            ("GET", "/whatsapp/v1/sandbox/provision/provider"),
        ):
            resp = await http.request(method, path, headers=auth, json={"apiKey": key})
            assert resp.headers["content-type"] == PROBLEM, (path, resp.text)
            body = resp.json()
            assert body["status"] == resp.status_code and isinstance(body["code"], str)
            assert resp.status_code in (404, 405)


async def test_a_dialect_at_the_root_leaves_the_native_routes_alone(
    settings: Settings, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    with LiveServer(settings.with_overrides(dialect_at_root="insider")) as server:
        async with server.client() as http:
            body, ctype = curl_form("test.jpeg", JPEG, {"type": "image/jpeg"})
            headers = {"Content-Type": ctype, "x-ins-auth-key": key}
            uploaded = await http.post("/v1/media/upload", content=body, headers=headers)
            assert uploaded.status_code == 200, uploaded.text
            media_id = uploaded.json()["id"]
            # The same upload under the prefix still works; a bad key there is Insider's.
            again = await http.post("/insider/v1/media/upload", content=body, headers=headers)
            assert again.status_code == 200, again.text
            refused = await http.post(
                "/v1/media/upload",
                content=body,
                headers={"Content-Type": ctype, "x-ins-auth-key": BAD_KEY},
            )
            vendor_shaped(refused)
            assert refused.status_code == 401
            # Native routes come first: the account, the media, native problems.
            auth = {"Authorization": f"Bearer {key}"}
            account = await http.get("/v1/account", headers=auth)
            assert account.status_code == 200 and account.json()["name"] == "acme"
            native = await http.get(f"/v1/media/{media_id}", headers=auth)
            assert native.status_code == 200 and native.json()["id"] == media_id
            assert_problem(await http.get("/v1/account"), 401, "unauthorized")
