"""Sinch's delivery reports and message ids (core.vendor_callbacks.sinch)."""

from __future__ import annotations

from typing import Any

from wafile.core.callback_formats import format_named
from wafile.core.vendor_callbacks import sinch
from wafile.ids import new_id


def event(status: str, channel: str = "whatsapp", error_code: int | None = None) -> dict[str, Any]:
    return {
        "type": f"attempt.{status}",
        "status": status,
        "attempt": 0,
        "message": {
            "id": "msg_01dpnxz0wcf9xd19mh84xd0p62",
            "to": "+46732001122",
            "attempts": [
                {"number": 0, "channel": channel, "status": status, "error_code": error_code}
            ],
        },
    }


def test_message_ids_look_like_sinch_ids_and_map_back() -> None:
    assert sinch.sinch_id("msg_01dpnxz0wcf9xd19mh84xd0p62") == "01DPNXZ0WCF9XD19MH84XD0P62"
    made = new_id("msg")
    assert sinch.message_id_for(sinch.sinch_id(made)) == made


def test_each_whatsapp_status_is_one_report_in_the_send_answers_shape() -> None:
    states = {
        status: sinch.build(event(status)) for status in ("sent", "delivered", "read", "failed")
    }
    assert states["delivered"] == {
        "type": "whatsapp",
        "statuses": [
            {
                "message_id": "01DPNXZ0WCF9XD19MH84XD0P62",
                "recipient": "+46732001122",
                "status": "success",
                "state": "delivered",
            }
        ],
    }
    got = {
        k: (v["statuses"][0]["status"], v["statuses"][0]["state"]) for k, v in states.items() if v
    }
    assert got == {
        "sent": ("success", "dispatched"),
        "delivered": ("success", "delivered"),
        "read": ("success", "read"),
        "failed": ("failure", "failed"),
    }
    not_there = sinch.build(event("failed", error_code=131026))
    assert not_there is not None and not_there["statuses"][0]["state"] == "no_capability"


def test_queued_sms_and_message_events_send_nothing() -> None:
    assert sinch.build(event("queued")) is None
    assert sinch.build(event("delivered", channel="sms")) is None
    assert sinch.build({**event("delivered"), "type": "message.delivered"}) is None


def test_registered_as_a_callback_format_signed_the_standard_way() -> None:
    found = format_named("sinch")
    assert found.build is sinch.build and found.sign is None
