"""Graph error envelopes and webhook error objects."""

from __future__ import annotations

from wafile.emulator.whatsapp.graph_errors import (
    ERROR_HREF,
    async_error,
    invalid_token,
    rate_limited,
    template_not_found,
    unknown_object,
)


def test_whatsapp_error_envelope() -> None:
    body = rate_limited().envelope()["error"]
    assert body["message"] == "(#130429) Rate limit hit"
    assert (body["type"], body["code"], body["error_subcode"]) == (
        "OAuthException",
        130429,
        2494055,
    )
    assert body["error_data"] == {
        "messaging_product": "whatsapp",
        "details": "Cloud API message throughput has been reached.",
    }
    assert body["is_transient"] is True and body["fbtrace_id"]
    assert rate_limited().envelope()["error"]["fbtrace_id"] != body["fbtrace_id"]


def test_statuses_and_types() -> None:
    assert invalid_token().status == 401 and invalid_token().code == 190
    assert "error_data" not in invalid_token().envelope()["error"]
    missing = unknown_object("42", "GET")
    assert (missing.status, missing.code, missing.subcode, missing.type) == (
        400,
        100,
        33,
        "GraphMethodException",
    )
    assert "Unsupported get request" in missing.message
    assert template_not_found("t", "en").status == 404


def test_async_errors() -> None:
    error = async_error(131047).to_json()
    assert error["code"] == 131047 and error["title"] == "Re-engagement message"
    assert error["message"] == error["title"] and error["href"] == ERROR_HREF
    assert "24 hours" in error["error_data"]["details"]
    custom = async_error(999, "because").to_json()
    assert custom["title"] == "Error" and custom["error_data"] == {"details": "because"}
