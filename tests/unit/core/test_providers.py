"""Media providers: Sinch's name rule, credentials, and where a credential may go."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from wafile.core.providers import (
    Auth,
    Credential,
    Provider,
    ProviderSecret,
    allows,
    check_allowed,
    check_credentials,
    check_provider_name,
    same_origin,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize("name", ["your-basic-provider", "bearer_media_provider_name", "A" * 200])
def test_sinch_names(name: str) -> None:
    assert check_provider_name(name) == name


@pytest.mark.parametrize("name", ["", "with space", "digits1", "dot.ted", "é", "A" * 201])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        check_provider_name(name)


def test_credentials_become_an_authorization_header_and_hide_in_repr() -> None:
    def provider(auth: Auth, username: str | None) -> Provider:
        return Provider(
            id="prv_1",
            account_id="acc_1",
            name="p",
            type="www",
            auth=auth,
            username=username,
            allowed=(),
            created_at=NOW,
            updated_at=NOW,
        )

    basic = Credential.of(provider(Auth.BASIC, "user"), ProviderSecret(value="AbCdEf123456"))
    assert basic.authorization == "Basic " + base64.b64encode(b"user:AbCdEf123456").decode()
    bearer = Credential.of(provider(Auth.BEARER, None), ProviderSecret(value="tok"))
    assert bearer.authorization == "Bearer tok"
    assert "AbCdEf" not in repr(basic) and "tok" not in repr(ProviderSecret(value="tok"))


@pytest.mark.parametrize(
    ("auth", "username", "secret"),
    [
        (Auth.BASIC, "a:b", "pw"),
        (Auth.BASIC, "", "pw"),
        (Auth.BASIC, "u", ""),
        (Auth.BASIC, "u", "pw\r\nX-Evil: 1"),
        (Auth.BEARER, None, "two words"),
    ],
)
def test_credentials_that_cannot_go_in_a_header(
    auth: Auth, username: str | None, secret: str
) -> None:
    with pytest.raises(ValueError, match="config"):
        check_credentials(auth, username=username, secret=secret)


def test_allowed_hosts_and_prefixes() -> None:
    allowed = check_allowed(["Files.Example.com", "*.cdn.example", "https://S.example/exports/"])
    assert allowed == ("files.example.com", "*.cdn.example", "https://s.example/exports/")
    assert allows(allowed, "https://files.example.com/a.pdf")
    assert allows(allowed, "http://eu.cdn.example/a.pdf")
    assert allows(allowed, "https://s.example/exports/2026/a.pdf")
    assert not allows(allowed, "https://s.example/private/a.pdf")
    assert not allows(allowed, "https://s.example/exports/../private/a.pdf")
    assert not allows(allowed, "https://s.example/exports/%2e%2e/private/a.pdf")
    assert not allows(allowed, "https://evil.example/files.example.com")
    assert not allows(allowed, "https://files.example.com.evil.example/")
    assert allows((), "https://anywhere.example/")
    for bad in (["ftp://x.example/"], ["https://u:p@x.example/"], ["not a host"]):
        with pytest.raises(ValueError, match="allowed"):
            check_allowed(bad)


def test_same_origin() -> None:
    assert same_origin("https://a.example/x", "https://A.example:443/y")
    assert not same_origin("https://a.example/x", "http://a.example/x")
    assert not same_origin("https://a.example/x", "https://a.example:8443/x")
    assert not same_origin("https://a.example/x", "https://b.example/x")
