"""The control API over real HTTP, the control token, reset, and the app mounted under a
prefix (as `wafile serve` mounts it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.emulator.test_sms_harness import (
    ACCOUNT,
    FROM,
    PHONE,
    SERVICE,
    TOKEN,
    Harness,
    Servers,
    emulator_running,
    running_servers,
    settle,
    signed_ok,
    twilio_error,
    world_document,
)
from wafile.emulator.sms import INVALID, OPTED_OUT, UNDELIVERED

ORDINARY = "+4915100000042"
NEW_ACCOUNT = "AC" + "e7" * 16


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def sms(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


def error_of(resp: Any, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["status"] == status
    return str(body["message"])


async def test_world_hides_secrets_and_lists_magic_numbers(sms: Harness) -> None:
    world = (await sms.control("GET", "/world")).json()
    assert world["accounts"][0] == {
        "account_sid": ACCOUNT,
        "from_numbers": [FROM, "+15550002001"],
        "messaging_services": [SERVICE],
    }
    assert world["phones"] == [{"number": PHONE, "deliver_after": 0.5, "fail_with": None}]
    assert world["timing"] == {"scale": 0.01, "step": 0.1}
    assert world["control_token_set"] is False
    magic = {p["number"]: p["fail_with"] for p in world["magic_phones"]}
    assert magic == {UNDELIVERED: 30003, INVALID: 21211, OPTED_OUT: 21610}
    accounts = (await sms.control("GET", "/accounts")).json()["accounts"]
    assert [a["account_sid"] for a in accounts] == [ACCOUNT, "AC" + "c3" * 16]
    assert all("auth_token" not in a for a in accounts)


async def test_accounts_can_be_added_changed_and_removed(sms: Harness) -> None:
    fields = {"To": ORDINARY, "From": "+15550004000", "Body": "x"}
    twilio_error(await sms.send(fields, account=NEW_ACCOUNT, token="t1"), 401, 20003)
    doc = {"auth_token": "t1", "from_numbers": ["+15550004000"]}
    resp = await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json=doc)
    assert resp.status_code == 201 and resp.json()["created"] is True
    assert "auth_token" not in resp.json()["account"]
    assert (await sms.send(fields, account=NEW_ACCOUNT, token="t1")).status_code == 201
    # A new token takes over at once.
    resp = await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json={**doc, "auth_token": "t2"})
    assert resp.status_code == 200 and resp.json()["created"] is False
    twilio_error(await sms.send(fields, account=NEW_ACCOUNT, token="t1"), 401, 20003)
    assert (await sms.send(fields, account=NEW_ACCOUNT, token="t2")).status_code == 201
    resp = await sms.control("DELETE", f"/accounts/{NEW_ACCOUNT}")
    assert resp.status_code == 200 and resp.json() == {"deleted": True}
    twilio_error(await sms.send(fields, account=NEW_ACCOUNT, token="t2"), 401, 20003)
    assert "no account" in error_of(await sms.control("DELETE", f"/accounts/{NEW_ACCOUNT}"), 404)


async def test_account_changes_are_validated(sms: Harness) -> None:
    message = error_of(await sms.control("PUT", "/accounts/AC12", json={"auth_token": "x"}), 400)
    assert "account.account_sid" in message
    message = error_of(
        await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json={"auth_token": "x", "x": 1}),
        400,
    )
    assert "account.x: unknown field" in message
    taken = {"auth_token": "x", "from_numbers": [FROM]}
    message = error_of(await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json=taken), 400)
    assert "declared by another account" in message
    other_sid = {"account_sid": ACCOUNT, "auth_token": "x"}
    message = error_of(await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json=other_sid), 400)
    assert "differs from the URL" in message
    message = error_of(
        await sms.client.put(f"/_control/accounts/{NEW_ACCOUNT}", content=b"{not json"), 400
    )
    assert "not valid JSON" in message
    assert "must be a mapping" in error_of(
        await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json=[1]), 400
    )


async def test_phones_can_be_scripted(sms: Harness) -> None:
    view = (await sms.control("GET", f"/phones/{ORDINARY}")).json()
    assert view == {
        "number": ORDINARY,
        "deliver_after": 0.5,
        "fail_with": None,
        "source": "default",
    }
    assert (await sms.control("GET", f"/phones/{UNDELIVERED}")).json()["source"] == "magic"
    resp = await sms.control("PUT", f"/phones/{ORDINARY}", json={"fail_with": 21610})
    assert resp.status_code == 201 and resp.json()["phone"]["fail_with"] == 21610
    twilio_error(await sms.send({"To": ORDINARY, "From": FROM, "Body": "x"}), 400, 21610)
    # A declared phone wins over the magic: the undelivered number now delivers.
    resp = await sms.control("PUT", f"/phones/{UNDELIVERED}", json={"deliver_after": 0})
    assert resp.status_code == 201
    sid = (await sms.sent({"To": UNDELIVERED}))["sid"]
    await sms.wait_status(sid, "delivered")
    # Removing the declaration brings the ordinary behaviour back.
    assert (await sms.control("DELETE", f"/phones/{ORDINARY}")).status_code == 200
    assert (await sms.send({"To": ORDINARY, "From": FROM, "Body": "x"})).status_code == 201
    assert "no declared phone" in error_of(await sms.control("DELETE", f"/phones/{ORDINARY}"), 404)
    # Phone numbers in the path may omit the +.
    resp = await sms.control("PUT", "/phones/4915100000044", json={"deliver_after": None})
    assert resp.json()["phone"]["number"] == "+4915100000044"


async def test_phone_changes_are_validated(sms: Harness) -> None:
    message = error_of(await sms.control("PUT", f"/phones/{ORDINARY}", json={"fail_with": 1}), 400)
    assert "phone.fail_with" in message
    bad_delay = {"deliver_after": -2}
    message = error_of(await sms.control("PUT", f"/phones/{ORDINARY}", json=bad_delay), 400)
    assert "phone.deliver_after" in message
    assert "E.164" in error_of(await sms.control("GET", "/phones/12ab"), 400)
    other = {"number": "+4915100000099"}
    assert "differs" in error_of(await sms.control("PUT", f"/phones/{ORDINARY}", json=other), 400)


async def test_inbox_lists_every_message_a_phone_received(sms: Harness) -> None:
    first = await sms.sent({"To": PHONE, "Body": "first"})
    second = await sms.sent({"To": PHONE, "Body": "zweite 😀"})
    await sms.sent({"To": ORDINARY, "Body": "not for PHONE"})
    await sms.wait_status(second["sid"], "delivered")
    await sms.wait_status(first["sid"], "delivered")
    inbox = await sms.inbox(PHONE)
    assert [(m["sid"], m["body"], m["status"]) for m in inbox] == [
        (first["sid"], "first", "delivered"),
        (second["sid"], "zweite 😀", "delivered"),
    ]
    assert inbox[1]["encoding"] == "UCS-2" and inbox[1]["from"] == FROM
    assert await sms.inbox(PHONE.lstrip("+")) == inbox
    assert await sms.inbox("+4915100000077") == []


async def test_messages_list_and_details(sms: Harness) -> None:
    a = await sms.sent({"To": PHONE, "StatusCallback": sms.hook_url()})
    b = await sms.sent({"To": ORDINARY, "From": "", "MessagingServiceSid": SERVICE})
    listed = (await sms.control("GET", "/messages")).json()["messages"]
    assert [m["sid"] for m in listed] == [a["sid"], b["sid"]]
    only = await sms.control("GET", "/messages", params={"to": ORDINARY})
    assert [m["sid"] for m in only.json()["messages"]] == [b["sid"]]
    by_service = await sms.control("GET", "/messages", params={"messaging_service_sid": SERVICE})
    assert [m["sid"] for m in by_service.json()["messages"]] == [b["sid"]]
    details = (await sms.control("GET", f"/messages/{a['sid']}")).json()
    assert details["url"] == f"{sms.servers.host.url}{a['uri']}"
    assert details["status_callback"] == sms.hook_url() and details["encoding"] == "GSM-7"
    assert details["history"][0]["status"] == "queued"
    assert "unknown filter" in error_of(
        await sms.control("GET", "/messages", params={"body": "x"}), 400
    )
    assert "no message" in error_of(await sms.control("GET", "/messages/SM00"), 404)


async def test_timing_can_be_changed_at_run_time(sms: Harness) -> None:
    resp = await sms.control("PATCH", "/timing", json={"scale": 0})
    assert resp.json() == {"scale": 0.0, "step": 0.1}
    assert (await sms.control("GET", "/timing")).json() == {"scale": 0.0, "step": 0.1}
    assert "timing.step" in error_of(await sms.control("PATCH", "/timing", json={"step": "x"}), 400)
    assert "timing.speed" in error_of(await sms.control("PATCH", "/timing", json={"speed": 1}), 400)


async def test_reset_forgets_messages_and_changes_and_cancels_work(sms: Harness) -> None:
    await sms.control("PUT", f"/accounts/{NEW_ACCOUNT}", json={"auth_token": "t"})
    await sms.control("PUT", f"/phones/{ORDINARY}", json={"deliver_after": 30})
    sid = (await sms.sent({"To": ORDINARY, "StatusCallback": sms.hook_url()}))["sid"]
    await sms.wait_status(sid, "sent")
    resp = await sms.control("POST", "/reset")
    assert resp.json() == {"reset": True}
    assert (await sms.control("GET", "/messages")).json()["messages"] == []
    assert await sms.inbox(ORDINARY) == []
    assert await sms.callbacks() == []
    accounts = (await sms.control("GET", "/accounts")).json()["accounts"]
    assert NEW_ACCOUNT not in [a["account_sid"] for a in accounts]
    assert (await sms.control("GET", f"/phones/{ORDINARY}")).json()["source"] == "default"
    twilio_error(await sms.fetch(sid), 404, 20404)
    await settle()
    assert sms.emulator.pending_tasks == 0  # the 30-second delivery was cancelled


async def test_unknown_control_routes_answer_json(sms: Harness) -> None:
    assert "no control route" in error_of(await sms.control("GET", "/nothing"), 404)
    assert "no control route" in error_of(await sms.control("POST", "/world"), 405)


async def test_control_token_guards_every_route(servers: Servers) -> None:
    document = {**world_document(), "control_token": "ctl-secret"}
    async with emulator_running(servers, document) as sms:
        for path in ("/world", "/messages", "/callbacks", "/phones", f"/phones/{PHONE}/inbox"):
            assert "Bearer" in error_of(await sms.control("GET", path), 401)
            wrong = {"Authorization": "Bearer nope"}
            assert error_of(await sms.control("GET", path, headers=wrong), 401)
        assert error_of(await sms.control("POST", "/reset"), 401)
        good = {"Authorization": "Bearer ctl-secret"}
        world = await sms.control("GET", "/world", headers=good)
        assert world.status_code == 200 and world.json()["control_token_set"] is True
        assert "ctl-secret" not in world.text
        # The Twilio API itself does not take the control token.
        assert (await sms.send({"To": PHONE, "From": FROM, "Body": "x"})).status_code == 201


async def test_mounted_under_a_prefix(servers: Servers) -> None:
    async with emulator_running(servers, mount="/_emulator/sms") as sms:
        hook = sms.hook_url()
        body = await sms.sent({"To": PHONE, "StatusCallback": hook})
        sid = body["sid"]
        path = f"/_emulator/sms/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}"
        assert body["uri"] == f"{path}.json"
        assert body["subresource_uris"]["media"] == f"{path}/Media.json"
        # The uri resolves against the host: it is where GET Message answers.
        got = await sms.client.get(f"{sms.servers.host.url}{body['uri']}", auth=(ACCOUNT, TOKEN))
        assert got.status_code == 200 and got.json()["sid"] == sid
        posts = await sms.wait_callbacks(sid, ["sending", "sent", "delivered"])
        assert all(signed_ok(p, hook) for p in posts)
        details = (await sms.control("GET", f"/messages/{sid}")).json()
        assert details["url"] == f"{sms.servers.host.url}{path}.json"
        assert details["uri"] == f"{path}.json"
        unknown = await sms.client.get("/2010-04-01/Nothing.json")
        body = twilio_error(unknown, 404, 20404)
        assert "/2010-04-01/Nothing.json" in body["message"]
        assert "no control route" in error_of(await sms.control("GET", "/nothing"), 404)
