from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.crypto import Sealer, Unsealable, mask

SECRET = "s" * 40


@given(st.text(max_size=300))
def test_round_trip(plaintext: str) -> None:
    sealer = Sealer(SECRET)
    sealed = sealer.seal(plaintext)
    assert sealer.open(sealed) == plaintext
    if len(plaintext) >= 4:
        assert plaintext not in sealed


def test_sealing_is_randomised_and_bound_to_the_secret() -> None:
    sealer = Sealer(SECRET)
    a, b = sealer.seal("token"), sealer.seal("token")
    assert a != b  # a fresh IV each time: equal secrets do not look equal at rest
    with pytest.raises(Unsealable, match="WAFILE_SECRET_KEY"):
        Sealer(SECRET + "x").open(a)
    tampered = a[:-2] + ("A" if a[-2] != "A" else "B") + a[-1]
    with pytest.raises(Unsealable):
        sealer.open(tampered)
    with pytest.raises(Unsealable):
        sealer.open("not a token at all ✓")
    assert "s" * 10 not in repr(sealer)


def test_no_secret_no_sealer() -> None:
    with pytest.raises(ValueError, match="server secret"):
        Sealer("")


def test_mask_shows_at_most_the_last_character() -> None:
    assert mask("hunter2-password") == "••••d"
    assert mask("abc") == "••••"
    assert mask("") == "••••"
    assert mask("abcdefghij", visible=2) == "••••ij"
