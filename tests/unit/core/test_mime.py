from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.media_rules import ACCEPTED_TYPES
from wafile.core.mime import (
    ALIASES,
    EXECUTABLE_EXTENSIONS,
    EXECUTABLE_TYPES,
    GENERIC_TYPES,
    TypeMismatch,
    Unsupported,
    canonical,
    extension_for,
    reconcile,
    type_for_filename,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PPSX = "application/vnd.openxmlformats-officedocument.presentationml.slideshow"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"
OLE2 = "application/x-ole-storage"
ACCEPTED = sorted(ACCEPTED_TYPES)


# --- canonical ---------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "target"), sorted(ALIASES.items()))
def test_every_alias(alias: str, target: str) -> None:
    assert canonical(alias) == target
    assert canonical(f" {alias.upper()} ; charset=utf-8") == target


@pytest.mark.parametrize("target", sorted(set(ALIASES.values())))
def test_aliases_lead_to_carried_types(target: str) -> None:
    assert target in ACCEPTED_TYPES or target == OLE2
    assert target not in ALIASES  # one step, no chains


@pytest.mark.parametrize("mime", ACCEPTED)
def test_accepted_types_are_canonical(mime: str) -> None:
    assert canonical(mime) == mime


@pytest.mark.parametrize("generic", [*sorted(GENERIC_TYPES), "", "   ", "pdf", "a/b/c", None])
def test_no_claim(generic: str | None) -> None:
    assert canonical(generic) is None


def test_parameters_and_case() -> None:
    assert canonical('Text/Plain; charset="utf-8"') == "text/plain"
    assert canonical("application/octet-stream; name=x.pdf") is None


# --- extensions --------------------------------------------------------------------


@pytest.mark.parametrize("mime", ACCEPTED)
def test_every_accepted_type_has_an_extension(mime: str) -> None:
    ext = extension_for(mime)
    assert ext.startswith(".")
    assert type_for_filename(f"file{ext}") == mime
    assert type_for_filename(f"FILE{ext.upper()}") == mime


def test_extension_for() -> None:
    assert extension_for("image/jpeg") == ".jpg"
    assert extension_for("image/jpg") == ".jpg"
    assert extension_for("audio/mpeg") == ".mp3"
    assert extension_for("audio/ogg") == ".ogg"
    assert extension_for("application/x-foo") == ""


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (None, None),
        ("", None),
        ("README", None),
        (".bashrc", None),
        ("report.final.PDF", "application/pdf"),
        ("C:\\Users\\ada\\sheet.xlsx", XLSX),
        ("dir/sub.dir/notes", None),
        ("slides.pps", PPT),
        ("voice.opus", "audio/ogg"),
        ("archive.tar.gz", None),
    ],
)
def test_type_for_filename(filename: str | None, expected: str | None) -> None:
    assert type_for_filename(filename) == expected


# --- reconcile: what the bytes say, narrowed ---------------------------------------


