"""Issue 5's "done" scenario for the SMS emulator, end to end over real HTTP: an SMS is
sent, and its `delivered` status arrives by a callback signed as Twilio signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.emulator.test_sms_harness import (
    Harness,
    Servers,
    emulator_running,
    running_servers,
    signed_ok,
)

ACCOUNT = "AC" + "d4" * 16
TOKEN = "sandbox-token"
FROM = "+15550001000"
TO = "+4915100000099"  # declared nowhere: the ordinary handset


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def sms(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers, {}) as h:  # an empty world: set up over HTTP
        yield h


async def test_done_scenario(sms: Harness) -> None:
    resp = await sms.control(
        "PUT", f"/accounts/{ACCOUNT}", json={"auth_token": TOKEN, "from_numbers": [FROM]}
    )
    assert resp.status_code == 201, resp.text

    hook = sms.hook_url("sms-status", "?tenant=acme")
    sent = await sms.send(
        {
            "To": TO,
            "From": FROM,
            "Body": "Your file is ready: https://example.test/f/1",
            "StatusCallback": hook,
        },
        account=ACCOUNT,
        token=TOKEN,
    )
    assert sent.status_code == 201, sent.text
    message = sent.json()
    sid = message["sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    assert message["status"] == "queued" and message["num_segments"] == "1"

    posts = await sms.wait_callbacks(sid, ["sending", "sent", "delivered"])
    delivered = posts[-1]
    assert delivered.form["MessageStatus"] == "delivered"
    assert delivered.form["AccountSid"] == ACCOUNT and delivered.form["To"] == TO
    assert delivered.headers["content-type"] == "application/x-www-form-urlencoded"
    for post in posts:
        assert signed_ok(post, hook, TOKEN)
        assert not signed_ok(post, hook, "another-token")
        # Independently: HMAC-SHA1 over the URL and the sorted name+value pairs.
        signed = hook + "".join(k + v for k, v in sorted(post.fields))
        digest = hmac.new(TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
        assert post.headers["x-twilio-signature"] == base64.b64encode(digest).decode()

    fetched = await sms.fetch(sid, account=ACCOUNT, token=TOKEN)
    assert fetched.status_code == 200 and fetched.json()["status"] == "delivered"
    [entry] = await sms.inbox(TO)
    assert entry["sid"] == sid and entry["status"] == "delivered"
    assert entry["body"].startswith("Your file is ready")
