from __future__ import annotations

from wafile.core.signed_links import derive_key, link_signature, verify_link

KEY = derive_key("s" * 40, "media-link")


def test_valid_until_expiry() -> None:
    sig = link_signature(KEY, "med_1", 1000)
    assert verify_link(KEY, "med_1", 1000, sig, now=999.9)
    assert not verify_link(KEY, "med_1", 1000, sig, now=1000)


def test_any_change_breaks_it() -> None:
    sig = link_signature(KEY, "med_1", 1000)
    assert not verify_link(KEY, "med_2", 1000, sig, now=0)
    assert not verify_link(KEY, "med_1", 1001, sig, now=0)
    assert not verify_link(KEY, "med_1", 1000, sig[:-1] + ("A" if sig[-1] != "A" else "B"), 0)
    assert not verify_link(derive_key("t" * 40, "media-link"), "med_1", 1000, sig, now=0)
    assert not verify_link(derive_key("s" * 40, "other"), "med_1", 1000, sig, now=0)


def test_signature_is_url_safe() -> None:
    sig = link_signature(KEY, "med_1", 1000)
    assert sig.isascii() and "=" not in sig and "+" not in sig and "/" not in sig
