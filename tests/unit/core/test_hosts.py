from __future__ import annotations

import pytest

from wafile.core.hosts import is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.1.2.3", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_which_hosts_keep_the_sandbox_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
