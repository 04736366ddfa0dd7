"""HTTP `Range: bytes=...` for downloads (RFC 9110 section 14).

Only single ranges are served as 206; a multi-range request gets the whole file
(200), which the RFC allows and every client handles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ByteRange", "Unsatisfiable", "parse_range"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(ValueError):
    """The range lies wholly outside the file (416)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, None for the whole file; `Unsatisfiable` for 416.

    Syntactically invalid or multi-range headers are ignored (whole file), as the RFC
    says a server may.
    """
    if not header:
        return None
    match = _RANGE_RE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise Unsatisfiable(header)
        return ByteRange(start=max(size - n, 0), end=size)
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable(header)
    return ByteRange(start=start, end=end)
