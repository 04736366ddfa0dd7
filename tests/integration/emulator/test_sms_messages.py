"""The Messages API over real HTTP: auth, the resource, statuses, validation, magic numbers."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.emulator.test_sms_harness import (
    ACCOUNT,
    FROM,
    OTHER_ACCOUNT,
    OTHER_TOKEN,
    PHONE,
    SERVICE,
    START,
    TOKEN,
    Harness,
    Servers,
    emulator_running,
    running_servers,
    settle,
    twilio_error,
)
from wafile.emulator.sms import INVALID, OPTED_OUT, UNDELIVERED

ORDINARY = "+4915100000042"  # declared nowhere
RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def sms(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


async def test_create_answers_201_with_twilios_message_json(sms: Harness) -> None:
    resp = await sms.send({"To": PHONE, "From": FROM, "Body": "Hello there"})
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert re.fullmatch(r"RQ[0-9a-f]{32}", resp.headers["twilio-request-id"])
    body = resp.json()
    sid = body["sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}"
    assert body == {
        "account_sid": ACCOUNT,
        "api_version": "2010-04-01",
        "body": "Hello there",
        "date_created": "Fri, 15 Jan 2027 08:00:00 +0000",
        "date_sent": None,
        "date_updated": "Fri, 15 Jan 2027 08:00:00 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": FROM,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{path}/Media.json"},
        "to": PHONE,
        "uri": f"{path}.json",
    }
    assert START == 1_800_000_000.0  # the date above is the harness clock's


async def test_statuses_progress_to_delivered_and_get_shows_them(sms: Harness) -> None:
    sid = (await sms.sent({"To": ORDINARY}))["sid"]
    sms.clock.advance(60)
    delivered = await sms.wait_status(sid, "delivered")
    assert RFC2822.fullmatch(delivered["date_sent"])
    assert delivered["date_updated"] == "Fri, 15 Jan 2027 08:01:00 +0000"
    assert delivered["date_created"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert delivered["error_code"] is None and delivered["price"] is None
    resp = await sms.control("GET", f"/messages/{sid}")
    history = [h["status"] for h in resp.json()["history"]]
    assert history == ["queued", "sending", "sent", "delivered"]


async def test_segments_and_encoding_in_num_segments(sms: Harness) -> None:
    cases = [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("{" * 80, "1"),
        ("{" * 81, "2"),
        ("Grüße 😀", "1"),
        ("😀" * 35, "1"),
        ("😀" * 36, "2"),
        ("a" * 1600, "11"),
    ]
    for text, expected in cases:
        body = await sms.sent({"To": ORDINARY, "Body": text})
        assert body["num_segments"] == expected, text
        assert body["body"] == text


async def test_body_limit_is_1600_characters(sms: Harness) -> None:
    assert (await sms.send({"To": ORDINARY, "From": FROM, "Body": "é" * 1600})).status_code == 201
    resp = await sms.send({"To": ORDINARY, "From": FROM, "Body": "é" * 1601})
    twilio_error(resp, 400, 21617)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"From": FROM, "Body": "x"}, 21604),
        ({"To": ORDINARY, "Body": "x"}, 21603),
        ({"To": ORDINARY, "From": FROM}, 21602),
        ({"To": ORDINARY, "MessagingServiceSid": SERVICE}, 21619),
        ({"To": "004915100000001", "From": FROM, "Body": "x"}, 21211),
        ({"To": ORDINARY, "From": "+15559999999", "Body": "x"}, 21606),
        ({"To": ORDINARY, "MessagingServiceSid": "MG42", "Body": "x"}, 21705),
        ({"To": ORDINARY, "MessagingServiceSid": "MG" + "0" * 32, "Body": "x"}, 21701),
        ({"To": ORDINARY, "From": FROM, "Body": "x", "StatusCallback": "nope"}, 21609),
    ],
)
async def test_validation_errors(sms: Harness, fields: dict[str, str], code: int) -> None:
    twilio_error(await sms.send(fields), 400, code)
    listed = await sms.control("GET", "/messages")
    assert listed.json()["messages"] == []  # a refused request creates no message


async def test_media_urls(sms: Harness) -> None:
    urls = [("MediaUrl", f"https://files.example/{i}.png") for i in range(2)]
    resp = await sms.send([("To", ORDINARY), ("From", FROM), *urls])
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert re.fullmatch(r"MM[0-9a-f]{32}", body["sid"])
    assert body["num_media"] == "2" and body["num_segments"] == "1" and body["body"] == ""
    many = [("MediaUrl", f"https://files.example/{i}.png") for i in range(11)]
    twilio_error(await sms.send([("To", ORDINARY), ("From", FROM), *many]), 400, 21623)
    bad = [("MediaUrl", "gopher://files.example/a.png")]
    twilio_error(await sms.send([("To", ORDINARY), ("From", FROM), *bad]), 400, 21620)


async def test_a_json_body_holds_no_fields(sms: Harness) -> None:
    resp = await sms.client.post(
        f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        json={"To": ORDINARY, "From": FROM, "Body": "x"},
        auth=(ACCOUNT, TOKEN),
    )
    twilio_error(resp, 400, 21604)


async def test_wrong_credentials_get_twilios_401(sms: Harness) -> None:
    fields = {"To": ORDINARY, "From": FROM, "Body": "x"}
    attempts = [
        await sms.send(fields, token=None),
        await sms.send(fields, token="wrong"),
        await sms.send(fields, user=OTHER_ACCOUNT, token=OTHER_TOKEN),  # not this account
        await sms.send(fields, account="AC" + "9" * 32, token=TOKEN),
        await sms.client.post(
            f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            data=fields,
            headers={"Authorization": "Basic !!!"},
        ),
        await sms.client.post(
            f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            data=fields,
            headers={"Authorization": "Basic " + base64.b64encode(ACCOUNT.encode()).decode()},
        ),
        await sms.client.post(
            f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            data=fields,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ),
    ]
    for resp in attempts:
        body = twilio_error(resp, 401, 20003)
        assert body["message"] == "Authenticate"
        assert body["detail"] == "Your AccountSid or AuthToken was incorrect."
        assert resp.headers["www-authenticate"] == 'Basic realm="Twilio API"'
    # Auth comes before validation: an empty form with bad credentials is still a 401.
    twilio_error(await sms.send({}, token="wrong"), 401, 20003)
    twilio_error(await sms.fetch("SM" + "0" * 32, token="wrong"), 401, 20003)


async def test_get_unknown_or_foreign_message_is_20404(sms: Harness) -> None:
    sid = (await sms.sent({"To": ORDINARY}))["sid"]
    missing = "SM" + "0" * 32
    body = twilio_error(await sms.fetch(missing), 404, 20404)
    assert missing in body["message"]
    # Another account cannot read it either.
    twilio_error(await sms.fetch(sid, account=OTHER_ACCOUNT, token=OTHER_TOKEN), 404, 20404)
    assert (await sms.fetch(sid)).status_code == 200


async def test_unknown_routes_and_methods_answer_twilio_json(sms: Harness) -> None:
    resp = await sms.client.get("/2010-04-01/Accounts/AC1/Calls.json")
    twilio_error(resp, 404, 20404)
    resp = await sms.client.delete(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    twilio_error(resp, 405, 20004)


async def test_messaging_service_starts_accepted_then_picks_a_sender(sms: Harness) -> None:
    body = await sms.sent({"To": ORDINARY, "From": "", "MessagingServiceSid": SERVICE})
    assert body["status"] == "accepted" and body["from"] is None
    assert body["num_segments"] == "0" and body["messaging_service_sid"] == SERVICE
    delivered = await sms.wait_status(body["sid"], "delivered")
    assert delivered["from"] == FROM and delivered["num_segments"] == "1"
    resp = await sms.control("GET", f"/messages/{body['sid']}")
    history = [h["status"] for h in resp.json()["history"]]
    assert history == ["accepted", "queued", "sending", "sent", "delivered"]


async def test_magic_invalid_number_is_refused_at_once(sms: Harness) -> None:
    body = twilio_error(await sms.send({"To": INVALID, "From": FROM, "Body": "x"}), 400, 21211)
    assert INVALID in body["message"]
    assert await sms.inbox(INVALID) == []


async def test_magic_opted_out_number_is_refused_at_once(sms: Harness) -> None:
    twilio_error(await sms.send({"To": OPTED_OUT, "From": FROM, "Body": "x"}), 400, 21610)
    assert await sms.inbox(OPTED_OUT) == []


async def test_magic_undelivered_number(sms: Harness) -> None:
    body = await sms.sent({"To": UNDELIVERED})
    assert body["status"] == "queued"
    undelivered = await sms.wait_status(body["sid"], "undelivered")
    assert undelivered["error_code"] == 30003
    assert undelivered["error_message"] == "Unreachable destination handset"
    assert undelivered["date_sent"] is not None


async def test_a_phone_scripted_to_fail_ends_failed_without_sent(sms: Harness) -> None:
    resp = await sms.control("PUT", f"/phones/{ORDINARY}", json={"fail_with": 30001})
    assert resp.status_code == 201, resp.text
    sid = (await sms.sent({"To": ORDINARY}))["sid"]
    failed = await sms.wait_status(sid, "failed")
    assert failed["error_code"] == 30001 and failed["date_sent"] is None
    details = (await sms.control("GET", f"/messages/{sid}")).json()
    assert [h["status"] for h in details["history"]] == ["queued", "sending", "failed"]


async def test_scripted_rate_limit_and_server_errors(sms: Harness) -> None:
    for code, status in ((20429, 429), (20503, 503), (21614, 400), (21408, 400)):
        resp = await sms.control("PUT", f"/phones/{ORDINARY}", json={"fail_with": code})
        assert resp.status_code in {200, 201}, resp.text
        twilio_error(await sms.send({"To": ORDINARY, "From": FROM, "Body": "x"}), status, code)


async def test_a_phone_without_delivery_report_stays_sent(sms: Harness) -> None:
    await sms.control("PUT", f"/phones/{ORDINARY}", json={"deliver_after": None})
    sid = (await sms.sent({"To": ORDINARY}))["sid"]
    await sms.wait_status(sid, "sent")
    await settle()
    assert await sms.status_of(sid) == "sent"
