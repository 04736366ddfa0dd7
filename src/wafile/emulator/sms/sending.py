"""The form fields of `POST .../Messages.json`, checked in Twilio's terms.

Each problem is the TwilioError Twilio answers for it (reference sms-provider.md 1.1 and
1.6). Parameters are case-sensitive, as Twilio's are; a field given twice counts with its
last value, except `MediaUrl`, which repeats.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from wafile.emulator.sms.errors import (
    body_required,
    body_too_long,
    from_not_owned,
    from_required,
    invalid_media_url,
    invalid_status_callback,
    invalid_to,
    service_invalid,
    service_not_found,
    to_required,
    too_many_media,
)
from wafile.emulator.sms.world import SERVICE_SID, Account

__all__ = ["BODY_MAX", "MEDIA_MAX", "SendRequest", "parse_send"]

BODY_MAX: Final = 1600  # characters (code points); more is 21617
MEDIA_MAX: Final = 10  # MediaUrl values per message; more is 21623
URL_MAX: Final = 4000  # Twilio's limit on a StatusCallback URL
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRequest:
    to: str
    sender: str | None  # `From`, when given
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None


def parse_send(account: Account, fields: Sequence[tuple[str, str]]) -> SendRequest:
    """The request these form fields make for `account`, or the TwilioError to answer."""
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name, []).append(value)

    def last(name: str) -> str:
        return values.get(name, [""])[-1]

    to = last("To").strip()
    if not to:
        raise to_required()
    sender = last("From").strip() or None
    service = last("MessagingServiceSid").strip() or None
    if sender is None and service is None:
        raise from_required()
    body = last("Body")
    media = [url.strip() for url in values.get("MediaUrl", []) if url.strip()]
    if not body and not media:
        raise body_required(messaging_service=service is not None)
    if len(body) > BODY_MAX:
        raise body_too_long(BODY_MAX)
    # Twilio numbers cannot message themselves: that is 21211 too.
    if not _E164.fullmatch(to) or to in account.from_numbers:
        raise invalid_to(to)
    if service is not None:
        if not SERVICE_SID.fullmatch(service):
            raise service_invalid(service)
        if service not in account.messaging_services:
            raise service_not_found(service)
    if sender is not None and sender not in account.from_numbers:
        raise from_not_owned(sender)
    callback = last("StatusCallback").strip() or None
    if callback is not None and not _http_url(callback):
        raise invalid_status_callback(callback)
    if len(media) > MEDIA_MAX:
        raise too_many_media(MEDIA_MAX)
    bad = [url for url in media if not _http_url(url)]
    if bad:
        raise invalid_media_url(bad)
    return SendRequest(
        to=to,
        sender=sender,
        messaging_service_sid=service,
        body=body,
        media_urls=tuple(media),
        status_callback=callback,
    )


def _http_url(text: str) -> bool:
    if len(text) > URL_MAX or any(ch.isspace() for ch in text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)
