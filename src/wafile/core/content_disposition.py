"""Content-Disposition: read a filename from one (RFC 6266 with RFC 5987 `filename*`),
and write one for a download that every client understands.

Parsing uses the standard library's MIME header parser, which already implements
RFC 2231/5987 extended parameters; wafile adds only the choice of which name wins.
"""

from __future__ import annotations

import unicodedata
from email.message import Message
from email.utils import collapse_rfc2231_value, unquote
from urllib.parse import quote

__all__ = ["attachment", "filename_from"]


def filename_from(header: str | None) -> str | None:
    """The filename in a Content-Disposition value; `filename*` wins over `filename`.

    Returned exactly as given (unicode kept); None when there is none.
    """
    if not header:
        return None
    msg = Message()
    msg["content-disposition"] = header
    plain: str | None = None
    extended: str | None = None
    for key, value in msg.get_params(header="content-disposition", failobj=[]):
        if key.lower() != "filename":
            continue
        if isinstance(value, tuple):  # filename*=charset'lang'percent-encoded
            try:
                extended = collapse_rfc2231_value(value, errors="strict")
            except (UnicodeError, LookupError):
                continue  # an undecodable filename* falls back to filename
        else:
            plain = unquote(value)
    name = extended if extended is not None else plain
    return name if name and name.strip() else None


def attachment(filename: str, *, inline: bool = False) -> str:
    """A Content-Disposition for `filename`: an ASCII fallback plus the exact UTF-8 name.

    Old clients read `filename`, current ones read `filename*` (RFC 6266 section 4.3).
    """
    kind = "inline" if inline else "attachment"
    fallback = _ascii_fallback(filename)
    exact = quote(filename, safe="!#$&+-.^_`|~")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{exact}"


def _ascii_fallback(filename: str) -> str:
    decomposed = unicodedata.normalize("NFKD", filename)
    chars = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if ch.isascii() and ch.isprintable() and ch not in '"\\/':
            chars.append(ch)
        else:
            chars.append("_")
    return "".join(chars).strip() or "file"
