"""The send request's checks, Twilio's error JSON and its Message resource, without HTTP."""

from __future__ import annotations

import pytest

from wafile.core.sms_segments import segments
from wafile.emulator.sms.errors import (
    ASYNC_ERRORS,
    SYNC_ERRORS,
    TwilioError,
    auth_failed,
    scripted_refusal,
)
from wafile.emulator.sms.records import Message, rfc2822
from wafile.emulator.sms.sending import BODY_MAX, MEDIA_MAX, parse_send
from wafile.emulator.sms.world import Account

SERVICE = "MG" + "b2" * 16
ACCOUNT = Account(
    account_sid="AC" + "a1" * 16,
    auth_token="tok",
    from_numbers=("+15550002000",),
    messaging_services=(SERVICE,),
)
BASE = {"To": "+4915100000001", "From": "+15550002000", "Body": "hi"}


def fields(**changes: str | None) -> list[tuple[str, str]]:
    merged = {**BASE, **changes}
    return [(k, v) for k, v in merged.items() if v is not None]


def refused(items: list[tuple[str, str]]) -> TwilioError:
    with pytest.raises(TwilioError) as caught:
        parse_send(ACCOUNT, items)
    return caught.value


@pytest.mark.parametrize(
    ("items", "code"),
    [
        (fields(To=None), 21604),
        (fields(To="  "), 21604),
        (fields(From=None), 21603),
        (fields(Body=None), 21602),
        (fields(Body=""), 21602),
        (fields(From=None, MessagingServiceSid=SERVICE, Body=None), 21619),
        (fields(Body="x" * (BODY_MAX + 1)), 21617),
        (fields(To="4915100000001"), 21211),
        (fields(To="+49 151 00000001"), 21211),
        (fields(To="whatsapp:+4915100000001"), 21211),
        (fields(To="+15550002000"), 21211),  # a Twilio number cannot message itself
        (fields(From="+15559999999"), 21606),
        (fields(MessagingServiceSid="MG123"), 21705),
        (fields(MessagingServiceSid="MG" + "0" * 32), 21701),
        (fields(StatusCallback="not a url"), 21609),
        (fields(StatusCallback="ftp://example.test/cb"), 21609),
        (fields(StatusCallback="https://example.test:99999/cb"), 21609),
        (fields(StatusCallback="https://example.test/" + "x" * 4000), 21609),
        ([*fields(), ("MediaUrl", "file:///etc/passwd")], 21620),
        ([*fields(), *[("MediaUrl", f"https://example.test/{i}.png") for i in range(11)]], 21623),
    ],
)
def test_refusals_carry_twilios_codes(items: list[tuple[str, str]], code: int) -> None:
    error = refused(items)
    assert error.code == code and error.status == 400
    assert error.to_json() == {
        "code": code,
        "message": error.message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


def test_checks_come_in_order() -> None:
    # Missing To is reported before anything else, then the sender, then the body.
    assert refused([]).code == 21604
    assert refused([("To", "bad")]).code == 21603
    assert refused([("To", "bad"), ("From", "+15550002000")]).code == 21602


def test_a_good_request() -> None:
    request = parse_send(
        ACCOUNT,
        [
            *fields(Body="x" * BODY_MAX, StatusCallback="https://example.test/cb?a=1#rc=2"),
            *[("MediaUrl", f"https://example.test/{i}.png") for i in range(MEDIA_MAX)],
            ("MediaUrl", "  "),  # blank values are ignored
        ],
    )
    assert request.to == "+4915100000001" and request.sender == "+15550002000"
    assert request.messaging_service_sid is None and len(request.body) == BODY_MAX
    assert request.status_callback == "https://example.test/cb?a=1#rc=2"
    assert len(request.media_urls) == MEDIA_MAX
    via_service = parse_send(ACCOUNT, fields(From=None, MessagingServiceSid=SERVICE))
    assert via_service.sender is None and via_service.messaging_service_sid == SERVICE
    media_only = parse_send(ACCOUNT, [*fields(Body=None), ("MediaUrl", "https://e.test/a.png")])
    assert media_only.body == ""


def test_error_tables() -> None:
    assert auth_failed().to_json() == {
        "code": 20003,
        "message": "Authenticate",
        "detail": "Your AccountSid or AuthToken was incorrect.",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert SYNC_ERRORS[20429][0] == 429 and SYNC_ERRORS[21610][0] == 400
    assert scripted_refusal(21211, "+12015550112").message == (
        "The 'To' number +12015550112 is not a valid phone number."
    )
    assert ASYNC_ERRORS[30003].status == "undelivered"
    assert ASYNC_ERRORS[30001].status == "failed"
    assert not set(SYNC_ERRORS) & set(ASYNC_ERRORS)


def test_rfc2822_dates() -> None:
    assert rfc2822(1438287151) == "Thu, 30 Jul 2015 20:12:31 +0000"


def test_message_resource_shape() -> None:
    msg = Message(
        sid="SM" + "e5" * 16,
        account_sid=ACCOUNT.account_sid,
        to="+4915100000001",
        sender=None,
        messaging_service_sid=SERVICE,
        body="a" * 161,
        media_urls=(),
        status_callback=None,
        segments=segments("a" * 161),
        created=1438287151,
        updated=1438287151,
        status="accepted",
    )
    resource = msg.resource("/_emulator/sms")
    assert resource["num_segments"] == "0"  # the service has not picked a sender yet
    assert resource["from"] is None and resource["date_sent"] is None
    path = f"/2010-04-01/Accounts/{ACCOUNT.account_sid}/Messages/{msg.sid}"
    assert resource["uri"] == f"/_emulator/sms{path}.json"
    assert resource["subresource_uris"] == {"media": f"/_emulator/sms{path}/Media.json"}
    msg.sender = "+15550002000"
    assert msg.resource("")["num_segments"] == "2"
    assert msg.resource("")["uri"] == f"{path}.json"
    details = msg.details("/p", "http://h:1/p/")
    assert details["url"] == f"http://h:1/p{path}.json" and details["encoding"] == "GSM-7"
