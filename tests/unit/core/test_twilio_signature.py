"""X-Twilio-Signature against values computed elsewhere, and its properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wafile.core.twilio_signature import (
    SIGNATURE_HEADER,
    twilio_signature,
    verify_twilio_signature,
)

# Twilio's own test vector (twilio-python/-php/-csharp RequestValidator tests).
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
TWILIO_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="

ACCOUNT = "AC" + "d4" * 16
SID = "SM" + "e5" * 16
CALLBACK_URL = "https://wafile.example/hooks/sms?tenant=acme"
CALLBACK_PARAMS = {
    "AccountSid": ACCOUNT,
    "ApiVersion": "2010-04-01",
    "From": "+15550001000",
    "MessageSid": SID,
    "MessageStatus": "delivered",
    "RawDlrDoneDate": "2711230800",
    "SmsSid": SID,
    "SmsStatus": "delivered",
    "To": "+4915100000099",
}
# Computed once with: printf '%s' "<url><sorted name+value pairs>" |
#   openssl dgst -sha1 -hmac sandbox-token -binary | base64
CALLBACK_SIGNATURE = "NVqTpLiK8ZNjhZjSBw3FJF/yRiY="
# printf '%s' 'https://wafile.example/hooks/sms#rc=3&rp=allBodyGrüße + 😀MessageStatussent'
#   | openssl dgst -sha1 -hmac 'tök€n' -binary | base64
UNICODE_SIGNATURE = "qtkFEhqP7oYFrpQZ9FjjeINCDZ4="


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "X-Twilio-Signature"


def test_twilio_documented_vector() -> None:
    assert twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS) == TWILIO_SIGNATURE
    assert verify_twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS, TWILIO_SIGNATURE)


def test_repeated_parameters_are_sorted_and_counted_once() -> None:
    # Twilio's validators' vector for a repeated name: values sorted, duplicates once.
    params = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234", "1234"]}
    assert twilio_signature("12345", TWILIO_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_status_callback_vector_computed_with_openssl() -> None:
    assert twilio_signature("sandbox-token", CALLBACK_URL, CALLBACK_PARAMS) == CALLBACK_SIGNATURE


def test_url_is_signed_as_given_fragment_and_utf8_included() -> None:
    url = "https://wafile.example/hooks/sms#rc=3&rp=all"
    params = {"MessageStatus": "sent", "Body": "Grüße + 😀"}
    assert twilio_signature("tök€n", url, params) == UNICODE_SIGNATURE


def test_verify_refuses_any_change() -> None:
    sig = CALLBACK_SIGNATURE
    assert verify_twilio_signature("sandbox-token", CALLBACK_URL, CALLBACK_PARAMS, sig)
    assert not verify_twilio_signature("other-token", CALLBACK_URL, CALLBACK_PARAMS, sig)
    assert not verify_twilio_signature("sandbox-token", CALLBACK_URL + "&x=1", CALLBACK_PARAMS, sig)
    assert not verify_twilio_signature(
        "sandbox-token", "http://wafile.example/hooks/sms?tenant=acme", CALLBACK_PARAMS, sig
    )
    tampered = {**CALLBACK_PARAMS, "MessageStatus": "undelivered"}
    assert not verify_twilio_signature("sandbox-token", CALLBACK_URL, tampered, sig)
    extra = {**CALLBACK_PARAMS, "ErrorCode": "30003"}
    assert not verify_twilio_signature("sandbox-token", CALLBACK_URL, extra, sig)


def test_verify_accepts_the_url_with_or_without_the_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_twilio_signature("12345", with_port, TWILIO_PARAMS, TWILIO_SIGNATURE)
    signed_with_port = twilio_signature("12345", with_port, TWILIO_PARAMS)
    assert signed_with_port != TWILIO_SIGNATURE
    assert verify_twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS, signed_with_port)
    # Another port is another URL.
    other = "https://mycompany.com:8443/myapp.php?foo=1&bar=2"
    assert not verify_twilio_signature("12345", other, TWILIO_PARAMS, TWILIO_SIGNATURE)
    # The host keeps its case in the port variant (Twilio signs it as configured).
    mixed = "https://MyCompany.com/myapp.php?foo=1&bar=2"
    mixed_sig = twilio_signature("12345", "https://MyCompany.com:443/myapp.php?foo=1&bar=2", {})
    assert verify_twilio_signature("12345", mixed, {}, mixed_sig)


def test_verify_never_raises_on_odd_headers() -> None:
    for header in (None, "", "   ", "invalid 王", "sha1=abc", "\x00\xff"):
        assert not verify_twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS, header)
    assert not verify_twilio_signature("12345", "https://[::1", {}, "x")  # unparseable URL
    # Surrounding whitespace is tolerated, as HTTP header values may carry it.
    assert verify_twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS, f" {TWILIO_SIGNATURE} ")


texts = st.text(min_size=0, max_size=30)
param_maps = st.dictionaries(st.text(min_size=1, max_size=10), texts, max_size=6)


@given(token=st.text(min_size=1, max_size=20), path=texts, params=param_maps)
def test_signature_round_trips(token: str, path: str, params: dict[str, str]) -> None:
    url = "https://example.test/" + path
    sig = twilio_signature(token, url, params)
    assert len(sig) == 28 and sig.endswith("=")  # base64 of the 20-byte SHA-1 HMAC
    assert verify_twilio_signature(token, url, params, sig)


@given(params=param_maps, data=st.data())
def test_parameter_order_does_not_matter(params: dict[str, str], data: st.DataObject) -> None:
    items = list(params.items())
    shuffled = dict(data.draw(st.permutations(items)))
    url = "https://example.test/cb"
    assert twilio_signature("t", url, params) == twilio_signature("t", url, shuffled)


@given(params=param_maps.filter(bool), data=st.data())
def test_changing_a_value_changes_the_signature(
    params: dict[str, str], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(params)))
    changed = {**params, name: params[name] + "x"}
    url = "https://example.test/cb"
    assert twilio_signature("t", url, changed) != twilio_signature("t", url, params)
    assert not verify_twilio_signature("t", url, changed, twilio_signature("t", url, params))