@pytest.mark.parametrize(
    ("sniffed", "claimed", "filename", "expected"),
    [
        # The bytes decide; a matching or empty claim changes nothing.
        ("image/png", None, None, "image/png"),
        ("image/png", "image/png", "a.png", "image/png"),
        ("image/png", "IMAGE/PNG; charset=binary", None, "image/png"),
        ("application/pdf", "", "x.pdf", "application/pdf"),
        # Harmless other names are normalised.
        ("image/jpeg", "image/jpg", "a.jpg", "image/jpeg"),
        ("audio/mpeg", "audio/mp3", "a.mp3", "audio/mpeg"),
        ("audio/mp4", "audio/x-m4a", "a.m4a", "audio/mp4"),
        ("audio/ogg", "audio/opus", "a.opus", "audio/ogg"),
        ("application/zip", "application/x-zip-compressed", None, "application/zip"),
        ("application/x-rar-compressed", None, None, "application/vnd.rar"),
        ("video/avi", None, None, "video/x-msvideo"),
        # The extension never contradicts the bytes: "photo.png" holding a JPEG.
        ("image/jpeg", None, "photo.png", "image/jpeg"),
        ("application/pdf", None, "report.docx", "application/pdf"),
        # A zip is narrowed to OOXML by the claim, else by the extension.
        ("application/zip", None, "a.docx", DOCX),
        ("application/zip", None, "a.xlsx", XLSX),
        ("application/zip", None, "a.pptx", PPTX),
        ("application/zip", None, "a.ppsx", PPSX),
        ("application/zip", DOCX, None, DOCX),
        ("application/zip", XLSX, "a.docx", XLSX),  # the claim beats the extension
        ("application/zip", "application/zip", "a.xlsx", XLSX),
        ("application/zip", None, "a.zip", "application/zip"),
        ("application/zip", None, None, "application/zip"),
        # A sniffed OOXML type stays; "zip" is only a looser name for it.
        (DOCX, "application/zip", "a.zip", DOCX),
        (XLSX, None, "a.docx", XLSX),
        (PPTX, None, "show.ppsx", PPSX),
        (PPTX, PPSX, None, PPSX),
        (PPSX, PPTX, "a.pptx", PPSX),
        # OLE2 is resolved by the claim or the extension.
        (OLE2, None, "a.doc", DOC),
        (OLE2, None, "a.xls", XLS),
        (OLE2, None, "a.ppt", PPT),
        (OLE2, None, "a.pps", PPT),
        (OLE2, XLS, "a.doc", XLS),
        ("application/cdfv2", DOC, None, DOC),
        (DOC, XLS, None, XLS),  # the sniffer's guess between the three is a heuristic
        (XLS, None, "a.ppt", PPT),
        (DOC, None, None, DOC),
        (DOC, "application/x-ole-storage", None, DOC),
        # Text: plain, or CSV by claim or extension.
        ("text/plain", None, None, "text/plain"),
        ("text/plain", None, "notes.txt", "text/plain"),
        ("text/plain", None, "data.csv", "text/csv"),
        ("text/plain", "text/csv", None, "text/csv"),
        ("text/plain", "text/x-csv", "data.txt", "text/csv"),
        ("text/plain", "application/vnd.ms-excel", "data.csv", "text/csv"),  # Windows
        ("text/plain", "application/vnd.ms-excel", None, "text/csv"),
        ("text/plain", "text/plain; charset=utf-8", "data.csv", "text/csv"),
        ("text/plain", "text/html", "page.html", "text/plain"),
        ("text/plain", "application/json", None, "text/plain"),
        ("text/plain", "image/svg+xml", None, "text/plain"),
        # One ISO media container, several names.
        ("video/mp4", None, "clip.3gp", "video/3gpp"),
        ("video/mp4", None, "song.m4a", "audio/mp4"),
        ("video/mp4", "audio/mp4", None, "audio/mp4"),
        ("video/mp4", "video/3gpp", None, "video/3gpp"),
        ("video/mp4", "video/quicktime", "clip.mov", "video/mp4"),
        ("audio/mp4", "video/mp4", "song.mp4", "audio/mp4"),
        ("video/3gpp", "video/mp4", None, "video/3gpp"),
        ("video/3gpp", "audio/3gpp", None, "video/3gpp"),
        # The seed's extras.
        ("image/gif", "image/gif", "a.gif", "image/gif"),
        ("application/vnd.rar", "application/x-rar", "a.rar", "application/vnd.rar"),
    ],
)
def test_reconcile(sniffed: str, claimed: str | None, filename: str | None, expected: str) -> None:
    assert reconcile(sniffed=sniffed, claimed=claimed, filename=filename) == expected


@pytest.mark.parametrize("generic", sorted(GENERIC_TYPES))
def test_a_generic_claim_never_contradicts(generic: str) -> None:
    assert reconcile(sniffed="image/png", claimed=generic, filename=None) == "image/png"
    assert reconcile(sniffed="application/zip", claimed=generic, filename="a.docx") == DOCX


@pytest.mark.parametrize(("alias", "target"), sorted(ALIASES.items()))
def test_every_alias_claim_agrees_with_its_target(alias: str, target: str) -> None:
    filename = {OLE2: "a.doc"}.get(target)
    expected = DOC if target == OLE2 else target
    assert reconcile(sniffed=target, claimed=alias, filename=filename) == expected


