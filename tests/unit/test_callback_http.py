"""The callback HTTP client: Standard Webhooks signatures, no redirects, bounded reads."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from wafile.channels.callback_http import SNIPPET_CHARS, CallbackPoster, signature_headers

# The test vector the Standard Webhooks specification publishes.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_specification_test_vector() -> None:
    at = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)
    headers = signature_headers(SPEC_SECRET, SPEC_ID, at, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    # The same by an independent HMAC over "{id}.{timestamp}.{body}".
    key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    signed = f"{SPEC_ID}.{SPEC_TIMESTAMP}.{SPEC_BODY}".encode()
    mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{mac}"


def test_the_reference_library_verifies_and_rejects_tampering() -> None:
    now = datetime.now(UTC)
    body = '{"type":"message.delivered","sequence":3}'
    headers = signature_headers(SPEC_SECRET, "evt_1", now, body)
    assert Webhook(SPEC_SECRET).verify(body, headers) == {
        "type": "message.delivered",
        "sequence": 3,
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(body.replace("3", "4"), headers)
    stale = signature_headers(SPEC_SECRET, "evt_1", datetime(2020, 1, 1, tzinfo=UTC), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(body, stale)


async def test_a_2xx_is_delivered_with_the_signed_headers_and_a_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with CallbackPoster(transport=httpx.MockTransport(handler)) as poster:
        result = await poster.post(
            "https://example.com/hook",
            '{"a":1}',
            event_id="evt_1",
            secret=SPEC_SECRET,
            at=datetime.now(UTC),
        )
    assert result.delivered and result.status_code == 204 and result.error is None
    [request] = seen
    assert request.headers["user-agent"].startswith("wafile/")
    assert request.headers["content-type"] == "application/json"
    Webhook(SPEC_SECRET).verify(request.content, dict(request.headers))


async def test_a_redirect_is_a_failure_and_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "https://elsewhere.example/x"})

    async with CallbackPoster(transport=httpx.MockTransport(handler)) as poster:
        result = await poster.post(
            "https://example.com/hook", "{}", event_id="e", secret=SPEC_SECRET, at=datetime.now(UTC)
        )
    assert seen == ["https://example.com/hook"]
    assert not result.delivered and result.status_code == 302
    assert result.error is not None and "elsewhere.example" in result.error


async def test_errors_and_long_answers_are_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="x" * 100_000)

    async with CallbackPoster(transport=httpx.MockTransport(handler)) as poster:
        result = await poster.post(
            "https://example.com/hook", "{}", event_id="e", secret=SPEC_SECRET, at=datetime.now(UTC)
        )
    assert result.status_code == 500 and result.error == "HTTP 500"
    assert result.response is not None and len(result.response) == SNIPPET_CHARS

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async with CallbackPoster(transport=httpx.MockTransport(refuse)) as poster:
        result = await poster.post(
            "https://example.com/hook", "{}", event_id="e", secret=SPEC_SECRET, at=datetime.now(UTC)
        )
    assert result.status_code is None and result.error is not None
    assert "refused" in result.error
