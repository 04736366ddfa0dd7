"""`SmsEmulator`: all the SMS emulator's state, in memory, behind one object.

The Twilio routes (app.py) and the control API (control.py) only translate HTTP to the
methods here. Background work (each message's status timeline and its callback posts)
runs in tasks created on the serving loop the first time it is needed, so the object
works standalone and mounted inside another app alike; `aclose()` cancels that work and
closes the HTTP client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeVar

import httpx

from wafile.core.sms_segments import segments
from wafile.emulator.background import Background
from wafile.emulator.sms.callbacks import USER_AGENT, CallbackLog, Delivery, deliver
from wafile.emulator.sms.errors import (
    ASYNC_ERRORS,
    SYNC_ERRORS,
    AsyncError,
    auth_failed,
    not_found,
    scripted_refusal,
)
from wafile.emulator.sms.magic import MAGIC_PHONES, PhoneSource, behaviour_of
from wafile.emulator.sms.records import Message, StatusChange, message_path
from wafile.emulator.sms.sending import parse_send
from wafile.emulator.sms.world import (
    Account,
    Phone,
    Timing,
    World,
    WorldError,
    account_document,
    check_unique,
    normalise_number,
    parse_account,
    parse_phone,
    parse_timing,
    phone_document,
    timing_document,
    world_document,
)

__all__ = ["MESSAGES_KEPT", "NotFound", "SmsEmulator"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MESSAGES_KEPT: Final = 20_000  # the oldest are forgotten first
MESSAGE_FILTERS: Final = ("account_sid", "to", "from", "status", "messaging_service_sid")
CALLBACK_FILTERS: Final = ("message_sid", "status", "outcome")


class NotFound(LookupError):
    """A control API lookup for something the world does not hold."""


class SmsEmulator:
    """The emulated Twilio Messages API: world, messages, statuses, callbacks, inboxes.

    `now` is the wall clock stamped on messages and callbacks; scripted delays sleep on
    the loop, scaled by the world's Timing. Use it from the loop that serves its app.
    """

    def __init__(
        self,
        world: World,
        *,
        timing: Timing | None = None,
        now: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._initial = replace(world, timing=timing) if timing is not None else world
        self._now = now
        self._background = Background(
            name="SMS emulator", user_agent=USER_AGENT, transport=transport
        )
        self.log = CallbackLog()
        self._clear()

    # -- life cycle -------------------------------------------------------------------

    @property
    def world(self) -> World:
        return self._world

    @property
    def timing(self) -> Timing:
        return self._world.timing

    @property
    def pending_tasks(self) -> int:
        """Background tasks still running (timelines, callback posts)."""
        return self._background.pending

    def _clear(self) -> None:
        self._world = self._initial
        self._messages: OrderedDict[str, Message] = OrderedDict()
        self._inboxes: dict[str, deque[str]] = {}  # phone -> message sids
        # The newest callback post of each message: the next one waits for it (order).
        self._last_post: dict[str, asyncio.Task[None]] = {}
        self.log.clear()

    def reset(self) -> None:
        """Back to the world the emulator was created with; pending work is cancelled."""
        self._background.cancel()
        self._clear()

    async def aclose(self) -> None:
        """Cancel background tasks and close the HTTP client (from any loop)."""
        await self._background.aclose()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._background.spawn(work)

    def _http(self) -> httpx.AsyncClient:
        return self._background.http()

    # -- the Twilio API ---------------------------------------------------------------

    def authenticate(self, account_sid: str, authorization: str | None) -> Account:
        """The account of the URL, if HTTP Basic `authorization` holds its credentials."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise auth_failed()
        try:
            user, sep, password = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise auth_failed() from None
        account = self._world.account(account_sid)
        if not sep or account is None or user != account_sid:
            raise auth_failed()
        if not hmac.compare_digest(password.encode(), account.auth_token.encode()):
            raise auth_failed()
        return account

    def send(self, account: Account, fields: Iterable[tuple[str, str]]) -> Message:
        """POST .../Messages.json: a new message (201), or the TwilioError to answer."""
        request = parse_send(account, list(fields))
        phone, _ = self._behaviour(request.to)
        if phone.fail_with is not None and phone.fail_with in SYNC_ERRORS:
            raise scripted_refusal(phone.fail_with, request.to)
        now = self._now()
        via_service = request.messaging_service_sid is not None
        sender = request.sender
        status = "queued"
        if via_service:
            status = "accepted"
            sender = None  # chosen from the pool on the way to `queued`
        msg = Message(
            sid=("MM" if request.media_urls else "SM") + secrets.token_hex(16),
            account_sid=account.account_sid,
            to=request.to,
            sender=sender,
            messaging_service_sid=request.messaging_service_sid,
            body=request.body,
            media_urls=request.media_urls,
            status_callback=request.status_callback,
            segments=segments(request.body),
            created=now,
            updated=now,
            status=status,
            history=[StatusChange(status=status, at=now)],
        )
        self._remember(msg)
        # A Messaging Service sends from the given From, else from its pool's first number.
        pool_sender = (request.sender or account.from_numbers[0]) if via_service else None
        self._spawn(self._timeline(msg, phone, pool_sender))
        return msg

    def message(self, account: Account, sid: str) -> Message:
        """GET .../Messages/{sid}.json for this account (20404 when not its message)."""
        msg = self._messages.get(sid)
        if msg is None or msg.account_sid != account.account_sid:
            raise not_found(message_path(account.account_sid, sid))
        return msg

    def _behaviour(self, number: str) -> tuple[Phone, PhoneSource]:
        return behaviour_of(number, self._world.phone(number))

    def _remember(self, msg: Message) -> None:
        self._messages[msg.sid] = msg
        self._inboxes.setdefault(msg.to, deque(maxlen=MESSAGES_KEPT)).append(msg.sid)
        while len(self._messages) > MESSAGES_KEPT:
            self._messages.popitem(last=False)

    async def _timeline(self, msg: Message, phone: Phone, pool_sender: str | None) -> None:
        """[accepted ->] queued -> sending -> sent -> delivered | undelivered, or
        -> failed; each change stamped now, its callback posted in order behind the
        previous one (a slow endpoint does not hold the statuses back)."""

        async def pause() -> None:
            await asyncio.sleep(self.timing.delay(self.timing.step))

        if pool_sender is not None:
            await pause()
            msg.sender = pool_sender
            self._change(msg, "queued")
        error: AsyncError | None = ASYNC_ERRORS.get(phone.fail_with or 0)
        await pause()
        self._change(msg, "sending")
        await pause()
        if error is not None and error.status == "failed":
            self._change(msg, "failed", error)
            return
        msg.sent = self._now()
        self._change(msg, "sent")
        if phone.deliver_after is None:
            return  # the carrier never reports: stays `sent`
        await asyncio.sleep(self.timing.delay(phone.deliver_after))
        if error is not None:
            self._change(msg, "undelivered", error)
        else:
            self._change(msg, "delivered")

    def _change(self, msg: Message, status: str, error: AsyncError | None = None) -> None:
        now = self._now()
        msg.status, msg.updated = status, now
        if error is not None:
            msg.error_code, msg.error_message = error.code, error.message
        msg.history.append(StatusChange(status=status, at=now, error_code=msg.error_code))
        if msg.status_callback is None:
            return
        account = self._world.account(msg.account_sid)
        if account is None:  # removed since: nobody to sign for
            return
        entry = self.log.add(
            msg=msg, status=status, url=msg.status_callback, auth_token=account.auth_token, now=now
        )
        previous = self._last_post.get(msg.sid)
        task = self._spawn(self._post(entry, previous))
        self._last_post[msg.sid] = task
        task.add_done_callback(lambda t: self._forget_post(msg.sid, t))

    def _forget_post(self, sid: str, task: asyncio.Task[None]) -> None:
        if self._last_post.get(sid) is task:
            del self._last_post[sid]

    async def _post(self, entry: Delivery, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await deliver(self._http(), entry, self._now)
        except asyncio.CancelledError:
            if entry.outcome == "pending":
                entry.outcome = "cancelled"
            raise

    # -- views (control API) ----------------------------------------------------------

    def messages(self, filters: Mapping[str, str]) -> list[Message]:
        """Every message remembered, oldest first, narrowed by exact-match filters."""
        _check_filters(filters, MESSAGE_FILTERS)

        def fields(m: Message) -> dict[str, str | None]:
            return {
                "account_sid": m.account_sid,
                "to": m.to,
                "from": m.sender,
                "status": m.status,
                "messaging_service_sid": m.messaging_service_sid,
            }

        return [
            m for m in self._messages.values() if all(fields(m)[k] == v for k, v in filters.items())
        ]

    def find_message(self, sid: str) -> Message:
        msg = self._messages.get(sid)
        if msg is None:
            raise NotFound(f"no message {sid!r}")
        return msg

    def inbox(self, number_text: str) -> list[Message]:
        """Every message sent to this phone, oldest first, whatever became of it."""
        number = _number_or_error(number_text)
        return [self._messages[s] for s in self._inboxes.get(number, ()) if s in self._messages]

    def deliveries(self, filters: Mapping[str, str]) -> list[Delivery]:
        _check_filters(filters, CALLBACK_FILTERS)
        return [e for e in self.log if all(str(getattr(e, k)) == v for k, v in filters.items())]

    def phone_view(self, number_text: str) -> dict[str, Any]:
        number = _number_or_error(number_text)
        phone, source = self._behaviour(number)
        return {**phone_document(phone), "source": source}

    def world_json(self) -> dict[str, Any]:
        doc = world_document(self._world, with_secrets=False)
        doc["control_token_set"] = self._world.control_token is not None
        doc["magic_phones"] = [phone_document(p) for p in MAGIC_PHONES.values()]
        return doc

    # -- world changes (control API) --------------------------------------------------

    def put_account(self, account_sid: str, doc: object) -> tuple[Account, bool]:
        account = parse_account(_with_key(doc, "account_sid", account_sid), "account")
        accounts, created = _upsert(
            self._world.accounts, account, lambda a: a.account_sid == account.account_sid
        )
        self._set_world(replace(self._world, accounts=accounts))
        return account, created

    def remove_account(self, account_sid: str) -> None:
        if self._world.account(account_sid) is None:
            raise NotFound(f"no account {account_sid!r}")
        accounts = tuple(a for a in self._world.accounts if a.account_sid != account_sid)
        self._set_world(replace(self._world, accounts=accounts))

    def accounts_json(self) -> list[dict[str, Any]]:
        return [account_document(a, with_token=False) for a in self._world.accounts]

    def put_phone(self, number_text: str, doc: object) -> tuple[Phone, bool]:
        number = _number_or_error(number_text)
        phone = parse_phone(_with_key(doc, "number", number, normalise=True), "phone")
        phones, created = _upsert(self._world.phones, phone, lambda p: p.number == phone.number)
        self._set_world(replace(self._world, phones=phones))
        return phone, created

    def remove_phone(self, number_text: str) -> None:
        number = _number_or_error(number_text)
        if self._world.phone(number) is None:
            raise NotFound(f"no declared phone {number!r}")
        phones = tuple(p for p in self._world.phones if p.number != number)
        self._set_world(replace(self._world, phones=phones))

    def timing_json(self) -> dict[str, Any]:
        return timing_document(self.timing)

    def update_timing(self, doc: object) -> dict[str, Any]:
        """Change the timing; fields left out stay. Applies to messages in flight."""
        timing = parse_timing(doc, "timing", base=self.timing)
        self._set_world(replace(self._world, timing=timing))
        return self.timing_json()

    def _set_world(self, world: World) -> None:
        check_unique(world)
        self._world = world


def _check_filters(filters: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise WorldError(f"{unknown[0]}: unknown filter (allowed: {', '.join(allowed)})")


def _number_or_error(text: str) -> str:
    number = normalise_number(text)
    if number is None:
        raise WorldError(f"number: {text!r} is not a phone number in E.164")
    return number


def _with_key(doc: object, key: str, value: str, *, normalise: bool = False) -> object:
    """The document with `key` taken from the URL; a different value in the body is an error."""
    if not isinstance(doc, Mapping):
        return doc  # parse_* names the problem
    if key in doc:
        given = normalise_number(doc[key]) if normalise else doc[key]
        if given != value:
            raise WorldError(f"{key}: {doc[key]!r} differs from the URL's {value!r}")
    return {**doc, key: value}


def _upsert(items: Iterable[T], new: T, same: Callable[[T], bool]) -> tuple[tuple[T, ...], bool]:
    out: list[T] = []
    created = True
    for item in items:
        if same(item):
            out.append(new)
            created = False
        else:
            out.append(item)
    if created:
        out.append(new)
    return tuple(out), created