# --- reconcile: contradictions (422) ------------------------------------------------


@pytest.mark.parametrize(
    ("sniffed", "claimed"),
    [
        ("image/png", "application/pdf"),
        ("image/png", "image/jpeg"),
        ("image/jpeg", "image/png"),
        ("image/webp", "image/png"),
        ("application/pdf", "image/jpeg"),
        ("audio/mpeg", "audio/ogg"),
        ("audio/mp4", "video/3gpp"),
        ("video/3gpp", "audio/mp4"),
        ("video/mp4", "audio/mpeg"),
        ("video/x-msvideo", "video/mp4"),
        (DOCX, XLSX),
        (PPTX, DOCX),
        ("application/zip", "application/pdf"),
        ("application/zip", "image/png"),
        (OLE2, "application/pdf"),
        ("text/plain", "application/pdf"),
        ("text/plain", "image/png"),
        ("text/plain", "application/zip"),
        ("image/gif", "image/png"),
        ("application/vnd.rar", "application/zip"),
        ("image/png", "application/x-foo"),
    ],
)
def test_contradiction(sniffed: str, claimed: str) -> None:
    with pytest.raises(TypeMismatch) as raised:
        reconcile(sniffed=sniffed, claimed=claimed, filename=None)
    assert raised.value.sniffed == canonical(sniffed)
    assert raised.value.claimed == canonical(claimed)
    assert str(raised.value) == (
        f"the file's content is {canonical(sniffed)}, but it was sent as {canonical(claimed)}"
    )


def test_contradiction_is_a_value_error() -> None:
    assert issubclass(TypeMismatch, ValueError)
    assert issubclass(Unsupported, ValueError)


# --- reconcile: not carried (415) ---------------------------------------------------


@pytest.mark.parametrize(
    ("sniffed", "claimed", "filename", "mime_type"),
    [
        # Unknown binary, whatever it claims to be.
        (None, None, None, None),
        (None, "application/pdf", "a.pdf", None),
        (None, "text/plain", "a.txt", None),
        # Programs and scripts, in whatever container.
        ("application/x-msdownload", None, "setup.exe", "application/x-msdownload"),
        ("application/x-executable", "application/pdf", "a.pdf", "application/x-executable"),
        ("application/x-sharedlib", None, None, "application/x-sharedlib"),
        ("application/zip", "application/vnd.android.package-archive", None, "application/zip"),
        ("application/zip", None, "app.apk", "application/zip"),
        ("application/zip", None, "lib.JAR", "application/zip"),
        ("text/plain", None, "run.sh", "text/plain"),
        ("text/plain", "text/javascript", None, "text/plain"),
        ("text/plain", None, "C:\\tmp\\evil.bat", "text/plain"),
        (OLE2, None, "setup.msi", OLE2),
        ("image/png", None, "photo.exe", "image/png"),  # shown to the recipient as .exe
        ("image/png", None, "photo.exe. ", "image/png"),  # Windows drops trailing dots
        (None, "application/x-msdownload", None, "application/x-msdownload"),
        # Formats outside the accepted set.
        ("image/bmp", None, None, "image/bmp"),
        ("image/bmp", "image/png", "a.png", "image/bmp"),
        ("image/heic", None, "a.heic", "image/heic"),
        ("video/quicktime", None, "clip.mov", "video/quicktime"),
        ("video/quicktime", "video/mp4", "clip.mp4", "video/quicktime"),
        ("audio/x-wav", None, None, "audio/x-wav"),
        ("video/3gpp2", None, None, "video/3gpp2"),
        ("application/gzip", None, None, "application/gzip"),
        ("application/vnd.oasis.opendocument.text", None, "a.odt", None),
        ("application/vnd.ms-word.document.macroenabled.12", DOCX, "a.docx", None),
        ("text/plain", "application/rtf", "a.rtf", "application/rtf"),
        ("application/zip", "application/epub+zip", "a.epub", "application/epub+zip"),
        # OLE2 that nothing names.
        (OLE2, None, None, OLE2),
        (OLE2, None, "a.bin", OLE2),
    ],
)
def test_unsupported(
    sniffed: str | None, claimed: str | None, filename: str | None, mime_type: str | None
) -> None:
    with pytest.raises(Unsupported) as raised:
        reconcile(sniffed=sniffed, claimed=claimed, filename=filename)
    if mime_type is not None:
        assert raised.value.mime_type == mime_type
    assert str(raised.value).endswith(".")  # the service appends the accepted types


