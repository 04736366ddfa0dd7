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
