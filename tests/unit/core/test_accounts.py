from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wafile.core.accounts import (
    LAST_USED_RESOLUTION,
    check_account_name,
    check_key_name,
    needs_last_used_update,
)


@pytest.mark.parametrize("name", ["acme", "Acme-Bank_2", "a", "shop.example", "x" * 64])
def test_good_account_names(name: str) -> None:
    assert check_account_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "-lead", "has space", "semi;colon", "ümlaut"])
def test_bad_account_names(name: str) -> None:
    with pytest.raises(ValueError, match="account name"):
        check_account_name(name)


def test_key_names() -> None:
    assert check_key_name("  billing  ") == "billing"
    with pytest.raises(ValueError):
        check_key_name("two\nlines")
    with pytest.raises(ValueError):
        check_key_name("x" * 201)


def test_last_used_written_at_most_once_per_resolution() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert needs_last_used_update(None, now)
    assert not needs_last_used_update(now - LAST_USED_RESOLUTION + timedelta(seconds=1), now)
    assert needs_last_used_update(now - LAST_USED_RESOLUTION, now)
