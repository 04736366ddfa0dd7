from __future__ import annotations

from wafile.api.problems import problem_body
from wafile.errors import Unauthorized, ValidationFailed
from wafile.logs import request_id_var


def test_problem_body_has_the_rfc9457_members_and_a_code() -> None:
    token = request_id_var.set("abc")
    try:
        body = problem_body(Unauthorized(), instance="/v1/account")
    finally:
        request_id_var.reset(token)
    assert body == {
        "type": "/problems/unauthorized",
        "title": "Missing, invalid or revoked API key",
        "status": 401,
        "detail": "Missing, invalid or revoked API key",
        "instance": "/v1/account",
        "code": "unauthorized",
        "request_id": "abc",
    }


def test_extension_members_cannot_overwrite_standard_ones() -> None:
    body = problem_body(ValidationFailed("bad", status=200, errors=[]), instance="/x")
    assert body["status"] == 422
    assert body["errors"] == []


async def test_validation_and_crashes_render_as_problems() -> None:
    """422 for bad input and 500 for a bug, both problem+json, never a traceback."""
    import httpx

    from wafile.api.app import create_app
    from wafile.config import Settings

    app = create_app(Settings(secret_key="k" * 40, database_url="sqlite:///:memory:"))

    @app.get("/_test/number")
    async def number(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/_test/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals wfk_0123456789ab_" + "e" * 48)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        bad = await http.get("/_test/number", params={"n": "seven"})
        boom = await http.get("/_test/crash")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    body = bad.json()
    assert body["code"] == "validation_error" and body["detail"].startswith("query.n:")
    assert body["errors"][0]["loc"] == ["query", "n"]
    assert "seven" not in bad.text  # inputs are not echoed: they may be secrets
    assert boom.status_code == 500
    assert boom.json()["code"] == "internal_error"
    assert "secret internals" not in boom.text and "Traceback" not in boom.text
    assert boom.headers["x-request-id"] == boom.json()["request_id"]
