"""What a provider's error code means for the message: retry, fall back, or fail.

One table per provider, every code from the reference (shared/reference/
whatsapp-cloud-api.md section 3, shared/reference/sms-provider.md section 1.6),
classified by its documented action:

- **retry** (reference R): transient; the same channel later. `retry_after` is a
  hint in seconds where the cause has a known pace, else None (the job backoff).
- **fall_back** (reference F, and A): this channel cannot reach this recipient now,
  but the message is fine, so the next channel in the plan takes it at once. Account
  problems (A: the sender is blocked, locked or unregistered) fall back too, as the
  reference says outright for 368, 131031, 131042 and 131048: the message is not at
  fault, and `halts_sender` tells the operator to stop using the sender.
- **fail** (reference X): the request or wafile's configuration is wrong. Another
  channel would not fix the cause, and falling back would hide a bug behind an SMS
  bill; the business sees a failed message with the reason.

Codes decide, never HTTP statuses or message texts (Meta and Twilio both say so);
the HTTP status only classifies codes the tables do not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "SMS_CODES",
    "WHATSAPP_CODES",
    "Classification",
    "Disposition",
    "classify_sms",
    "classify_whatsapp",
]


class Disposition(StrEnum):
    RETRY = "retry"  # same channel, later
    FALL_BACK = "fall_back"  # next channel in the plan, now
    FAIL = "fail"  # the message fails; no other channel is tried


@dataclass(frozen=True, kw_only=True, slots=True)
class Classification:
    disposition: Disposition
    reason: str
    retry_after: float | None = None  # seconds; only for RETRY, None: use the backoff
    # The sender (number, account, credentials) cannot send at all until an operator
    # acts: stop sending through it and alert, whatever happens to this message.
    halts_sender: bool = False


def _retry(reason: str, after: float | None = None) -> Classification:
    return Classification(disposition=Disposition.RETRY, reason=reason, retry_after=after)


def _fall_back(reason: str, *, halts_sender: bool = False) -> Classification:
    return Classification(
        disposition=Disposition.FALL_BACK, reason=reason, halts_sender=halts_sender
    )


def _fail(reason: str, *, halts_sender: bool = False) -> Classification:
    return Classification(disposition=Disposition.FAIL, reason=reason, halts_sender=halts_sender)


# Rate limits measured over Graph's rolling usage window: a minute is the shortest
# wait worth trying (the x-app-usage headers, when parsed, give a better figure).
_GRAPH_RATE_WAIT: Final = 60.0

_WHATSAPP: dict[int, Classification] = {
    # Authentication and permissions: wafile's configuration of the sender (X, and A
    # where the reference lists the code as account-level).
    0: _fail("WhatsApp could not authenticate the app (new token needed)", halts_sender=True),
    3: _fail("the app lacks the capability or permission for this API call", halts_sender=True),
    10: _fail("permission denied to the WhatsApp app", halts_sender=True),
    104: _fail("the request carried no access token"),
    # 190 says "refresh token, then retry": wafile's tokens are long-lived system-user
    # tokens that only an operator renews, so a retry before that would fail again.
    190: _fail("the WhatsApp access token expired or is invalid", halts_sender=True),
    **{
        code: _fail("the WhatsApp app lacks an API permission", halts_sender=True)
        for code in range(200, 300)
    },
    # Transient: Graph side or throughput.
    1: _retry("WhatsApp reported an unknown error"),  # "R few times": the job's attempts cap it
    2: _retry("WhatsApp API temporarily down or overloaded"),
    4: _retry("WhatsApp app call-rate limit reached", _GRAPH_RATE_WAIT),
    17: _retry("WhatsApp user call-rate limit reached", _GRAPH_RATE_WAIT),
    80007: _retry("WhatsApp business account rate limit reached", _GRAPH_RATE_WAIT),
    # Messages per second per number: back under the limit within a second.
    130429: _retry("WhatsApp throughput limit of the number reached", 1.0),
    # About one message per 6 s to one user; only this recipient waits.
    131056: _retry("too many messages to this recipient in a short time", 6.0),
    131000: _retry("WhatsApp reported an unknown error"),  # "a few times, then F"
    131016: _retry("WhatsApp service temporarily unavailable"),
    131057: _retry("WhatsApp business account in maintenance mode", 60.0),  # up to ~1 min
    133004: _retry("WhatsApp server temporarily unavailable"),
    133015: _retry("the number was recently deleted; WhatsApp asks to wait 5 minutes", 300.0),
    # Account-level (A): the message is fine, the sender is not.
    # 131048 is a spam rate limit, yet the reference says "do not hammer; F for now":
    # retrying soon only deepens the restriction.
    131048: _fall_back("sends restricted after messages were flagged as spam", halts_sender=True),
    131064: _fall_back("messaging limited for template violations", halts_sender=True),
    368: _fall_back("the account is blocked for policy violations", halts_sender=True),
    131031: _fall_back("the WhatsApp business account is locked", halts_sender=True),
    131037: _fall_back("the number needs an approved display name", halts_sender=True),
    131042: _fall_back("business eligibility or payment problem", halts_sender=True),
    131045: _fall_back("the number's registration or certificate is wrong", halts_sender=True),
    133000: _fall_back("the number's deregistration is incomplete", halts_sender=True),
    133010: _fall_back("the number is not registered on WhatsApp", halts_sender=True),
    # This recipient cannot be reached on WhatsApp now (F).
    130497: _fall_back("the account may not message users in this country"),
    130403: _fall_back("the business has blocked this user"),
    130472: _fall_back("the user is part of a marketing experiment"),
    131026: _fall_back("not deliverable on WhatsApp (not a WhatsApp user, or an old app)"),
    # The table says X, the reference's summary lists it as permanent for the recipient:
    # a test number may message only its allowed list, and another channel reaches the rest.
    131030: _fall_back("the recipient is not in the test number's allowed list"),
    # wafile checks the window before sending; a closed window reported anyway means no
    # template can go out at this point, so the next channel carries the file.
    131047: _fall_back("more than 24 hours since the user's last message (window closed)"),
    # "R24 or F": a 24 h wait outlives any sensible fallback plan, so the next channel.
    131049: _fall_back("not delivered to keep the user's engagement healthy (marketing cap)"),
    131050: _fall_back("the user stopped marketing messages from this business"),
    # Inbound-only (the user's media could not be downloaded); should it ever come back
    # on a send, another channel is what the reference suggests.
    131052: _fall_back("WhatsApp could not download the media"),
    # The file could not be processed (type, size, link): the next channel sends a link
    # to wafile's own copy instead ("F to send the file another way").
    131053: _fall_back("WhatsApp could not process the media"),
    # 132015 "use another template or F": the template is paused, not wrong.
    132015: _fall_back("the template is paused for low quality"),
    # The request is wrong (X).
    33: _fail("the business phone number is deleted or the parameter is invalid"),
    100: _fail("invalid parameter in the WhatsApp request"),
    131005: _fail("access denied to the WhatsApp API"),
    131008: _fail("a required parameter is missing"),
    # "X, or F if it is the recipient number": wafile sends only E.164 numbers it has
    # parsed, so a bad value here is a bad media id or phone-number id: a bug to see.
    131009: _fail("a parameter value is not valid"),
    131021: _fail("the recipient cannot be the sender"),
    131051: _fail("unsupported message type"),
    131063: _fail("marketing templates are disabled for this account"),
    132000: _fail("template parameter count mismatch"),
    132001: _fail("the template does not exist in this language or is not approved"),
    132005: _fail("the hydrated template text is too long"),
    132007: _fail("the template text breaks the format or character policy"),
    132008: _fail("a template parameter value is invalid"),
    132012: _fail("a template parameter has the wrong format"),
    132016: _fail("the template is permanently disabled"),
    133016: _fail("too many register or deregister attempts"),
    135000: _fail("WhatsApp rejected the request parameters"),
}

WHATSAPP_CODES: Final[Mapping[int, Classification]] = MappingProxyType(_WHATSAPP)

_SMS: dict[int, Classification] = {
    # Synchronous (the API answer).
    20003: _fail("SMS provider authentication failed", halts_sender=True),
    20404: _fail("SMS provider resource not found"),
    20429: _retry("SMS provider rate limit reached", 1.0),
    21211: _fail("the recipient number is not a valid phone number"),
    21408: _fail("SMS to this region is not enabled for the account"),
    21606: _fail("the sender number cannot send SMS", halts_sender=True),
    # The recipient opted out of this channel (STOP); another channel may still reach
    # them, and if none is left the message fails anyway.
    21610: _fall_back("the recipient unsubscribed from SMS (replied STOP)"),
    21614: _fall_back("the recipient number cannot receive SMS (not a mobile number)"),
    21617: _fail("the SMS body is longer than 1,600 characters"),
    21620: _fail("invalid media URL"),
    21623: _fail("too many media in one message"),
    # Asynchronous (ErrorCode of a failed or undelivered status).
    30001: _retry("SMS queue overflow (sent too fast)", 60.0),
    30002: _fall_back("the SMS account is suspended", halts_sender=True),
    30003: _retry("the recipient's handset is unreachable", 300.0),  # off, no signal
    30004: _fall_back("the SMS was blocked by the recipient or carrier"),
    30005: _fall_back("unknown destination handset (inactive or nonexistent number)"),
    30006: _fall_back("landline or unreachable carrier: SMS impossible"),
    # Carrier spam filtering is per channel: another channel is not filtered by it.
    30007: _fall_back("the SMS was filtered by the carrier"),
    30008: _retry("SMS provider reported an unknown error"),
    30010: _fail("the SMS price exceeds the configured maximum"),
    63016: _fall_back("outside the WhatsApp 24-hour window; a template is needed"),
}

SMS_CODES: Final[Mapping[int, Classification]] = MappingProxyType(_SMS)


def classify_whatsapp(code: int | None, http_status: int | None) -> Classification:
    """Classify a Cloud API error by Meta's `code`; None when the answer had no Graph error.

    `http_status` is None when no answer came (timeout, connection refused) and for
    errors reported in a webhook.
    """
    known = WHATSAPP_CODES.get(code) if code is not None else None
    return known or _unknown("WhatsApp", code, http_status)


def classify_sms(code: int | None, http_status: int | None) -> Classification:
    """Classify an SMS provider (Twilio-shaped) error code, sync or async."""
    known = SMS_CODES.get(code) if code is not None else None
    return known or _unknown("SMS provider", code, http_status)


def _unknown(provider: str, code: int | None, http_status: int | None) -> Classification:
    what = f"{provider} error {code}" if code is not None else f"{provider} error"
    if http_status is None:
        # No answer: the send may or may not have gone out; the provider has no
        # idempotency key, so the job layer decides how often to risk a second send.
        return _retry(f"{what} (no answer)" if code is None else what)
    if http_status == 429:
        return _retry(f"{what} (HTTP 429, too many requests)")
    if 400 <= http_status < 500:
        return _fail(f"{what} (HTTP {http_status})")
    return _retry(f"{what} (HTTP {http_status})")
