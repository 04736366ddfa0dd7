"""Streaming ingest: request body → blob store, hashing and measuring on the way.

The body is never held whole: each chunk read from the socket is parsed (multipart)
or taken as is (raw body), added to the SHA-256 and the size, its first bytes kept for
sniffing, and handed on to the store. A multipart body is parsed as a stream by
python-multipart's push parser, so the file part goes straight to storage instead of
being spooled to a temporary file and copied afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from wafile.core.content_disposition import filename_from
from wafile.errors import (
    EmptyFile,
    MalformedUpload,
    PayloadTooLarge,
    ValidationFailed,
    WafileError,
)

__all__ = ["FILE_FIELD", "Ingest", "multipart_boundary", "too_large"]

FILE_FIELD = "file"
# Text fields beside the file (`type`, `filename`, `messaging_product`) are small.
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16


def multipart_boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None if it is not one."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedUpload("multipart/form-data without a boundary")
    return boundary


def too_large(limit: int) -> PayloadTooLarge:
    """The one 413 for an upload over `WAFILE_MAX_UPLOAD_BYTES`, however it was found."""
    human = f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return PayloadTooLarge(
        f"the file is larger than this server's limit of {human} "
        f"({limit} bytes, WAFILE_MAX_UPLOAD_BYTES)",
        limit=limit,
    )


@dataclass
class Ingest:
    """One upload in flight. Iterate `raw()` or `multipart()` into the store, then
    read the results. An error found while streaming (too large, malformed) is raised
    from the iterator; the store passes it through unchanged (see `media/store.py`).
    """

    max_bytes: int
    sniff_bytes: int
    sha256: str = ""
    size: int = 0
    head: bytes = b""
    filename: str | None = None
    part_type: str | None = None  # the file part's own Content-Type (a weak claim)
    fields: dict[str, str] = field(default_factory=dict)
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    def _take(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes)
        self._hash.update(data)
        if len(self.head) < self.sniff_bytes:
            self.head += data[: self.sniff_bytes - len(self.head)]

    def _finish(self) -> None:
        if self.size == 0:
            raise EmptyFile("the file is empty (0 bytes)")
        self.sha256 = self._hash.hexdigest()

    async def raw(
        self, body: AsyncIterable[bytes], *, content_disposition: str | None
    ) -> AsyncIterator[bytes]:
        """The whole body is the file; its name comes from Content-Disposition."""
        self.filename = filename_from(content_disposition)
        async for chunk in body:
            if chunk:
                self._take(chunk)
                yield chunk
        self._finish()

    async def multipart(
        self, body: AsyncIterable[bytes], *, boundary: bytes, file_field: str = FILE_FIELD
    ) -> AsyncIterator[bytes]:
        """Yield the bytes of the `file` part (a dialect may name it otherwise, e.g.
        CommBox's `pic`) while parsing the rest of the form."""
        reader = _FormReader(boundary, file_field)
        async for chunk in body:
            try:
                reader.parser.write(chunk)
            except MultipartParseError as exc:
                raise MalformedUpload(f"malformed multipart body: {exc}") from None
            if reader.problem is not None:
                raise reader.problem
            if reader.file_data:
                data = b"".join(reader.file_data)
                reader.file_data.clear()
                self._take(data)
                yield data
        if not reader.ended:
            raise MalformedUpload("the multipart body is truncated (no closing boundary)")
        if not reader.file_seen:
            raise ValidationFailed(f"the form has no `{file_field}` part")
        self.filename = reader.filename
        self.part_type = reader.part_type
        self.fields = reader.fields
        self._finish()


def _whatwg_unescape(name: str | None) -> str | None:
    """Browsers and httpx write `"`, CR and LF in a form filename as %22, %0D, %0A
    (WHATWG HTML, multipart/form-data encoding); give the name back its characters."""
    if name is None:
        return None
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


class _FormReader:
    """python-multipart callbacks → the file part's data and the small text fields."""

    def __init__(self, boundary: bytes, file_field: str = FILE_FIELD) -> None:
        self.file_field = file_field
        self.file_data: list[bytes] = []
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.part_type: str | None = None
        self.file_seen = False
        self.ended = False
        self.problem: WafileError | None = None
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part: str | None = None  # field name of the current part
        self._is_file = False
        self._value = bytearray()
        self.parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._part = None
        self._is_file = False
        self._value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        raw = self._headers.get(b"content-disposition", b"")
        # Browsers and curl send the filename as raw UTF-8 inside the quotes.
        try:
            disposition = raw.decode("utf-8")
        except UnicodeDecodeError:
            disposition = raw.decode("latin-1")
        _, params = parse_options_header(raw)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._part = name
        if name == self.file_field:
            if self.file_seen:
                self.problem = MalformedUpload(f"more than one `{self.file_field}` part")
                return
            self.file_seen = True
            self._is_file = True
            self.filename = _whatwg_unescape(filename_from(disposition))
            ctype = self._headers.get(b"content-type")
            if ctype:
                self.part_type = ctype.decode("latin-1").strip()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.file_data.append(bytes(data[start:end]))
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            self.problem = MalformedUpload(
                f"form field `{self._part}` is longer than {MAX_FIELD_BYTES} bytes"
            )

    def _part_end(self) -> None:
        if not self._is_file and self._part:
            if len(self.fields) >= MAX_FIELDS:
                self.problem = MalformedUpload(f"more than {MAX_FIELDS} form fields")
                return
            self.fields[self._part] = self._value.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True
