"""The display name of a fetched file: which source wins, and how it is cleaned.

An explicit `filename` wins, then the origin's Content-Disposition (RFC 6266, with
`filename*`), then the last segment of the URL's path (percent-decoded). None means
no source named it: the caller then names it "file" plus the extension of the type
sniffed from its bytes (Telesign's default). The result is a display name only,
never a storage path, but it is still cut to its last path segment, stripped of
control characters and kept to `MAX_NAME` characters (the extension preserved).
"""

from __future__ import annotations

import unicodedata
from typing import Final
from urllib.parse import unquote, urlsplit

from wafile.core.content_disposition import filename_from

__all__ = ["MAX_NAME", "clean", "from_url", "resolve"]

MAX_NAME: Final = 255
_MAX_EXTENSION: Final = 16


def resolve(
    *, explicit: str | None, content_disposition: str | None, urls: tuple[str, ...] = ()
) -> str | None:
    """The first usable name of: `explicit`, the Content-Disposition, each of `urls`.

    `urls` is tried in order (say, the URL after redirects, then the one asked for).
    """
    if explicit is not None and explicit.strip():
        return explicit  # the caller's own choice, exactly as given
    for candidate in (filename_from(content_disposition), *(from_url(u) for u in urls)):
        name = clean(candidate)
        if name is not None:
            return name
    return None


def from_url(url: str) -> str | None:
    """The last segment of the URL's path, percent-decoded (UTF-8); None when the path
    ends with `/` (a folder's name is not the file's)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    segment = path.rsplit("/", 1)[-1]
    return unquote(segment, errors="replace") if segment else None


def clean(name: str | None) -> str | None:
    """A name fit to show: the last segment of any path in it, no control characters,
    no surrounding blanks or dots, at most `MAX_NAME` characters. None if nothing is left.
    """
    if name is None:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".").strip()
    if not name:
        return None
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and len(ext) <= _MAX_EXTENSION:
            name = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME]
    return name
