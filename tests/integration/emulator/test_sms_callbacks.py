"""Status callbacks over real HTTP: form POSTs signed as Twilio signs, one per status
change and in order, retries as the URL's overrides allow, and the delivery log."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.emulator.test_sms_harness import (
    ACCOUNT,
    FROM,
    OTHER_ACCOUNT,
    OTHER_FROM,
    OTHER_TOKEN,
    PHONE,
    SERVICE,
    TOKEN,
    Harness,
    Servers,
    emulator_running,
    running_servers,
    settle,
    signed_ok,
)
from tests.support import free_port
from wafile.emulator.sms import UNDELIVERED

ORDINARY = "+4915100000042"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def sms(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


async def test_one_signed_form_post_per_status_change_in_order(sms: Harness) -> None:
    hook = sms.hook_url("status", "?tenant=acme&x=a%20b")
    sid = (await sms.sent({"To": PHONE, "StatusCallback": hook}))["sid"]
    posts = await sms.wait_callbacks(sid, ["sending", "sent", "delivered"])
    for post in posts:
        assert post.headers["content-type"] == "application/x-www-form-urlencoded"
        assert post.headers["user-agent"] == "TwilioProxy/1.1"
        assert post.path == "/cb/status" and post.query == "tenant=acme&x=a%20b"
        assert signed_ok(post, hook)
        assert not signed_ok(post, sms.hook_url("status"))  # the query is signed too
        assert not signed_ok(post, hook, OTHER_TOKEN)
        form = post.form
        assert form["MessageSid"] == form["SmsSid"] == sid
        assert form["MessageStatus"] == form["SmsStatus"] == post.status
        assert form["AccountSid"] == ACCOUNT and form["ApiVersion"] == "2010-04-01"
        assert form["From"] == FROM and form["To"] == PHONE
        assert "ErrorCode" not in form and "MessagingServiceSid" not in form
    assert re.fullmatch(r"\d{10}", posts[-1].form["RawDlrDoneDate"])
    assert "RawDlrDoneDate" not in posts[0].form
    await settle()
    assert len(sms.receiver.all_posts()) == 3  # nothing for the initial `queued`


async def test_undelivered_carries_the_error_code(sms: Harness) -> None:
    hook = sms.hook_url()
    sid = (await sms.sent({"To": UNDELIVERED, "StatusCallback": hook}))["sid"]
    *_, last = await sms.wait_callbacks(sid, ["sending", "sent", "undelivered"])
    assert last.form["ErrorCode"] == "30003" and signed_ok(last, hook)


async def test_failed_carries_the_error_code(sms: Harness) -> None:
    await sms.control("PUT", f"/phones/{ORDINARY}", json={"fail_with": 30007})
    await sms.control("PUT", "/phones/+4915100000043", json={"fail_with": 30002})
    hook = sms.hook_url()
    undelivered = (await sms.sent({"To": ORDINARY, "StatusCallback": hook}))["sid"]
    failed = (await sms.sent({"To": "+4915100000043", "StatusCallback": hook}))["sid"]
    *_, last = await sms.wait_callbacks(undelivered, ["sending", "sent", "undelivered"])
    assert last.form["ErrorCode"] == "30007"
    *_, last = await sms.wait_callbacks(failed, ["sending", "failed"])
    assert last.form["ErrorCode"] == "30002"


async def test_messaging_service_callbacks_start_at_queued(sms: Harness) -> None:
    hook = sms.hook_url()
    body = await sms.sent(
        {"To": ORDINARY, "From": "", "MessagingServiceSid": SERVICE, "StatusCallback": hook}
    )
    posts = await sms.wait_callbacks(body["sid"], ["queued", "sending", "sent", "delivered"])
    assert all(p.form["MessagingServiceSid"] == SERVICE for p in posts)
    assert all(p.form["From"] == FROM and signed_ok(p, hook) for p in posts)


async def test_signed_with_the_token_of_the_sending_account(sms: Harness) -> None:
    hook = sms.hook_url()
    sid = (
        await sms.sent(
            {"To": ORDINARY, "From": OTHER_FROM, "StatusCallback": hook},
            account=OTHER_ACCOUNT,
            token=OTHER_TOKEN,
        )
    )["sid"]
    posts = await sms.wait_callbacks(sid, ["sending", "sent", "delivered"])
    assert all(signed_ok(p, hook, OTHER_TOKEN) and not signed_ok(p, hook, TOKEN) for p in posts)


async def test_without_status_callback_nothing_is_posted(sms: Harness) -> None:
    sid = (await sms.sent({"To": PHONE}))["sid"]
    await sms.wait_status(sid, "delivered")
    await settle()
    assert sms.receiver.all_posts() == []
    assert await sms.callbacks(message_sid=sid) == []


async def test_non_2xx_is_recorded_and_by_default_not_retried(sms: Harness) -> None:
    sms.receiver.fail_next = 1
    sms.receiver.fail_status = 500
    hook = sms.hook_url()
    sid = (await sms.sent({"To": PHONE, "StatusCallback": hook}))["sid"]
    entries = await sms.settled_log(sid, 3)
    assert [e["status"] for e in entries] == ["sending", "sent", "delivered"]
    first = entries[0]
    assert first["outcome"] == "failed" and first["response_status"] == 500
    assert [a["status_code"] for a in first["attempts"]] == [500]
    assert all(e["outcome"] == "delivered" for e in entries[1:])
    assert [p.answered for p in sms.receiver.all_posts()] == [500, 200, 200]
    # The log holds exactly what was posted and signed.
    assert first["url"] == hook and first["params"]["MessageStatus"] == "sending"
    assert first["overrides"] == {"ct": 5000, "rt": 15000, "tt": 15000, "rc": 1, "rp": ["ct"]}
    assert first["signature"] == sms.receiver.all_posts()[0].headers["x-twilio-signature"]


async def test_retries_as_the_fragment_allows_and_signs_the_url_as_given(sms: Harness) -> None:
    sms.receiver.fail_next = 2
    sms.receiver.fail_status = 503
    hook = sms.hook_url("retry", "#rc=3&rp=5xx")
    sid = (await sms.sent({"To": PHONE, "StatusCallback": hook}))["sid"]
    posts = await sms.wait_callbacks(sid, ["sending", "sent", "delivered"])
    assert [p.answered for p in sms.receiver.all_posts()] == [503, 503, 200, 200, 200]
    for post in posts:
        assert post.path == "/cb/retry" and post.query == ""  # the fragment is not sent
        assert signed_ok(post, hook)  # ...but it is signed
    entries = await sms.settled_log(sid, 3)
    assert [a["status_code"] for a in entries[0]["attempts"]] == [503, 503, 200]
    assert entries[0]["outcome"] == "delivered"
    times = [a["at"] for a in entries[0]["attempts"]]
    assert times == sorted(times)


async def test_a_4xx_is_retried_only_when_asked(sms: Harness) -> None:
    sms.receiver.fail_next = 1
    sms.receiver.fail_status = 404
    sid = (await sms.sent({"To": PHONE, "StatusCallback": sms.hook_url("x", "#rp=5xx")}))["sid"]
    entries = await sms.settled_log(sid, 3)
    assert entries[0]["outcome"] == "failed"
    assert [a["status_code"] for a in entries[0]["attempts"]] == [404]


async def test_unreachable_endpoint_is_retried_once_then_failed(sms: Harness) -> None:
    dead = f"http://127.0.0.1:{free_port()}/cb"  # nothing listens there
    sid = (await sms.sent({"To": PHONE, "StatusCallback": dead}))["sid"]
    entries = await sms.settled_log(sid, 3)
    assert [e["status"] for e in entries] == ["sending", "sent", "delivered"]
    for entry in entries:
        assert entry["outcome"] == "failed" and entry["response_status"] is None
        assert len(entry["attempts"]) == 2  # Twilio's default: rc=1 for connect failures
        assert all(a["error"].startswith("ct") for a in entry["attempts"])
    # Lost callbacks do not hold the message back: GET Message still shows the truth.
    assert await sms.status_of(sid) == "delivered"


async def test_read_timeout_then_retry_keeps_the_order(sms: Harness) -> None:
    sms.receiver.stall_next = 1
    sms.receiver.stall_seconds = 0.6
    hook = sms.hook_url("slow", "#rt=150&rc=1&rp=rt")
    sid = (await sms.sent({"To": PHONE, "StatusCallback": hook}))["sid"]
    posts = await sms.wait_callbacks(sid, ["sending", "sent", "delivered"])
    assert all(signed_ok(p, hook) for p in posts)
    entries = await sms.settled_log(sid, 3)
    first = entries[0]
    assert first["outcome"] == "delivered"
    assert [a["status_code"] for a in first["attempts"]] == [None, 200]
    assert first["attempts"][0]["error"].startswith("rt")
    # The first post stalled, its retry went through, and only then came the others.
    arrived = [(p.status, p.answered) for p in sms.receiver.all_posts()]
    assert arrived == [("sending", 0), ("sending", 200), ("sent", 200), ("delivered", 200)]
    assert await sms.status_of(sid) == "delivered"


async def test_callback_log_filters(sms: Harness) -> None:
    hook = sms.hook_url()
    first = (await sms.sent({"To": PHONE, "StatusCallback": hook}))["sid"]
    second = (await sms.sent({"To": ORDINARY, "StatusCallback": hook}))["sid"]
    await sms.wait_callbacks(first, ["sending", "sent", "delivered"])
    await sms.wait_callbacks(second, ["sending", "sent", "delivered"])
    assert [e["message_sid"] for e in await sms.callbacks(status="delivered")] == [first, second]
    assert len(await sms.callbacks(message_sid=second)) == 3
    assert len(await sms.callbacks(outcome="delivered")) == 6
    resp = await sms.control("GET", "/callbacks", params={"colour": "red"})
    assert resp.status_code == 400 and "colour" in resp.json()["error"]["message"]
