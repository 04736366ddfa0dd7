"""Which endpoints receive which messages (core.callback_formats.endpoint_receives)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.api.dialects import commbox, digital99, insider, sinch, telesign
from wafile.core.callback_formats import FORMATS, STANDARD, endpoint_receives
from wafile.core.message import NATIVE

VENDORS = sorted(set(FORMATS) - {STANDARD})
ORIGINS = [NATIVE, "commbox", *VENDORS]


def test_every_vendor_format_is_named_after_its_dialect() -> None:
    """A vendor format's name is its dialect's, which is what messages record as origin."""
    names = {m.NAME for m in (commbox, digital99, insider, sinch, telesign)}
    assert set(VENDORS) <= names


@given(st.sampled_from(ORIGINS), st.sampled_from([None, *FORMATS]))
def test_a_standard_endpoint_receives_every_message(origin: str, own: str | None) -> None:
    assert endpoint_receives(STANDARD, origin=origin, own_format=own)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_vendor_endpoint_receives_only_its_dialects_messages(vendor: str) -> None:
    assert endpoint_receives(vendor, origin=vendor, own_format=None)
    assert endpoint_receives(vendor, origin=vendor, own_format=STANDARD)
    for origin in ORIGINS:
        if origin != vendor:
            assert not endpoint_receives(vendor, origin=origin, own_format=None)
            assert not endpoint_receives(vendor, origin=origin, own_format=vendor)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_per_send_url_in_the_vendors_format_overrides_its_endpoint(vendor: str) -> None:
    """Telesign's `callback_url` and Sinch's `callback` replace the account's callback
    URL for that send: the vendor's endpoint does not get that message's events too."""
    assert not endpoint_receives(vendor, origin=vendor, own_format=vendor)
