from __future__ import annotations

import pytest

from wafile.errors import ValidationFailed
from wafile.services.outbound import check_callback_url


@pytest.mark.parametrize(
    "url", ["https://example.com/hooks/wafile", "https://example.com:8443/x?y=1"]
)
def test_https_is_accepted(url: str) -> None:
    assert check_callback_url(url, allow_loopback_http=False) == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "http://localhost/x"])
def test_http_only_to_loopback_and_only_when_allowed(url: str) -> None:
    assert check_callback_url(url, allow_loopback_http=True) == url
    with pytest.raises(ValidationFailed):
        check_callback_url(url, allow_loopback_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "ftp://example.com/x",
        "example.com/hook",
        "https://user:pw@example.com/x",
        "https://example.com:99999/x",
        "https://" + "a" * 3000 + ".com/",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(ValidationFailed):
        check_callback_url(url, allow_loopback_http=True)
