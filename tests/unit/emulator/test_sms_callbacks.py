"""Status callbacks without a network: overrides, form fields, signing, retry decisions
(through httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import pytest

from wafile.core.sms_segments import segments
from wafile.core.twilio_signature import verify_twilio_signature
from wafile.emulator.sms.callbacks import (
    CallbackLog,
    Delivery,
    Overrides,
    deliver,
    parse_overrides,
    status_params,
)
from wafile.emulator.sms.records import Message

ACCOUNT = "AC" + "a1" * 16
SERVICE = "MG" + "b2" * 16
NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def message(**changes: object) -> Message:
    msg = Message(
        sid="SM" + "e5" * 16,
        account_sid=ACCOUNT,
        to="+4915100000001",
        sender="+15550002000",
        messaging_service_sid=None,
        body="hi",
        media_urls=(),
        status_callback="https://example.test/cb",
        segments=segments("hi"),
        created=NOW,
        updated=NOW,
        status="queued",
    )
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


def test_default_overrides_are_twilios() -> None:
    o = parse_overrides("https://example.test/cb")
    assert o == Overrides()
    assert (o.connect_timeout, o.read_timeout, o.total_time) == (5.0, 15.0, 15.0)
    assert o.retry_count == 1 and o.retry_policy == {"ct"}
    assert o.retries("ct") and not o.retries("5xx") and not o.retries("rt")


def test_fragment_overrides_are_read_and_clamped() -> None:
    o = parse_overrides("https://example.test/cb?x=1#ct=250&rt=99999&tt=50&rc=9&rp=4xx,5xx")
    assert o.connect_timeout == 0.25 and o.read_timeout == 15.0 and o.total_time == 0.1
    assert o.retry_count == 5 and o.retry_policy == {"4xx", "5xx"}
    assert o.to_json() == {"ct": 250, "rt": 15000, "tt": 100, "rc": 5, "rp": ["4xx", "5xx"]}
    everything = parse_overrides("https://example.test/cb#rp=all&rc=0")
    assert everything.retries("other") and everything.retry_count == 0
    # Unreadable values and unknown keys leave the defaults.
    assert parse_overrides("https://example.test/cb#rc=many&rp=sometimes&e=ashburn") == Overrides()


def test_status_params_core_set() -> None:
    msg = message()
    assert status_params(msg, "sent", NOW) == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": "+15550002000",
        "MessageSid": msg.sid,
        "MessageStatus": "sent",
        "SmsSid": msg.sid,
        "SmsStatus": "sent",
        "To": "+4915100000001",
    }
    delivered = status_params(msg, "delivered", NOW)
    assert delivered["RawDlrDoneDate"] == "2701150800" and "ErrorCode" not in delivered
    failed = message(messaging_service_sid=SERVICE, error_code=30003)
    params = status_params(failed, "undelivered", NOW)
    assert params["ErrorCode"] == "30003" and params["MessagingServiceSid"] == SERVICE


def test_log_signs_the_url_as_given() -> None:
    log = CallbackLog(size=2)
    url = "https://example.test/cb?t=1#rc=3&rp=all"
    entry = log.add(msg=message(), status="sent", url=url, auth_token="tok", now=NOW)
    assert verify_twilio_signature("tok", url, entry.params, entry.signature)
    assert not verify_twilio_signature("tok", entry.post_url, entry.params, entry.signature)
    assert entry.post_url == "https://example.test/cb?t=1"
    assert entry.overrides.retry_count == 3
    assert dict(parse_qsl(entry.body.decode())) == entry.params
    for status in ("delivered", "read"):
        log.add(msg=message(), status=status, url=url, auth_token="tok", now=NOW)
    assert [e.id for e in log] == [2, 3]  # bounded: the oldest went first
    log.clear()
    assert list(log) == []


Answer = Callable[[httpx.Request], httpx.Response]


async def run(url: str, answers: list[Answer | Exception]) -> tuple[Delivery, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer(request)

    entry = CallbackLog().add(msg=message(), status="sent", url=url, auth_token="tok", now=NOW)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await deliver(client, entry, lambda: NOW)
    return entry, seen


def status(code: int) -> Answer:
    return lambda request: httpx.Response(code)


async def test_a_2xx_delivers_at_once_with_twilios_headers() -> None:
    entry, seen = await run("https://example.test/cb#rc=3&rp=all", [status(204)])
    assert entry.outcome == "delivered" and len(seen) == 1
    request = seen[0]
    assert str(request.url) == "https://example.test/cb"  # no fragment on the wire
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["x-twilio-signature"] == entry.signature
    assert request.headers["user-agent"] == "TwilioProxy/1.1"
    assert dict(parse_qsl(request.content.decode())) == entry.params


async def test_by_default_a_5xx_is_recorded_not_retried() -> None:
    entry, seen = await run("https://example.test/cb", [status(500), status(200)])
    assert entry.outcome == "failed" and len(seen) == 1
    assert [a.status_code for a in entry.attempts] == [500]


async def test_by_default_a_connect_failure_is_retried_once() -> None:
    refused = httpx.ConnectError("refused")
    entry, seen = await run("https://example.test/cb", [refused, refused, status(200)])
    assert entry.outcome == "failed" and len(seen) == 2
    assert all(a.status_code is None and (a.error or "").startswith("ct") for a in entry.attempts)
    entry, seen = await run("https://example.test/cb", [refused, status(200)])
    assert entry.outcome == "delivered" and len(seen) == 2


@pytest.mark.parametrize(
    ("fragment", "answers", "attempts", "outcome"),
    [
        ("#rc=3&rp=5xx", [status(503), status(502), status(200)], 3, "delivered"),
        ("#rc=2&rp=5xx", [status(503)], 3, "failed"),
        ("#rc=3&rp=5xx", [status(404)], 1, "failed"),
        ("#rc=3&rp=4xx", [status(404), status(200)], 2, "delivered"),
        ("#rc=1&rp=rt", [httpx.ReadTimeout("slow"), status(200)], 2, "delivered"),
        ("#rc=1&rp=ct", [httpx.ReadTimeout("slow"), status(200)], 1, "failed"),
        ("#rc=0&rp=all", [status(500), status(200)], 1, "failed"),
        ("#rc=5&rp=all", [status(301), status(200)], 2, "delivered"),
    ],
)
async def test_overrides_decide_the_retries(
    fragment: str, answers: list[Answer | Exception], attempts: int, outcome: str
) -> None:
    entry, seen = await run("https://example.test/cb" + fragment, answers)
    assert len(seen) == attempts == len(entry.attempts)
    assert entry.outcome == outcome
