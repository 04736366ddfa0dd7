"""Webhook bodies, signatures, retries and the handshake, against httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.meta_signature import verify_hub_signature
from wafile.emulator.whatsapp.webhooks import (
    WebhookLog,
    encode_body,
    envelope,
    post_with_retries,
    verify_webhook,
)
from wafile.emulator.whatsapp.world import BusinessNumber, Timing

NUMBER = BusinessNumber(
    phone_number_id="1001",
    display_phone_number="15550001001",
    waba_id="2001",
    access_token="tok",
    app_secret="sec",
    webhook_url="http://hooks.test/in",
    verify_token="vt",
)


def test_envelope() -> None:
    body = envelope(NUMBER, {"statuses": [{"id": "wamid.1"}]})
    assert body == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "2001",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001001",
                                "phone_number_id": "1001",
                            },
                            "statuses": [{"id": "wamid.1"}],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_encoded_bodies_are_ascii_json_with_escaped_slashes(value: object) -> None:
    raw = encode_body({"v": value})
    assert raw.isascii()
    assert json.loads(raw) == {"v": value}
    assert b"/" not in raw.replace(b"\\/", b"")


def test_log_signs_and_numbers_entries() -> None:
    log = WebhookLog(size=2)
    entries = [
        log.add(number=NUMBER, kind="status", message_id=f"m{i}", status="sent", payload={"i": i})
        for i in range(3)
    ]
    assert [e.id for e in entries] == [1, 2, 3]
    assert [e.id for e in log] == [2, 3]  # bounded
    assert verify_hub_signature("sec", entries[0].body, entries[0].signature)
    no_url = log.add(
        number=_no_url(),
        kind="message",
        message_id="m",
        status=None,
        payload={},
    )
    assert no_url.outcome == "no_webhook_url" and no_url.url is None
    log.clear()
    assert list(log) == []


def _no_url() -> BusinessNumber:
    return BusinessNumber(
        phone_number_id="1",
        display_phone_number="1555000",
        waba_id="2",
        access_token="t",
        app_secret="s",
    )


async def test_retries_until_success_then_stops() -> None:
    answers = [500, 404, 200]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answers[len(seen) - 1])

    entry = WebhookLog().add(
        number=NUMBER, kind="status", message_id="m", status="sent", payload={"a": "b/c"}
    )
    timing = Timing(scale=0.001, retry_delays=(1, 1, 1, 1))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await post_with_retries(client, entry, lambda: timing, lambda: 7.0)
    assert [a.status_code for a in entry.attempts] == [500, 404, 200]
    assert entry.outcome == "delivered" and len(seen) == 3
    request = seen[0]
    assert request.content == b'{"a":"b\\/c"}'
    assert verify_hub_signature("sec", request.content, request.headers["x-hub-signature-256"])
    assert request.headers["content-type"] == "application/json"
    assert entry.to_json()["response_status"] == 200


async def test_gives_up_and_records_transport_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    entry = WebhookLog().add(
        number=NUMBER, kind="status", message_id="m", status="sent", payload={}
    )
    timing = Timing(scale=0, retry_delays=(5, 5))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await post_with_retries(client, entry, lambda: timing, lambda: 1.0)
    assert entry.outcome == "gave_up"
    assert [(a.status_code, a.error) for a in entry.attempts] == [
        (None, "ConnectError: refused")
    ] * 3


async def test_verification_handshake() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if params["hub.mode"] == "subscribe" and params["hub.verify_token"] == "vt":
            return httpx.Response(200, text=params["hub.challenge"])
        return httpx.Response(403)

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        good = await verify_webhook(client, "http://hooks.test/in?x=1", "vt", 1.0)
        bad = await verify_webhook(client, "http://hooks.test/in", "nope", 1.0)
    assert good["ok"] is True and good["challenge"].isdigit()
    assert bad["ok"] is False and bad["status_code"] == 403

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text="hello"))
    ) as client:
        silent = await verify_webhook(client, "http://hooks.test/in", "vt", 1.0)
    assert silent["ok"] is False and "challenge" in silent["detail"]
