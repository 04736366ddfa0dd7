"""The emulated world: business numbers, virtual phones, templates, settings and timing.

Values are frozen; the emulator swaps whole values when the control API changes one.
`parse_world` reads a world document (YAML/JSON mapping, see docs/emulator-whatsapp.md)
and names the bad field in every `WorldError`; `world_document` writes one back, and
the two round-trip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from wafile.emulator.world_file import Fields as _Fields
from wafile.emulator.world_file import WorldError, WorldFileError, load_document
from wafile.emulator.world_file import kind as _kind
from wafile.emulator.world_file import list_field as _list
from wafile.emulator.world_file import optional as _optional
from wafile.emulator.world_file import seconds as _seconds
from wafile.emulator.world_file import text as _text

__all__ = [
    "HEADER_KINDS",
    "TEMPLATE_STATUSES",
    "BusinessNumber",
    "Phone",
    "Settings",
    "Template",
    "Timing",
    "World",
    "WorldError",
    "load_world",
    "normalise_number",
    "parse_number",
    "parse_phone",
    "parse_settings",
    "parse_template",
    "parse_timing",
    "parse_world",
    "sandbox_world",
    "world_document",
]

HEADER_KINDS: Final = ("text", "document", "image", "video")
TEMPLATE_STATUSES: Final = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED")
TEMPLATE_CATEGORIES: Final = ("UTILITY", "MARKETING", "AUTHENTICATION")
_DIGITS = re.compile(r"[0-9]+")
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]{2,8})?")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class BusinessNumber:
    phone_number_id: str
    display_phone_number: str
    waba_id: str
    access_token: str
    app_secret: str
    webhook_url: str | None = None
    verify_token: str = ""
    mps: int = 80  # Meta's default throughput per number
    verified_name: str = "wafile sandbox"


@dataclass(frozen=True, kw_only=True, slots=True)
class Phone:
    """A virtual WhatsApp user and its script. Delays are seconds (scaled by Timing);
    `deliver_after` counts from the send, `read_after` from the delivery; None = never."""

    number: str
    on_whatsapp: bool = True
    deliver_after: float | None = 0.5
    read_after: float | None = 2.0
    fail_with: int | None = None  # every message fails with this code
    fail_files_with: int | None = None  # messages carrying media fail with this code
    throttle_first: int = 0  # the first N sends to this phone get 130429
    window_open: bool = False  # the 24-hour window is open from the start
    name: str = "Test User"


@dataclass(frozen=True, kw_only=True, slots=True)
class Template:
    name: str
    language: str
    header: str | None = None  # one of HEADER_KINDS, or no header
    header_params: int = 0  # parameters of a text header
    body_params: int = 0
    status: str = "APPROVED"
    category: str = "UTILITY"


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    pair_rate_limit: bool = True
    pair_interval: float = 6.0  # seconds per message to one user, once the burst is spent
    pair_burst: int = 45  # messages to one user tolerated back to back
    extra_document_types: tuple[str, ...] = ()  # MIME types accepted as documents beyond Meta's
    # Status webhooks per POST to one number's URL, as Meta batches them; 1 = one each.
    webhook_batch_max: int = 1
    webhook_batch_wait: float = 0.2  # seconds a batch waits for more before it is posted


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """How fast scripted time runs: every scripted delay and webhook retry delay is
    multiplied by `scale` (tests pass a small one). Wall-clock rules (24-hour window,
    5-minute URLs, rates) use the emulator's `now` instead."""

    scale: float = 1.0
    retry_delays: tuple[float, ...] = (5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
    webhook_timeout: float = 5.0
    media_fetch_timeout: float = 10.0

    def delay(self, seconds: float) -> float:
        return max(0.0, seconds * self.scale)


@dataclass(frozen=True, kw_only=True, slots=True)
class World:
    numbers: tuple[BusinessNumber, ...] = ()
    phones: tuple[Phone, ...] = ()
    templates: tuple[Template, ...] = ()
    settings: Settings = field(default_factory=Settings)
    timing: Timing = field(default_factory=Timing)
    control_token: str | None = None

    def number(self, phone_number_id: str) -> BusinessNumber | None:
        return next((n for n in self.numbers if n.phone_number_id == phone_number_id), None)

    def phone(self, number: str) -> Phone | None:
        return next((p for p in self.phones if p.number == number), None)

    def template(self, name: str, language: str) -> Template | None:
        return next((t for t in self.templates if t.name == name and t.language == language), None)


def normalise_number(raw: object) -> str | None:
    """A phone number as WhatsApp ids write it: digits only (`+1 201-555` -> `1201555`).
    None when it is not a plausible international number (6 to 15 digits)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    for ch in " -().":
        text = text.replace(ch, "")
    text = text.removeprefix("+")
    if not _DIGITS.fullmatch(text) or not 6 <= len(text) <= 15:
        return None
    return text


def _any_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise WorldError(f"{where}: must be a string, got {_kind(value)}")
    return value


def _id(value: object, where: str) -> str:
    # YAML turns unquoted ids into ints; Graph ids are numeric strings either way.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return value
    raise WorldError(f"{where}: must be a numeric id (digits), got {value!r}")


def _phone_number(value: object, where: str) -> str:
    digits = normalise_number(value)
    if digits is None:
        raise WorldError(
            f"{where}: must be an international phone number (6-15 digits, optional +), "
            f"got {value!r}"
        )
    return digits


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise WorldError(f"{where}: must be true or false, got {value!r}")
    return value


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorldError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WorldError(f"{where}: must be a whole number >= 0, got {value!r}")
    return value


def _positive_seconds(value: object, where: str) -> float:
    seconds = _seconds(value, where)
    if seconds <= 0:
        raise WorldError(f"{where}: must be a number of seconds > 0, got {value!r}")
    return seconds


def _error_code(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorldError(f"{where}: must be an error code (positive integer), got {value!r}")
    return value


def _url(value: object, where: str) -> str:
    text = _text(value, where)
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WorldError(f"{where}: must be an http(s) URL, got {value!r}")
    return text


def _choice(options: Sequence[str]) -> Callable[[object, str], str]:
    def reader(value: object, where: str) -> str:
        if value not in options:
            raise WorldError(f"{where}: must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return reader


def _mime_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise WorldError(f"{where}: must be a list of MIME types, got {_kind(value)}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or item.count("/") != 1 or item != item.strip().lower():
            raise WorldError(f"{where}[{i}]: must be a lower-case MIME type, got {item!r}")
        out.append(item)
    return tuple(out)


def _delays(value: object, where: str) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise WorldError(f"{where}: must be a list of seconds, got {_kind(value)}")
    return tuple(_seconds(v, f"{where}[{i}]") for i, v in enumerate(value))


NUMBER_FIELDS: Final = (
    "phone_number_id",
    "display_phone_number",
    "waba_id",
    "access_token",
    "app_secret",
    "webhook_url",
    "verify_token",
    "mps",
    "verified_name",
)


def parse_number(data: object, where: str = "number") -> BusinessNumber:
    f = _Fields(data, where, NUMBER_FIELDS)
    return BusinessNumber(
        phone_number_id=f.need("phone_number_id", _id),
        display_phone_number=f.need("display_phone_number", _phone_number),
        waba_id=f.need("waba_id", _id),
        access_token=f.need("access_token", _text),
        app_secret=f.need("app_secret", _text),
        webhook_url=f.get("webhook_url", _optional(_url), None),
        verify_token=f.get("verify_token", _any_text, ""),
        mps=f.get("mps", _positive_int, 80),
        verified_name=f.get("verified_name", _text, "wafile sandbox"),
    )


# Typed as optional so `_Fields.get` infers `float | None` for the nullable delays.
_HALF_SECOND: float | None = 0.5
_TWO_SECONDS: float | None = 2.0

PHONE_FIELDS: Final = (
    "number",
    "on_whatsapp",
    "deliver_after",
    "read_after",
    "fail_with",
    "fail_files_with",
    "throttle_first",
    "window_open",
    "name",
)


def parse_phone(data: object, where: str = "phone") -> Phone:
    f = _Fields(data, where, PHONE_FIELDS)
    return Phone(
        number=f.need("number", _phone_number),
        on_whatsapp=f.get("on_whatsapp", _bool, True),
        deliver_after=f.get("deliver_after", _optional(_seconds), _HALF_SECOND),
        read_after=f.get("read_after", _optional(_seconds), _TWO_SECONDS),
        fail_with=f.get("fail_with", _optional(_error_code), None),
        fail_files_with=f.get("fail_files_with", _optional(_error_code), None),
        throttle_first=f.get("throttle_first", _count, 0),
        window_open=f.get("window_open", _bool, False),
        name=f.get("name", _text, "Test User"),
    )


TEMPLATE_FIELDS: Final = (
    "name",
    "language",
    "header",
    "header_params",
    "body_params",
    "components",
    "status",
    "category",
)


def parse_template(data: object, where: str = "template") -> Template:
    f = _Fields(data, where, TEMPLATE_FIELDS)
    name = f.need("name", _text)
    if not _TEMPLATE_NAME.fullmatch(name):
        raise WorldError(f"{f.path('name')}: lower-case letters, digits and _ only, got {name!r}")
    language = f.need("language", _text)
    if not _LANGUAGE.fullmatch(language):
        raise WorldError(f"{f.path('language')}: a language code like en_US, got {language!r}")
    short = [k for k in ("header", "header_params", "body_params") if f.has(k)]
    if f.has("components"):
        if short:
            raise WorldError(f"{f.path(short[0])}: give either components or the short form")
        header, header_params, body_params = _components(f.data["components"], f.path("components"))
    else:
        header = f.get("header", _optional(_choice(HEADER_KINDS)), None)
        header_params = f.get("header_params", _count, 0)
        body_params = f.get("body_params", _count, 0)
        if header_params and header != "text":
            raise WorldError(f"{f.path('header_params')}: only a text header takes parameters")
    return Template(
        name=name,
        language=language,
        header=header,
        header_params=header_params,
        body_params=body_params,
        status=f.get("status", _choice(TEMPLATE_STATUSES), "APPROVED"),
        category=f.get("category", _choice(TEMPLATE_CATEGORIES), "UTILITY"),
    )


def _components(value: object, where: str) -> tuple[str | None, int, int]:
    """Meta's template components (HEADER format/text, BODY text, ...) as the short form."""
    if not isinstance(value, list):
        raise WorldError(f"{where}: must be a list, got {_kind(value)}")
    header: str | None = None
    header_params = body_params = 0
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        f = _Fields(item, here, ("type", "format", "text", "example", "buttons"))
        kind = f.need("type", _text).upper()
        if kind == "HEADER":
            fmt = f.get("format", _text, "TEXT").lower()
            if fmt not in HEADER_KINDS:
                raise WorldError(f"{here}.format: must be one of TEXT, DOCUMENT, IMAGE, VIDEO")
            header = fmt
            if fmt == "text":
                header_params = len(set(_PLACEHOLDER.findall(f.get("text", _any_text, ""))))
        elif kind == "BODY":
            body_params = len(set(_PLACEHOLDER.findall(f.need("text", _any_text))))
        elif kind not in {"FOOTER", "BUTTONS"}:
            raise WorldError(f"{here}.type: must be HEADER, BODY, FOOTER or BUTTONS")
    return header, header_params, body_params


SETTINGS_FIELDS: Final = (
    "pair_rate_limit",
    "pair_interval",
    "pair_burst",
    "extra_document_types",
    "webhook_batch_max",
    "webhook_batch_wait",
)


def parse_settings(data: object, where: str = "settings", base: Settings | None = None) -> Settings:
    """Settings from a mapping; fields it leaves out keep their value in `base`."""
    start = base or Settings()
    f = _Fields(data, where, SETTINGS_FIELDS)
    return Settings(
        pair_rate_limit=f.get("pair_rate_limit", _bool, start.pair_rate_limit),
        pair_interval=f.get("pair_interval", _positive_seconds, start.pair_interval),
        pair_burst=f.get("pair_burst", _positive_int, start.pair_burst),
        extra_document_types=f.get("extra_document_types", _mime_list, start.extra_document_types),
        webhook_batch_max=f.get("webhook_batch_max", _positive_int, start.webhook_batch_max),
        webhook_batch_wait=f.get("webhook_batch_wait", _seconds, start.webhook_batch_wait),
    )


TIMING_FIELDS: Final = ("scale", "retry_delays", "webhook_timeout", "media_fetch_timeout")


def parse_timing(data: object, where: str = "timing", base: Timing | None = None) -> Timing:
    """Timing from a mapping; fields it leaves out keep their value in `base`."""
    start = base or Timing()
    f = _Fields(data, where, TIMING_FIELDS)
    return Timing(
        scale=f.get("scale", _seconds, start.scale),
        retry_delays=f.get("retry_delays", _delays, start.retry_delays),
        webhook_timeout=f.get("webhook_timeout", _positive_seconds, start.webhook_timeout),
        media_fetch_timeout=f.get(
            "media_fetch_timeout", _positive_seconds, start.media_fetch_timeout
        ),
    )


WORLD_FIELDS: Final = ("numbers", "phones", "templates", "settings", "timing", "control_token")


def parse_world(document: object) -> World:
    """A World from a world document; WorldError names the first bad field."""
    f = _Fields(document, "world", WORLD_FIELDS)
    world = World(
        numbers=tuple(
            parse_number(item, where)
            for where, item in _items(f.get("numbers", _list, []), "numbers")
        ),
        phones=tuple(
            parse_phone(item, where) for where, item in _items(f.get("phones", _list, []), "phones")
        ),
        templates=tuple(
            parse_template(item, where)
            for where, item in _items(f.get("templates", _list, []), "templates")
        ),
        settings=f.get("settings", lambda v, w: parse_settings(v, "settings"), Settings()),
        timing=f.get("timing", lambda v, w: parse_timing(v, "timing"), Timing()),
        control_token=f.get("control_token", _optional(_text), None),
    )
    check_unique(world)
    return world


def _items(values: list[object], name: str) -> list[tuple[str, object]]:
    return [(f"{name}[{i}]", item) for i, item in enumerate(values)]


def check_unique(world: World) -> None:
    """No two numbers share an id or display number, no phone or template is declared twice."""
    _unique([n.phone_number_id for n in world.numbers], "numbers", "phone_number_id")
    _unique([n.display_phone_number for n in world.numbers], "numbers", "display_phone_number")
    _unique([p.number for p in world.phones], "phones", "number")
    _unique([f"{t.name}/{t.language}" for t in world.templates], "templates", "name")


def _unique(values: list[str], name: str, key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise WorldError(f"{name}[{i}].{key}: {value!r} is declared twice")
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


def number_document(n: BusinessNumber) -> dict[str, Any]:
    return {
        "phone_number_id": n.phone_number_id,
        "display_phone_number": n.display_phone_number,
        "waba_id": n.waba_id,
        "access_token": n.access_token,
        "app_secret": n.app_secret,
        "webhook_url": n.webhook_url,
        "verify_token": n.verify_token,
        "mps": n.mps,
        "verified_name": n.verified_name,
    }


def phone_document(p: Phone) -> dict[str, Any]:
    return {
        "number": p.number,
        "on_whatsapp": p.on_whatsapp,
        "deliver_after": p.deliver_after,
        "read_after": p.read_after,
        "fail_with": p.fail_with,
        "fail_files_with": p.fail_files_with,
        "throttle_first": p.throttle_first,
        "window_open": p.window_open,
        "name": p.name,
    }


def template_document(t: Template) -> dict[str, Any]:
    return {
        "name": t.name,
        "language": t.language,
        "header": t.header,
        "header_params": t.header_params,
        "body_params": t.body_params,
        "status": t.status,
        "category": t.category,
    }


def settings_document(s: Settings) -> dict[str, Any]:
    return {
        "pair_rate_limit": s.pair_rate_limit,
        "pair_interval": s.pair_interval,
        "pair_burst": s.pair_burst,
        "extra_document_types": list(s.extra_document_types),
        "webhook_batch_max": s.webhook_batch_max,
        "webhook_batch_wait": s.webhook_batch_wait,
    }


def timing_document(t: Timing) -> dict[str, Any]:
    return {
        "scale": t.scale,
        "retry_delays": list(t.retry_delays),
        "webhook_timeout": t.webhook_timeout,
        "media_fetch_timeout": t.media_fetch_timeout,
    }


def world_document(world: World, *, with_control_token: bool = True) -> dict[str, Any]:
    """The world as a document `parse_world` reads back to an equal World."""
    doc: dict[str, Any] = {
        "numbers": [number_document(n) for n in world.numbers],
        "phones": [phone_document(p) for p in world.phones],
        "templates": [template_document(t) for t in world.templates],
        "settings": settings_document(world.settings),
        "timing": timing_document(world.timing),
    }
    if with_control_token:
        doc["control_token"] = world.control_token
    return doc


def sandbox_world(
    phone_number_id: str,
    access_token: str,
    app_secret: str,
    webhook_url: str | None,
    verify_token: str,
    *,
    display_phone_number: str = "15550009999",
    waba_id: str = "100000000000001",
    timing: Timing | None = None,
) -> World:
    """The world wafile's sandbox mode runs: one business number and the approved en_US
    templates `file_delivery` (document header), `image_delivery` (image header) and
    `video_delivery` (video header), each with one body text parameter. No phones are
    declared: the magic numbers and every other number work without set-up."""
    number = parse_number(
        {
            "phone_number_id": phone_number_id,
            "display_phone_number": display_phone_number,
            "waba_id": waba_id,
            "access_token": access_token,
            "app_secret": app_secret,
            "webhook_url": webhook_url,
            "verify_token": verify_token,
        },
        "sandbox",
    )
    templates = tuple(
        Template(name=name, language="en_US", header=header, body_params=1)
        for name, header in (
            ("file_delivery", "document"),
            ("image_delivery", "image"),
            ("video_delivery", "video"),
        )
    )
    world = World(numbers=(number,), templates=templates)
    return replace(world, timing=timing) if timing is not None else world
