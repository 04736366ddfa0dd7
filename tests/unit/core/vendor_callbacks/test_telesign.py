"""Telesign's callback shape, reference ids and signature (core.vendor_callbacks.telesign)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wafile.core.accounts import Account
from wafile.core.callback_formats import format_named
from wafile.core.vendor_callbacks import telesign
from wafile.ids import new_id

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
AT = datetime(2020, 5, 4, 22, 7, 1, 226000, tzinfo=UTC)


def attempt(number: int, channel: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "channel": channel,
        "status": status,
        "error_code": None,
        "queued_at": "2020-05-04T21:55:00Z",
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
        "ended_at": None,
        **extra,
    }


def event(
    kind: str, status: str, attempts: list[dict[str, Any]], message_status: str
) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "attempt": attempts[-1]["number"],
        "at": "2020-05-04T22:07:01.226Z",
        "message": {
            "id": "msg_01m8346s84ss1ekaad45ykhe4f",
            "status": message_status,
            "reference": None,
            "attempts": attempts,
        },
    }


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_reference_ids_and_message_ids_map_both_ways(value: int) -> None:
    ref = f"{value:032X}"
    message_id = telesign.message_id_for(ref)
    assert message_id is not None and message_id.startswith("msg_")
    assert telesign.reference_id_for(message_id) == ref


def test_a_new_message_ids_reference_is_32_upper_case_hex() -> None:
    message_id = new_id("msg")
    ref = telesign.reference_id_for(message_id)
    assert len(ref) == 32 and ref == ref.upper() and int(ref, 16) >= 0
    assert telesign.message_id_for(ref) == message_id
    assert telesign.message_id_for("xyz") is None
    assert telesign.message_id_for("G" * 32) is None


def test_the_pages_callback_after_a_fallback() -> None:
    attempts = [
        attempt(0, "whatsapp", "timed_out", ended_at="2020-05-04T22:05:00.325Z"),
        attempt(1, "sms", "delivered", delivered_at="2020-05-04T22:07:01.226Z"),
    ]
    body = telesign.build(event("attempt.delivered", "delivered", attempts, "delivered"))
    assert body is not None
    message_id = "msg_01m8346s84ss1ekaad45ykhe4f"
    assert body == {
        "reference_id": telesign.reference_id_for(message_id),
        "external_id": None,
        "status": {
            "code": 3000,
            "description": "Delivered",
            "last_channel": "sms",
            "updated_on": "2020-05-04 22:07:01.226",
        },
        "channel_status": [
            {
                "whatsapp": {
                    "code": 3056,
                    "description": "Message failed to deliver in specified fallback time",
                    "reference_id": telesign.channel_reference_id(message_id, 0),
                    "updated_on": "2020-05-04 22:05:00.325",
                }
            },
            {
                "sms": {
                    "code": 3000,
                    "description": "Delivered",
                    "reference_id": telesign.channel_reference_id(message_id, 1),
                    "updated_on": "2020-05-04 22:07:01.226",
                }
            },
        ],
    }


def test_failures_carry_the_closest_telesign_code() -> None:
    wa = attempt(0, "whatsapp", "failed", error_code=131026)
    body = telesign.build(event("attempt.failed", "failed", [wa], "failed"))
    assert body is not None and body["status"]["code"] == 3055
    other = attempt(0, "whatsapp", "failed", error_code=1)
    body = telesign.build(event("attempt.failed", "failed", [other], "failed"))
    assert body is not None and body["status"]["code"] == 3003


def test_queued_attempts_and_message_events_send_nothing() -> None:
    queued = [attempt(0, "whatsapp", "queued")]
    assert telesign.build(event("attempt.queued", "queued", queued, "accepted")) is None
    assert telesign.build(event("message.delivered", "delivered", queued, "delivered")) is None


ACCOUNT = Account(id="acc_01jd3k0000000000000000000a", name="viatu", created_at=AT)


def test_signed_as_telesign_signs_the_body_alone() -> None:
    body = b'{"reference_id":"35C8B5D509BC10689196FED2AD551B8A"}'
    headers = telesign.sign(body, SECRET, "evt_1", AT, ACCOUNT)
    expected = base64.b64encode(hmac.new(b"k" * 32, body, hashlib.sha256).digest()).decode()
    assert headers == {"Authorization": f"TSA viatu:{expected}", "X-TS-Authorization": expected}
    assert telesign.sign(body, SECRET, "evt_2", datetime.now(UTC), ACCOUNT) == headers


def test_the_tsa_prefix_names_the_customer_id_clients_authenticate_with() -> None:
    """`TSA <customer_id>:`: the account's name (what `Basic <customer_id>:<api_key>`
    carries in the docs and under `make run`), never the secret or the key."""
    other = Account(id="acc_01jd3k0000000000000000000b", name="acme", created_at=AT)
    assert telesign.customer_id(ACCOUNT) == "viatu"
    signed = telesign.sign(b"{}", SECRET, "evt_1", AT, other)
    prefix, _, mac = signed["Authorization"].removeprefix("TSA ").partition(":")
    assert prefix == "acme" and mac == signed["X-TS-Authorization"]
    assert SECRET.removeprefix("whsec_") not in signed["Authorization"]


def test_registered_as_a_callback_format() -> None:
    found = format_named("telesign")
    assert found.build is telesign.build and found.sign is telesign.sign
