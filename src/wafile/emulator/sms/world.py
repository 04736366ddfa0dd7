"""The emulated SMS world: accounts (credentials, sender numbers, Messaging Services),
virtual phones with scripted behaviour, and timing.

Values are frozen; the emulator swaps whole values when the control API changes one.
`parse_world` reads a world document (YAML/JSON mapping, see docs/emulator-sms.md) and
names the bad field in every `WorldError`; `world_document` writes one back, and the
two round-trip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeVar

from wafile.emulator.sms.errors import ASYNC_ERRORS, SYNC_ERRORS
from wafile.emulator.world_file import Fields as _Fields
from wafile.emulator.world_file import WorldError, WorldFileError, load_document
from wafile.emulator.world_file import kind as _kind
from wafile.emulator.world_file import list_field as _list
from wafile.emulator.world_file import optional as _optional
from wafile.emulator.world_file import seconds as _seconds
from wafile.emulator.world_file import text as _text

__all__ = [
    "ACCOUNT_SID",
    "SERVICE_SID",
    "Account",
    "Phone",
    "Timing",
    "World",
    "WorldError",
    "account_document",
    "check_unique",
    "load_world",
    "normalise_number",
    "parse_account",
    "parse_phone",
    "parse_timing",
    "parse_world",
    "phone_document",
    "sandbox_world",
    "timing_document",
    "world_document",
]

ACCOUNT_SID: Final = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class Account:
    """A Twilio account: HTTP Basic credentials and the senders it owns. A Messaging
    Service sends from the account's first number (its sender pool)."""

    account_sid: str
    auth_token: str
    from_numbers: tuple[str, ...] = ()
    messaging_services: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Phone:
    """A virtual handset and its script. `deliver_after` counts seconds (scaled by
    Timing) from `sent` to the carrier's report (`delivered`, or `undelivered` with a
    30xxx `fail_with`); None = no report ever, the message stays `sent`. `fail_with`
    is a code of SYNC_ERRORS (the send is refused at once) or ASYNC_ERRORS."""

    number: str
    deliver_after: float | None = 0.5
    fail_with: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """How fast scripted time runs: `step` is the pause before each of Twilio's own
    transitions (accepted -> queued -> sending -> sent); it and every `deliver_after`
    are multiplied by `scale` (tests pass a small one). Callback timeouts are Twilio's
    (URL fragment overrides) and are not scaled."""

    scale: float = 1.0
    step: float = 0.1

    def delay(self, seconds: float) -> float:
        return max(0.0, seconds * self.scale)


@dataclass(frozen=True, kw_only=True, slots=True)
class World:
    accounts: tuple[Account, ...] = ()
    phones: tuple[Phone, ...] = ()
    timing: Timing = field(default_factory=Timing)
    control_token: str | None = None

    def account(self, account_sid: str) -> Account | None:
        return next((a for a in self.accounts if a.account_sid == account_sid), None)

    def phone(self, number: str) -> Phone | None:
        return next((p for p in self.phones if p.number == number), None)


