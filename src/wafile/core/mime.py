"""The final MIME type of a file: what its bytes say, checked against what the client says.

Three witnesses, in order of trust: the type sniffed from the bytes, the client's
claim (a `type` field or Content-Type), and the filename's extension. The bytes
decide. The claim may only name the same content more precisely (a zip that is an
.xlsx, an OLE2 file that is a .doc, text that is CSV) or by another harmless name
(image/jpg for image/jpeg); anything else contradicts the bytes. The extension, the
weakest witness, only narrows a generic sniff that the claim left generic, and never
contradicts anything: "photo.png" holding a JPEG is an everyday mistake. One
exception: a program's extension (.exe, .apk, .sh) refuses the file whatever the
bytes, as WhatsApp shows documents by their name.

Core stays pure, so failures are plain exceptions here: the service layer maps
`TypeMismatch` to `wafile.errors.MediaTypeMismatch` (422) and `Unsupported` to
`wafile.errors.UnsupportedMediaType` (415, listing `media_rules.ACCEPTED_TYPES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from wafile.core.media_rules import accepts

__all__ = [
    "ALIASES",
    "EXECUTABLE_EXTENSIONS",
    "EXECUTABLE_TYPES",
    "GENERIC_TYPES",
    "TypeMismatch",
    "Unsupported",
    "canonical",
    "extension_for",
    "reconcile",
    "type_for_filename",
]


class TypeMismatch(ValueError):
    """The client's claimed type contradicts the file's content (the service answers 422)."""

    def __init__(self, *, sniffed: str, claimed: str) -> None:
        super().__init__(f"the file's content is {sniffed}, but it was sent as {claimed}")
        self.sniffed = sniffed
        self.claimed = claimed


class Unsupported(ValueError):
    """wafile does not carry files of this type (the service answers 415).

    The message is one sentence ending with a full stop; the service appends the
    accepted types.
    """

    def __init__(self, message: str, *, mime_type: str | None) -> None:
        super().__init__(message)
        self.mime_type = mime_type  # None when the content was not recognised at all


_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_PPSX = "application/vnd.openxmlformats-officedocument.presentationml.slideshow"
_OLE2 = "application/x-ole-storage"  # the compound-file container of .doc/.xls/.ppt
_OLE2_OFFICE = frozenset(
    {"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"}
)

# Other names clients and tools use for the same type, mapped to the canonical one.
ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "image/jpg": "image/jpeg",
        "image/pjpeg": "image/jpeg",
        "image/jfif": "image/jpeg",
        "image/x-png": "image/png",
        "audio/mp3": "audio/mpeg",
        "audio/x-mp3": "audio/mpeg",
        "audio/mpeg3": "audio/mpeg",
        "audio/x-mpeg": "audio/mpeg",
        "audio/x-mpeg-3": "audio/mpeg",
        "audio/mpg": "audio/mpeg",
        "audio/m4a": "audio/mp4",
        "audio/x-m4a": "audio/mp4",
        "audio/x-aac": "audio/aac",
        "audio/aacp": "audio/aac",
        "audio/x-hx-aac-adts": "audio/aac",  # libmagic's name for ADTS
        "audio/x-amr": "audio/amr",
        "audio/opus": "audio/ogg",  # Opus in Ogg is what WhatsApp plays as a voice note
        "audio/x-ogg": "audio/ogg",
        "application/ogg": "audio/ogg",
        "video/3gp": "video/3gpp",
        "audio/3gpp": "video/3gpp",  # the same 3GPP container; WhatsApp lists the video name
        "video/avi": "video/x-msvideo",
        "video/msvideo": "video/x-msvideo",
        "video/vnd.avi": "video/x-msvideo",
        "application/x-pdf": "application/pdf",
        "application/x-zip-compressed": "application/zip",  # what Windows browsers send
        "application/x-zip": "application/zip",
        "application/zip-compressed": "application/zip",
        "application/x-rar-compressed": "application/vnd.rar",
        "application/x-rar": "application/vnd.rar",
        "application/rar": "application/vnd.rar",
        "text/x-csv": "text/csv",
        "text/comma-separated-values": "text/csv",
        "application/csv": "text/csv",
        "application/x-csv": "text/csv",
        "application/excel": "application/vnd.ms-excel",
        "application/x-excel": "application/vnd.ms-excel",
        "application/x-msexcel": "application/vnd.ms-excel",
        "application/mspowerpoint": "application/vnd.ms-powerpoint",
        "application/powerpoint": "application/vnd.ms-powerpoint",
        "application/cdfv2": _OLE2,  # libmagic's name for an unidentified OLE2 file
    }
)

# Claims that say nothing about the content: never a contradiction.
GENERIC_TYPES: Final = frozenset(
    {
        "application/octet-stream",
        "application/x-octet-stream",
        "binary/octet-stream",
        "application/binary",
        "application/unknown",
        "application/x-unknown",
        "application/force-download",
        "application/download",
        "application/x-download",
        "*/*",
    }
)

# A generic sniff and the more precise types a claim or extension may narrow it to:
# the bytes alone cannot tell them apart (the zip entries or OLE2 streams that would
# are beyond the sniffed head, or the formats share one container).
_NARROWS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "application/zip": frozenset({"application/zip", _DOCX, _XLSX, _PPTX, _PPSX}),
        _PPTX: frozenset({_PPTX, _PPSX}),  # a slideshow differs only in one content type
        _OLE2: _OLE2_OFFICE,
        # The sniffer's guess between the three OLE2 Office formats is a heuristic.
        **dict.fromkeys(_OLE2_OFFICE, _OLE2_OFFICE),
        "text/plain": frozenset({"text/plain", "text/csv"}),
        # A generic ISO brand (isom, mp42) carries video, audio-only or 3GPP alike.
        "video/mp4": frozenset({"video/mp4", "video/3gpp", "audio/mp4"}),
    }
)

# (claim, sniffed) pairs where the claim loosely names the content: tolerated, the
# sniffed type stays. QuickTime and MP4 are one family and tools mix the names up.
_LOOSE_NAMES: Final = frozenset({("video/quicktime", "video/mp4")})

# Textual claims for text content: the content is carried as text/plain.
_TEXTUAL_TYPES: Final = frozenset(
    {"application/json", "application/xml", "application/yaml", "application/x-yaml"}
)

# Programs and scripts, whatever container they come in (a zip, an OLE2 file, text).
EXECUTABLE_TYPES: Final = frozenset(
    {
        "application/x-msdownload",
        "application/x-dosexec",
        "application/x-msdos-program",
        "application/vnd.microsoft.portable-executable",
        "application/x-executable",
        "application/x-elf",
        "application/x-sharedlib",
        "application/x-mach-binary",
        "application/x-msi",
        "application/x-ms-installer",
        "application/java-archive",
        "application/x-java-archive",
        "application/vnd.android.package-archive",
        "application/x-apple-diskimage",
        "application/x-sh",
        "application/x-shellscript",
        "text/x-shellscript",
        "application/x-bat",
        "application/javascript",
        "text/javascript",
        "application/x-powershell",
        "application/hta",
        "application/x-ms-shortcut",
    }
)
EXECUTABLE_EXTENSIONS: Final = frozenset(
    {
        "exe", "com", "scr", "pif", "cpl", "dll", "sys", "msi", "msp", "msc", "bat",
        "cmd", "ps1", "psm1", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "lnk",
        "reg", "jar", "apk", "xapk", "ipa", "appx", "msix", "xpi", "app", "dmg",
        "pkg", "deb", "rpm", "sh", "bash", "run", "elf", "so", "dylib",
    }
)  # fmt: skip

# Extension → type, for the accepted types; the first extension of each type is the
# one `extension_for` gives.
_BY_EXTENSION: Final[Mapping[str, str]] = MappingProxyType(
    {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "jpe": "image/jpeg",
        "jfif": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "mp4": "video/mp4",
        "m4v": "video/mp4",
        "3gp": "video/3gpp",
        "3gpp": "video/3gpp",
        "avi": "video/x-msvideo",
        "mp3": "audio/mpeg",
        "m4a": "audio/mp4",
        "aac": "audio/aac",
        "amr": "audio/amr",
        "ogg": "audio/ogg",
        "oga": "audio/ogg",
        "opus": "audio/ogg",
        "txt": "text/plain",
        "text": "text/plain",
        "log": "text/plain",
        "csv": "text/csv",
        "pdf": "application/pdf",
        "doc": "application/msword",
        "dot": "application/msword",
        "docx": _DOCX,
        "xls": "application/vnd.ms-excel",
        "xlt": "application/vnd.ms-excel",
        "xlsx": _XLSX,
        "ppt": "application/vnd.ms-powerpoint",
        "pps": "application/vnd.ms-powerpoint",
        "pptx": _PPTX,
        "ppsx": _PPSX,
        "zip": "application/zip",
        "rar": "application/vnd.rar",
    }
)
_EXTENSION_OF: Final[Mapping[str, str]] = MappingProxyType(
    {mime: ext for ext, mime in reversed(list(_BY_EXTENSION.items()))}
)


def canonical(mime_type: str | None) -> str | None:
    """The canonical form of a MIME type: bare, lower case, aliases resolved.

    None for a missing, generic (application/octet-stream) or malformed type: none of
    them says anything about the content.
    """
    if mime_type is None:
        return None
    bare = mime_type.split(";", 1)[0].strip().lower()
    if bare.count("/") != 1 or bare in GENERIC_TYPES:
        return None
    return ALIASES.get(bare, bare)


def type_for_filename(filename: str | None) -> str | None:
    """The accepted type a filename's extension names, if any."""
    ext = _extension(filename)
    return _BY_EXTENSION.get(ext) if ext else None


