"""The body of `POST /{phone-number-id}/messages`, read into values or refused with the
Graph error Meta gives. Pure: the checks that need the world (templates, media ids,
rates, the 24-hour window) are the emulator's.

Strict on purpose: unknown keys, a caption where Meta allows none, both `id` and `link`,
over-long captions/filenames/texts are refused, so a mistake in wafile's requests shows
up here rather than in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from wafile.emulator.whatsapp import rules
from wafile.emulator.whatsapp.graph_errors import (
    invalid_parameter,
    missing_parameter,
    parameter_value_invalid,
    unsupported_message_type,
)
from wafile.emulator.whatsapp.world import normalise_number

__all__ = [
    "EMULATED_TYPES",
    "MediaRef",
    "Outgoing",
    "ReadReceipt",
    "TemplateRequest",
    "parse_send",
]

EMULATED_TYPES: Final = ("text", "reaction", "template", *rules.MEDIA_TYPES)
_NOT_EMULATED: Final = ("location", "contacts", "interactive")
_OPAQUE_MAX: Final = 512


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaRef:
    """Media in a message: an uploaded `id` or a `link` (exactly one)."""

    id: str | None = None
    link: str | None = None
    caption: str | None = None
    filename: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TemplateRequest:
    name: str
    language: str
    header_kind: str | None = None  # "text", "document", "image", "video", or no header
    header_media: MediaRef | None = None
    header_texts: tuple[str, ...] = ()
    body: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Outgoing:
    to: str  # digits
    to_input: str  # as the request wrote it (echoed in `contacts[].input`)
    type: str
    text: str | None = None
    media: MediaRef | None = None
    template: TemplateRequest | None = None
    reaction: tuple[str, str] | None = None  # (message_id, emoji); "" removes it
    context_message_id: str | None = None
    biz_opaque_callback_data: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadReceipt:
    message_id: str
    typing_indicator: bool = False


def parse_send(body: object) -> Outgoing | ReadReceipt:
    """Read a send (or mark-as-read) request; GraphError on anything Meta refuses."""
    if not isinstance(body, Mapping):
        raise invalid_parameter("The request body must be a JSON object.")
    if "messaging_product" not in body:
        raise missing_parameter("messaging_product")
    if body["messaging_product"] != "whatsapp":
        raise invalid_parameter('Param messaging_product must be "whatsapp".')
    if "status" in body:
        return _read_receipt(body)

    kind = body.get("type", "text")  # Meta's default when `type` is left out
    if kind in _NOT_EMULATED:
        raise unsupported_message_type(f"{kind} messages are not emulated.")
    if kind not in EMULATED_TYPES:
        raise invalid_parameter(f"Param type must be one of {', '.join(EMULATED_TYPES)}.")
    allowed = {
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "context",
        "biz_opaque_callback_data",
        kind,
    }
    _no_unknown_keys(body, allowed, "")

    recipient_type = body.get("recipient_type", "individual")
    if recipient_type == "group":
        raise invalid_parameter("Group messages are not emulated.")
    if recipient_type != "individual":
        raise invalid_parameter('Param recipient_type must be "individual" or "group".')
    if "to" not in body:
        raise missing_parameter("to")
    to_input = body["to"]
    to = normalise_number(to_input)
    if to is None:
        raise parameter_value_invalid(f"Recipient phone number {to_input!r} is not valid.")

    if kind not in body:
        raise missing_parameter(kind)
    content = body[kind]
    if not isinstance(content, Mapping):
        raise invalid_parameter(f"Param {kind} must be a JSON object.")

    text = media = template = reaction = None
    if kind == "text":
        text = _text(content)
    elif kind == "reaction":
        reaction = _reaction(content)
    elif kind == "template":
        template = _template(content)
    else:
        media = _media(kind, content)
    return Outgoing(
        to=to,
        to_input=str(to_input),
        type=kind,
        text=text,
        media=media,
        template=template,
        reaction=reaction,
        context_message_id=_context(body.get("context")),
        biz_opaque_callback_data=_opaque(body.get("biz_opaque_callback_data")),
    )


def _no_unknown_keys(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            name = f"{where}['{key}']" if where else str(key)
            raise invalid_parameter(f"Param {name} is not a valid parameter here.")


def _need(obj: Mapping[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise missing_parameter(f"{where}['{key}']")
    value = _maybe(obj, key, where)
    assert value is not None
    return value


def _maybe(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise invalid_parameter(f"Param {where}['{key}'] must be a string.")
    return value


def _read_receipt(body: Mapping[str, Any]) -> ReadReceipt:
    allowed = {"messaging_product", "recipient_type", "status", "message_id", "typing_indicator"}
    _no_unknown_keys(body, allowed, "")
    if body["status"] != "read":
        raise invalid_parameter('Param status must be "read".')
    if "message_id" not in body:
        raise missing_parameter("message_id")
    message_id = body["message_id"]
    if not isinstance(message_id, str) or not message_id:
        raise invalid_parameter("Param message_id must be a message id.")
    typing = body.get("typing_indicator")
    if typing is not None and (not isinstance(typing, Mapping) or typing.get("type") != "text"):
        raise invalid_parameter('Param typing_indicator must be {"type": "text"}.')
    return ReadReceipt(message_id=message_id, typing_indicator=typing is not None)


def _text(content: Mapping[str, Any]) -> str:
    _no_unknown_keys(content, {"body", "preview_url"}, "text")
    body = _need(content, "body", "text")
    if not body.strip():
        raise invalid_parameter("Param text['body'] must not be empty.")
    if len(body) > rules.TEXT_MAX:
        raise invalid_parameter(
            f"Param text['body'] must be at most {rules.TEXT_MAX} characters long."
        )
    if "preview_url" in content and not isinstance(content["preview_url"], bool):
        raise invalid_parameter("Param text['preview_url'] must be a boolean.")
    return body


def _media(kind: str, content: Mapping[str, Any], *, in_template: bool = False) -> MediaRef:
    allowed = {"id", "link"}
    if rules.RULES[kind].caption and not in_template:
        allowed.add("caption")
    if kind == "document":
        allowed.add("filename")
    for key in content:
        if key not in allowed:
            if key == "caption":
                where = "template media parameters" if in_template else f"{kind} messages"
                raise invalid_parameter(f"Param {kind}['caption'] is not allowed for {where}.")
            raise invalid_parameter(f"Param {kind}['{key}'] is not a valid parameter here.")
    media_id = _maybe(content, "id", kind)
    link = _maybe(content, "link", kind)
    if media_id is not None and link is not None:
        raise invalid_parameter(f"Param {kind} must have either 'id' or 'link', not both.")
    if media_id is None and link is None:
        raise missing_parameter(f"{kind}['id'] or {kind}['link']")
    if media_id is not None and not media_id.strip():
        raise parameter_value_invalid(f"Param {kind}['id'] must not be empty.")
    if link is not None:
        parts = urlsplit(link)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise invalid_parameter(f"Param {kind}['link'] must be an http(s) URL.")
    caption = _maybe(content, "caption", kind)
    if caption is not None and len(caption) > rules.CAPTION_MAX:
        raise invalid_parameter(
            f"Param {kind}['caption'] must be at most {rules.CAPTION_MAX} characters long."
        )
    filename = _maybe(content, "filename", kind)
    if filename is not None:
        if not filename.strip():
            raise invalid_parameter(f"Param {kind}['filename'] must not be empty.")
        if len(filename) > rules.FILENAME_MAX:
            raise invalid_parameter(
                f"Param {kind}['filename'] must be at most {rules.FILENAME_MAX} characters long."
            )
    return MediaRef(id=media_id, link=link, caption=caption, filename=filename)


def _reaction(content: Mapping[str, Any]) -> tuple[str, str]:
    _no_unknown_keys(content, {"message_id", "emoji"}, "reaction")
    message_id = _need(content, "message_id", "reaction")
    emoji = _need(content, "emoji", "reaction")
    if len(emoji) > 10:
        raise parameter_value_invalid("Param reaction['emoji'] must be a single emoji.")
    return message_id, emoji


def _template(content: Mapping[str, Any]) -> TemplateRequest:
    _no_unknown_keys(content, {"name", "language", "components", "namespace"}, "template")
    name = _need(content, "name", "template")
    if "language" not in content:
        raise missing_parameter("template['language']")
    language = content["language"]
    if not isinstance(language, Mapping):
        raise invalid_parameter("Param template['language'] must be a JSON object.")
    _no_unknown_keys(language, {"code", "policy"}, "template['language']")
    code = _need(language, "code", "template['language']")
    if language.get("policy", "deterministic") != "deterministic":
        raise invalid_parameter("Param template['language']['policy'] must be deterministic.")
    components = content.get("components", [])
    if not isinstance(components, list):
        raise invalid_parameter("Param template['components'] must be a list.")

    header_kind: str | None = None
    header_media: MediaRef | None = None
    header_texts: tuple[str, ...] = ()
    body: tuple[str, ...] = ()
    seen: set[str] = set()
    for i, component in enumerate(components):
        where = f"template['components'][{i}]"
        if not isinstance(component, Mapping):
            raise invalid_parameter(f"Param {where} must be a JSON object.")
        ctype = component.get("type")
        if ctype not in {"header", "body", "button"}:
            raise invalid_parameter(f"Param {where}['type'] must be header, body or button.")
        if ctype != "button" and ctype in seen:
            raise invalid_parameter(f"Param {where}: only one {ctype} component is allowed.")
        seen.add(ctype)
        params = component.get("parameters", [])
        if not isinstance(params, list):
            raise invalid_parameter(f"Param {where}['parameters'] must be a list.")
        if ctype == "header":
            header_kind, header_media, header_texts = _header(params, where)
        elif ctype == "body":
            body = tuple(
                _body_param(p, f"{where}['parameters'][{j}]") for j, p in enumerate(params)
            )
        # Buttons carry payloads for the template's own buttons; the emulated templates
        # declare none, so button components are accepted and ignored.
    return TemplateRequest(
        name=name,
        language=code,
        header_kind=header_kind,
        header_media=header_media,
        header_texts=header_texts,
        body=body,
    )


def _header(params: list[Any], where: str) -> tuple[str | None, MediaRef | None, tuple[str, ...]]:
    texts: list[str] = []
    media: tuple[str, MediaRef] | None = None
    for j, param in enumerate(params):
        here = f"{where}['parameters'][{j}]"
        if not isinstance(param, Mapping):
            raise invalid_parameter(f"Param {here} must be a JSON object.")
        ptype = param.get("type")
        if ptype == "text":
            texts.append(_body_param(param, here))
        elif ptype in {"document", "image", "video"}:
            if media is not None or texts:
                raise invalid_parameter(f"Param {here}: a media header takes one parameter.")
            _no_unknown_keys(param, {"type", ptype}, here)
            obj = param.get(ptype)
            if not isinstance(obj, Mapping):
                raise missing_parameter(f"{here}['{ptype}']")
            media = (str(ptype), _media(str(ptype), obj, in_template=True))
        else:
            raise invalid_parameter(f"Param {here}['type'] must be text, document, image or video.")
    if media is not None:
        return media[0], media[1], ()
    if texts:
        return "text", None, tuple(texts)
    return None, None, ()


def _body_param(param: object, where: str) -> str:
    """A body (or text header) parameter as the text it renders to."""
    if not isinstance(param, Mapping):
        raise invalid_parameter(f"Param {where} must be a JSON object.")
    ptype = param.get("type")
    if ptype == "text":
        value = param.get("text")
        if not isinstance(value, str) or not value.strip():
            raise parameter_value_invalid(f"Param {where}['text'] must be a non-empty string.")
        return value
    if ptype in {"currency", "date_time"}:
        obj = param.get(ptype)
        if not isinstance(obj, Mapping) or not isinstance(obj.get("fallback_value"), str):
            raise missing_parameter(f"{where}['{ptype}']['fallback_value']")
        return str(obj["fallback_value"])
    raise invalid_parameter(f"Param {where}['type'] must be text, currency or date_time.")


def _context(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise invalid_parameter("Param context must be a JSON object.")
    _no_unknown_keys(value, {"message_id"}, "context")
    return _need(value, "message_id", "context")


def _opaque(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _OPAQUE_MAX:
        raise invalid_parameter(
            f"Param biz_opaque_callback_data must be a string of at most {_OPAQUE_MAX} characters."
        )
    return value