def normalise_number(raw: object) -> str | None:
    """A phone number in E.164 (`+4915100000001`); spaces, dashes, dots and brackets
    are dropped. None unless it is `+` and 7 to 15 digits, not starting with 0."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    for ch in " -().":
        text = text.replace(ch, "")
    if not text.startswith("+"):
        text = "+" + text
    return text if _E164.fullmatch(text) else None


def _sid(pattern: re.Pattern[str], what: str) -> Callable[[object, str], str]:
    def reader(value: object, where: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise WorldError(f"{where}: must be {what}, got {value!r}")
        return value

    return reader


def _e164(value: object, where: str) -> str:
    number = normalise_number(value)
    if number is None:
        raise WorldError(
            f"{where}: must be a phone number in E.164 (+ and 7-15 digits), got {value!r}"
        )
    return number


def _list_of(read: Callable[[object, str], T]) -> Callable[[object, str], tuple[T, ...]]:
    def reader(value: object, where: str) -> tuple[T, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise WorldError(f"{where}: must be a list, got {_kind(value)}")
        return tuple(read(item, f"{where}[{i}]") for i, item in enumerate(value))

    return reader


def _fail_code(value: object, where: str) -> int:
    known = sorted([*SYNC_ERRORS, *ASYNC_ERRORS])
    if isinstance(value, bool) or not isinstance(value, int) or value not in known:
        raise WorldError(
            f"{where}: must be one of the emulated error codes "
            f"({', '.join(map(str, known))}), got {value!r}"
        )
    return value


ACCOUNT_FIELDS: Final = ("account_sid", "auth_token", "from_numbers", "messaging_services")


def parse_account(data: object, where: str = "account") -> Account:
    f = _Fields(data, where, ACCOUNT_FIELDS)
    account = Account(
        account_sid=f.need("account_sid", _sid(ACCOUNT_SID, '"AC" and 32 hex digits')),
        auth_token=f.need("auth_token", _text),
        from_numbers=f.get("from_numbers", _list_of(_e164), ()),
        messaging_services=f.get(
            "messaging_services", _list_of(_sid(SERVICE_SID, '"MG" and 32 hex digits')), ()
        ),
    )
    if account.messaging_services and not account.from_numbers:
        raise WorldError(
            f"{f.path('from_numbers')}: a Messaging Service needs at least one number to send from"
        )
    _unique(list(account.from_numbers), f.path("from_numbers"))
    _unique(list(account.messaging_services), f.path("messaging_services"))
    return account


PHONE_FIELDS: Final = ("number", "deliver_after", "fail_with")

# Typed as optional so `_Fields.get` infers `float | None` for the nullable delay.
_HALF_SECOND: float | None = 0.5


def parse_phone(data: object, where: str = "phone") -> Phone:
    f = _Fields(data, where, PHONE_FIELDS)
    return Phone(
        number=f.need("number", _e164),
        deliver_after=f.get("deliver_after", _optional(_seconds), _HALF_SECOND),
        fail_with=f.get("fail_with", _optional(_fail_code), None),
    )


TIMING_FIELDS: Final = ("scale", "step")


def parse_timing(data: object, where: str = "timing", base: Timing | None = None) -> Timing:
    """Timing from a mapping; fields it leaves out keep their value in `base`."""
    start = base or Timing()
    f = _Fields(data, where, TIMING_FIELDS)
    return Timing(
        scale=f.get("scale", _seconds, start.scale),
        step=f.get("step", _seconds, start.step),
    )


WORLD_FIELDS: Final = ("accounts", "phones", "timing", "control_token")


def parse_world(document: object) -> World:
    """A World from a world document; WorldError names the first bad field."""
    f = _Fields(document, "world", WORLD_FIELDS)
    no_items: list[object] = []
    world = World(
        accounts=tuple(
            parse_account(item, f"accounts[{i}]")
            for i, item in enumerate(f.get("accounts", _list, no_items))
        ),
        phones=tuple(
            parse_phone(item, f"phones[{i}]")
            for i, item in enumerate(f.get("phones", _list, no_items))
        ),
        timing=f.get("timing", lambda v, w: parse_timing(v, "timing"), Timing()),
        control_token=f.get("control_token", _optional(_text), None),
    )
    check_unique(world)
    return world


def check_unique(world: World) -> None:
    """No account, sender number, Messaging Service or phone is declared twice."""
    _unique([a.account_sid for a in world.accounts], "accounts", key="account_sid")
    _unique([p.number for p in world.phones], "phones", key="number")
    seen: set[str] = set()
    for i, account in enumerate(world.accounts):
        for key, values in (
            ("from_numbers", account.from_numbers),
            ("messaging_services", account.messaging_services),
        ):
            for value in values:
                if value in seen:
                    raise WorldError(
                        f"accounts[{i}].{key}: {value!r} is declared by another account"
                    )
                seen.add(value)


def _unique(values: list[str], name: str, *, key: str | None = None) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            where = f"{name}[{i}]" if key is None else f"{name}[{i}].{key}"
            raise WorldError(f"{where}: {value!r} is declared twice")
        seen.add(value)


def load_world(path: Path) -> World:
    """Read and validate a world file (YAML, or JSON for `.json`)."""
    try:
        document = load_document(path)
    except WorldFileError as exc:
        raise WorldError(str(exc)) from None
    try:
        return parse_world(document)
    except WorldError as exc:
        raise WorldError(f"{path}: {exc}") from None


def account_document(a: Account, *, with_token: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"account_sid": a.account_sid}
    if with_token:
        doc["auth_token"] = a.auth_token
    doc["from_numbers"] = list(a.from_numbers)
    doc["messaging_services"] = list(a.messaging_services)
    return doc


def phone_document(p: Phone) -> dict[str, Any]:
    return {"number": p.number, "deliver_after": p.deliver_after, "fail_with": p.fail_with}


def timing_document(t: Timing) -> dict[str, Any]:
    return {"scale": t.scale, "step": t.step}


def world_document(world: World, *, with_secrets: bool = True) -> dict[str, Any]:
    """The world as a document `parse_world` reads back to an equal World (with secrets)."""
    doc: dict[str, Any] = {
        "accounts": [account_document(a, with_token=with_secrets) for a in world.accounts],
        "phones": [phone_document(p) for p in world.phones],
        "timing": timing_document(world.timing),
    }
    if with_secrets:
        doc["control_token"] = world.control_token
    return doc


def sandbox_world(
    account_sid: str,
    auth_token: str,
    from_number: str,
    *,
    messaging_services: Sequence[str] = (),
    timing: Timing | None = None,
) -> World:
    """The world wafile's sandbox mode runs: one account sending from `from_number`
    (and the given Messaging Services). No phones are declared: the magic numbers and
    every other number work without set-up."""
    account = parse_account(
        {
            "account_sid": account_sid,
            "auth_token": auth_token,
            "from_numbers": [from_number],
            "messaging_services": list(messaging_services),
        },
        "sandbox",
    )
    world = World(accounts=(account,))
    return replace(world, timing=timing) if timing is not None else world