def extension_for(mime_type: str) -> str:
    """The usual extension for a type, with its dot ("" when there is none)."""
    ext = _EXTENSION_OF.get(canonical(mime_type) or "")
    return f".{ext}" if ext else ""


def reconcile(*, sniffed: str | None, claimed: str | None, filename: str | None) -> str:
    """The file's final, canonical MIME type, always one of `ACCEPTED_TYPES`.

    Raises `Unsupported` for content wafile does not carry (unrecognised bytes,
    programs and scripts, formats outside the accepted set) and `TypeMismatch` when
    the claim contradicts the bytes. Parameters in the claim (`; charset=utf-8`) are
    ignored.
    """
    found = canonical(sniffed)
    claim = canonical(claimed)
    ext = _extension(filename)
    if ext in EXECUTABLE_EXTENSIONS or claim in EXECUTABLE_TYPES or found in EXECUTABLE_TYPES:
        raise Unsupported("wafile does not carry programs or scripts.", mime_type=found or claim)
    if found is None:
        raise Unsupported("the file's content is not a type wafile recognises.", mime_type=None)

    result = _with_claim(found, claim)
    if result == found:  # the claim added nothing: let the extension narrow it
        by_ext = _BY_EXTENSION.get(ext) if ext else None
        if by_ext is not None and by_ext in _NARROWS.get(found, ()):
            result = by_ext
    if result == _OLE2:
        raise Unsupported(
            "the file is an OLE2 compound file but neither its type nor its name says "
            "whether it is a .doc, .xls or .ppt; wafile does not carry other OLE2 files.",
            mime_type=_OLE2,
        )
    if not accepts(result):
        raise Unsupported(f"wafile does not carry {result} files.", mime_type=result)
    return result


