from __future__ import annotations

from dataclasses import replace

import pytest

from wafile.core.senders import WhatsAppSecrets, WhatsAppSender, check_sender, check_sender_name

OK = WhatsAppSender(phone_number_id="1001", waba_id="2001", display_phone_number="+1 555 000 1001")
SECRETS = WhatsAppSecrets(access_token="tok", app_secret="sec", verify_token="vt")


def test_a_valid_sender_passes() -> None:
    check_sender(OK, SECRETS)
    assert check_sender_name("main-number_2") == "main-number_2"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone_number_id": "10 01"}, "phone_number_id"),
        ({"waba_id": ""}, "waba_id"),
        ({"display_phone_number": "12345"}, "display_phone_number"),
        ({"display_phone_number": "call me"}, "display_phone_number"),
        ({"graph_url": "ftp://graph.facebook.com"}, "graph_url"),
        ({"graph_url": "https://graph.facebook.com?x=1"}, "graph_url"),
        ({"graph_version": "23"}, "graph_version"),
        ({"mps": 0}, "mps"),
        ({"mps": 1001}, "mps"),
    ],
)
def test_bad_settings_name_their_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        check_sender(replace(OK, **change), SECRETS)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["access_token", "app_secret", "verify_token"])
@pytest.mark.parametrize("value", ["", "with space", "x" * 4097])
def test_bad_credentials_name_their_field(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        check_sender(OK, replace(SECRETS, **{field: value}))


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 65, "ümlaut"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="sender name"):
        check_sender_name(name)


def test_secrets_never_show_in_repr() -> None:
    assert "tok" not in repr(SECRETS) and "sec" not in repr(SECRETS)


def test_default_templates_one_per_file_category() -> None:
    from wafile.core.senders import DefaultTemplate

    good = replace(
        OK, default_templates=(DefaultTemplate(category="document", name="file_delivery"),)
    )
    check_sender(good, SECRETS)
    assert good.default_template("document") == DefaultTemplate(
        category="document", name="file_delivery"
    )
    assert good.default_template("image") is None
    for bad in (
        (DefaultTemplate(category="audio", name="x"),),
        (DefaultTemplate(category="image", name="a"), DefaultTemplate(category="image", name="b")),
        (DefaultTemplate(category="video", name="Has Spaces"),),
    ):
        with pytest.raises(ValueError, match="default_templates"):
            check_sender(replace(OK, default_templates=bad), SECRETS)
