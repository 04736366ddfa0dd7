"""The text of a fallback SMS: the plan's template with `{link}`, `{filename}` and
`{caption}` filled in (`str.format` syntax: `{{` and `}}` are literal braces)."""

from __future__ import annotations

from string import Formatter
from typing import Final

__all__ = ["BODY_MAX", "DEFAULT_SMS_TEXT", "PLACEHOLDERS", "check_sms_text", "render_sms_text"]

# Twilio refuses a longer Body (error 21617); about ten GSM-7 segments.
BODY_MAX: Final = 1600
PLACEHOLDERS: Final = frozenset({"link", "filename", "caption"})
DEFAULT_SMS_TEXT: Final = "{filename}: {link}"
DEFAULT_SMS_TEXT_WITH_CAPTION: Final = "{caption}\n{filename}: {link}"


def check_sms_text(template: str) -> str:
    """The template if every placeholder is known and plain; `ValueError` otherwise."""
    if not template.strip():
        raise ValueError("the SMS text is empty")
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:  # a lone { or }
        raise ValueError(
            f"the SMS text is not a valid template ({exc}): write {{{{ for {{"
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"the SMS text may only use the placeholders {known}, not {{{name}}}")
    return template


def render_sms_text(template: str | None, *, link: str, filename: str, caption: str | None) -> str:
    """The SMS body; without a template, the caption (if any), the filename and the link."""
    if template is None:
        template = DEFAULT_SMS_TEXT_WITH_CAPTION if caption else DEFAULT_SMS_TEXT
    return check_sms_text(template).format(link=link, filename=filename, caption=caption or "")
