"""The MIME type of a file from its first bytes.

`filetype` (pure Python) recognises the formats by their signatures. On top of it,
four things it gets wrong or does not do for us:

- OOXML: filetype looks only at the first five zip entries, and Word puts
  customXml/ and docProps/ parts before word/ (python-docx's Word-made template has
  its first word/ entry ~4 KB in). We read the main part's content type from
  [Content_Types].xml, else look for a word/, xl/ or ppt/ entry anywhere in the head.
- ISO media: filetype calls every 3GPP file video/mp4; the ftyp major brand says.
- OLE2 (.doc/.xls/.ppt, also .msi): when filetype cannot name the Office format, we
  say application/x-ole-storage and `wafile.core.mime.reconcile` asks the claim or
  the extension.
- Text has no signature: UTF-8 (or UTF-16 with a BOM, or a legacy 8-bit code page
  such as Windows-1252/1255 that spreadsheets export CSV in) without NULs or
  control characters is text/plain. A few two-byte signatures (MZ, BM, %!) are
  also common starts of text, so they lose to a text reading.

Types are returned in canonical form (`wafile.core.mime.canonical`).
"""

from __future__ import annotations

import codecs
import re
import struct
import zlib
from typing import Final

import filetype  # type: ignore[import-untyped]  # no type hints shipped

from wafile.core.mime import canonical

__all__ = ["SNIFF_BYTES", "sniff"]

# How much of the head the sniffer needs. OOXML needs the most: the first word/,
# xl/ or ppt/ entry is at ~0.5 KB (python-docx, openpyxl, XlsxWriter) to ~4 KB (a
# Word-made file with customXml parts); 16 KiB leaves room for larger leading parts.
SNIFF_BYTES: Final = 16 * 1024

_ZIP_LOCAL: Final = b"PK\x03\x04"
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# The main part's content type in [Content_Types].xml → the package's type.
_OOXML_MAIN: Final = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template"
    ),
    "application/vnd.ms-word.document.macroenabled.main+xml": (
        "application/vnd.ms-word.document.macroenabled.12"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.template"
    ),
    "application/vnd.ms-excel.sheet.macroenabled.main+xml": (
        "application/vnd.ms-excel.sheet.macroenabled.12"
    ),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    ),
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml": (
        "application/vnd.openxmlformats-officedocument.presentationml.slideshow"
    ),
    "application/vnd.ms-powerpoint.presentation.macroenabled.main+xml": (
        "application/vnd.ms-powerpoint.presentation.macroenabled.12"
    ),
}
_CONTENT_TYPE_RE: Final = re.compile(rb'ContentType="([^"]+\.main\+xml)"', re.IGNORECASE)
# The folder of an OOXML package's main part, when [Content_Types].xml is not readable.
_OOXML_FOLDERS: Final = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

# ISO base media major brands whose type is not video/mp4.
_FTYP_BRANDS: Final = {
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",  # audiobook
    b"M4V ": "video/mp4",
    b"qt  ": "video/quicktime",
}

# filetype matches these on two bytes, which text can start with too.
_WEAK_SIGNATURES: Final = frozenset(
    {"application/x-msdownload", "image/bmp", "application/postscript"}
)
# Control characters that appear in real text files (\x1a ends old DOS files).
_TEXT_CONTROLS: Final = frozenset(b"\t\n\v\f\r\x1a\x1b")
_BINARY_BYTES: Final = bytes(sorted(frozenset(range(0x20)) - _TEXT_CONTROLS)) + b"\x7f"


def sniff(head: bytes) -> str | None:
    """The canonical MIME type of a file from its first `SNIFF_BYTES`, None if unknown."""
    head = head[:SNIFF_BYTES]
    if not head:
        return None
    found: str | None = filetype.guess_mime(head)
    if head.startswith(_ZIP_LOCAL):
        found = _ooxml(head) or found
    elif head[4:8] == b"ftyp":
        found = _iso_media(head) or found
    elif head.startswith(_OLE2_MAGIC) and found is None:
        found = "application/x-ole-storage"
    elif head.startswith(b"OggS") and b"\x80theora" in head[:64]:
        found = "video/ogg"
    if (found is None or found in _WEAK_SIGNATURES) and _is_text(head):
        found = "text/plain"
    return canonical(found)


def _ooxml(head: bytes) -> str | None:
    """The OOXML type of a zip, from the entries in the head; None if not OOXML."""
    folder_type: str | None = None
    for name, data, method in _zip_entries(head):
        if name == "[Content_Types].xml":
            main = _main_content_type(data, method)
            if main is not None:
                return main
        for folder, mime in _OOXML_FOLDERS.items():
            if folder_type is None and name.startswith(folder):
                folder_type = mime
    return folder_type


def _zip_entries(head: bytes) -> list[tuple[str, bytes, int]]:
    """(name, data as far as the head goes, compression method) of each local header.

    Headers are found by signature rather than by walking sizes, because streaming
    zip writers leave the sizes to a trailing data descriptor.
    """
    entries = []
    at = head.find(_ZIP_LOCAL)
    while at != -1 and at + 30 <= len(head):
        (method,) = struct.unpack_from("<H", head, at + 8)
        name_len, extra_len = struct.unpack_from("<HH", head, at + 26)
        start = at + 30 + name_len + extra_len
        name = head[at + 30 : at + 30 + name_len].decode("cp437", errors="replace")
        entries.append((name, head[start:], method))
        at = head.find(_ZIP_LOCAL, at + 4)
    return entries


def _main_content_type(data: bytes, method: int) -> str | None:
    if method == 0:  # stored
        xml = data
    elif method == 8:  # deflated
        try:
            xml = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data, 64 * 1024)
        except zlib.error:
            return None
    else:
        return None
    match = _CONTENT_TYPE_RE.search(xml)
    if match is None:
        return None
    return _OOXML_MAIN.get(match.group(1).decode("ascii", errors="replace").lower())


def _iso_media(head: bytes) -> str | None:
    brand = head[8:12]
    if brand in _FTYP_BRANDS:
        return _FTYP_BRANDS[brand]
    if brand.startswith(b"3g2"):
        return "video/3gpp2"
    if brand.startswith(b"3g"):  # 3gp4..3gp7, 3gr6, 3gs6, 3ge6, 3gg6
        return "video/3gpp"
    return None


def _is_text(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = codecs.getincrementaldecoder("utf-16")().decode(head, final=False)
        except UnicodeDecodeError:
            return False
        return not any(ord(c) < 0x20 and ord(c) not in _TEXT_CONTROLS for c in text)
    # Any other text (UTF-8, ASCII, legacy 8-bit code pages) has no C0 controls but
    # whitespace, which nearly every binary format has in its first bytes.
    return len(head.translate(None, _BINARY_BYTES)) == len(head)
