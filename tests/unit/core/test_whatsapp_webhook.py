from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.whatsapp_webhook import MalformedWebhook, parse_webhook
from wafile.core.window import window_state


def envelope(value: dict[str, Any], field: str = "messages") -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "2001", "changes": [{"field": field, "value": value}]}],
        }
    ).encode()


META = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def test_inbound_text_and_document_with_contacts_from_the_reference() -> None:
    body = envelope(
        {
            "messaging_product": "whatsapp",
            "metadata": META,
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [
                {
                    "from": "16505551234",
                    "id": "wamid.A",
                    "timestamp": "1749416383",
                    "type": "text",
                    "text": {"body": "Does it come in another color?"},
                },
                {
                    "context": {"forwarded": True},
                    "from": "972987654321",
                    "id": "wamid.B",
                    "timestamp": "1697043666",
                    "type": "document",
                    "document": {
                        "caption": "caption",
                        "filename": "filename.pdf",
                        "mime_type": "application/pdf",
                        "sha256": "grw=",
                        "id": "1234567890987654321",
                    },
                },
                {"from": "1", "id": "wamid.C", "timestamp": "x", "type": "text"},  # bad time
            ],
        }
    )
    batch = parse_webhook(body)
    text, doc = batch.messages
    assert (text.from_wa_id, text.text, text.profile_name, text.phone_number_id) == (
        "16505551234",
        "Does it come in another color?",
        "Sheena Nelson",
        "106540352242922",
    )
    assert text.at == datetime.fromtimestamp(1749416383, UTC) and text.media is None
    assert doc.media is not None and doc.type == "document" and doc.profile_name is None
    assert (doc.media.provider_id, doc.media.filename, doc.media.mime_type) == (
        "1234567890987654321",
        "filename.pdf",
        "application/pdf",
    )
    assert batch.statuses == ()


def test_statuses_with_and_without_errors() -> None:
    body = envelope(
        {
            "metadata": META,
            "statuses": [
                {
                    "id": "wamid.X",
                    "status": "delivered",
                    "timestamp": "1698266950",
                    "recipient_id": "4915112345678",
                },
                {
                    "id": "wamid.X",
                    "status": "failed",
                    "timestamp": "1698266946",
                    "recipient_id": "4915112345678",
                    "errors": [
                        {
                            "code": 131047,
                            "title": "Re-engagement message",
                            "error_data": {"details": "more than 24 hours"},
                        }
                    ],
                },
                {"id": "wamid.X", "status": "played", "timestamp": "1", "recipient_id": "1"},
            ],
        }
    )
    delivered, failed = parse_webhook(body).statuses
    assert (delivered.status, delivered.error_code) == ("delivered", None)
    assert (failed.status, failed.error_code, failed.error_details) == (
        "failed",
        131047,
        "more than 24 hours",
    )


def test_other_fields_are_skipped_and_non_envelopes_refused() -> None:
    assert (
        parse_webhook(
            envelope({"event": "APPROVED"}, field="message_template_status_update")
        ).messages
        == ()
    )
    for bad in (b"", b"not json", b"[]", b'{"object": "page"}', b"\xff\xfe"):
        with pytest.raises(MalformedWebhook):
            parse_webhook(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_inside_the_envelope_never_crashes(value: Any) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": value}).encode()
    parse_webhook(body)
    body = envelope({"metadata": META, "messages": value, "statuses": value, "contacts": value})
    parse_webhook(body)


def test_the_window_is_24_hours_from_the_last_inbound_message() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert window_state(None, now).open is False
    fresh = window_state(now - timedelta(hours=23, minutes=30, seconds=1), now)
    assert fresh.open and fresh.minutes_left == 29
    assert fresh.closes_at == now + timedelta(minutes=29, seconds=59)
    closed = window_state(now - timedelta(hours=24), now)
    assert not closed.open and closed.minutes_left == 0