def _with_claim(found: str, claim: str | None) -> str:
    """The sniffed type as the claim narrows it; raises if the claim contradicts it."""
    if claim is None or claim == found:
        return found
    narrows = _NARROWS.get(found, frozenset())
    if claim in narrows:
        return claim
    if found in _NARROWS.get(claim, ()) or (claim, found) in _LOOSE_NAMES:
        return found  # the claim names the content more loosely
    if found == "text/plain":
        if claim == "application/vnd.ms-excel":
            return "text/csv"  # Windows labels .csv files with Excel's type
        if (
            claim.startswith("text/")
            or claim in _TEXTUAL_TYPES
            or claim.endswith(("+xml", "+json"))
        ):
            return found
    if narrows:
        if not accepts(claim):
            # A container (zip, OLE2, text) that may well hold what the claim says:
            # the claim is no lie, only a type wafile does not carry.
            raise Unsupported(f"wafile does not carry {claim} files.", mime_type=claim)
    elif not accepts(found):
        raise Unsupported(f"wafile does not carry {found} files.", mime_type=found)
    raise TypeMismatch(sniffed=found, claimed=claim)


def _extension(filename: str | None) -> str | None:
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = base.rstrip(" .")  # Windows ignores trailing dots and spaces: "x.exe." runs
    if "." not in base.lstrip("."):
        return None
    return base.rsplit(".", 1)[1].lower()