def test_unsupported_messages() -> None:
    with pytest.raises(Unsupported, match=r"^the file's content is not a type wafile recognises"):
        reconcile(sniffed=None, claimed="application/pdf", filename="a.pdf")
    with pytest.raises(Unsupported, match=r"^wafile does not carry programs or scripts"):
        reconcile(sniffed="application/zip", claimed=None, filename="a.apk")
    with pytest.raises(Unsupported, match=r"^wafile does not carry image/bmp files\.$"):
        reconcile(sniffed="image/bmp", claimed=None, filename=None)
    with pytest.raises(Unsupported, match=r"\.doc, \.xls or \.ppt"):
        reconcile(sniffed=OLE2, claimed=None, filename=None)


# --- properties -------------------------------------------------------------------

safe_names = st.one_of(
    st.none(),
    st.text(max_size=20).filter(lambda n: "." not in n),
    st.builds(
        lambda stem, ext: f"{stem}.{ext}",
        st.text(min_size=1, max_size=10).filter(lambda n: "." not in n and "/" not in n),
        st.sampled_from(["pdf", "jpg", "docx", "csv", "txt", "mp4", "zip", "bin", "heic", "m4a"]),
    ),
)
any_type = st.one_of(
    st.none(),
    st.sampled_from(
        [
            *ACCEPTED,
            *ALIASES,
            *GENERIC_TYPES,
            *EXECUTABLE_TYPES,
            OLE2,
            "video/quicktime",
            "image/bmp",
            "text/html",
            "application/rtf",
        ]
    ),
    st.text(max_size=30),
)
any_name = st.one_of(
    safe_names,
    st.text(max_size=30),
    st.builds(lambda ext: f"x.{ext}", st.sampled_from(sorted(EXECUTABLE_EXTENSIONS))),
)


@given(sniffed=st.sampled_from(ACCEPTED))
def test_no_claim_keeps_an_accepted_sniff(sniffed: str) -> None:
    assert reconcile(sniffed=sniffed, claimed=None, filename=None) == sniffed


@given(
    sniffed=st.sampled_from(ACCEPTED),
    claimed=st.one_of(st.none(), st.sampled_from(sorted(GENERIC_TYPES))),
    filename=safe_names,
)
def test_no_real_claim_never_raises_on_an_accepted_sniff(
    sniffed: str, claimed: str | None, filename: str | None
) -> None:
    assert reconcile(sniffed=sniffed, claimed=claimed, filename=filename) in ACCEPTED_TYPES


@given(sniffed=any_type, claimed=any_type, filename=any_name)
def test_result_is_accepted_or_an_exception(
    sniffed: str | None, claimed: str | None, filename: str | None
) -> None:
    try:
        result = reconcile(sniffed=sniffed, claimed=claimed, filename=filename)
    except (TypeMismatch, Unsupported):
        return
    assert result in ACCEPTED_TYPES
    assert result not in EXECUTABLE_TYPES
    assert canonical(sniffed) is not None
    # The final type is a fixed point: reconciling it again changes nothing.
    assert reconcile(sniffed=result, claimed=result, filename=None) == result


@given(
    sniffed=any_type,
    claimed=any_type,
    ext=st.sampled_from(sorted(EXECUTABLE_EXTENSIONS)),
)
def test_programs_are_never_carried(sniffed: str | None, claimed: str | None, ext: str) -> None:
    with pytest.raises(Unsupported):
        reconcile(sniffed=sniffed, claimed=claimed, filename=f"file.{ext}")


@given(sniffed=st.sampled_from(ACCEPTED), filename=safe_names)
def test_claiming_the_sniffed_type_always_works(sniffed: str, filename: str | None) -> None:
    assert reconcile(sniffed=sniffed, claimed=sniffed, filename=filename) in ACCEPTED_TYPES
