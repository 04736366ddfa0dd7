from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.sms_text import check_sms_text, render_sms_text

LINK = "https://files.example/f/med_1?e=1&s=x"


def test_placeholders_are_filled_and_braces_can_be_literal() -> None:
    text = render_sms_text(
        "{{Bank}} {caption}: {filename} {link}", link=LINK, filename="a.pdf", caption="Statement"
    )
    assert text == f"{{Bank}} Statement: a.pdf {LINK}"


def test_the_default_text_names_the_file_and_the_caption_when_there_is_one() -> None:
    assert render_sms_text(None, link=LINK, filename="a.pdf", caption=None) == f"a.pdf: {LINK}"
    assert render_sms_text(None, link=LINK, filename="a.pdf", caption="Hi") == f"Hi\na.pdf: {LINK}"


@pytest.mark.parametrize(
    "template", ["{url}", "{link.x}", "{link!r}", "{link:>30}", "{0}", "{}", "oops {", "} x", "  "]
)
def test_unknown_or_fancy_placeholders_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="SMS text"):
        check_sms_text(template)


@given(st.text(max_size=200))
def test_any_text_is_either_refused_or_renders_without_error(template: str) -> None:
    try:
        check_sms_text(template)
    except ValueError:
        return
    render_sms_text(template, link=LINK, filename="f", caption=None)
