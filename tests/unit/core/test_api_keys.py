from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from wafile.core.api_keys import (
    PUBLIC_ID_LEN,
    SECRET_LEN,
    format_key,
    hash_secret,
    parse_key,
    redact_keys,
    verify_secret,
)

hexchars = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)
public_ids = st.text(alphabet="0123456789abcdef", min_size=PUBLIC_ID_LEN, max_size=PUBLIC_ID_LEN)
secrets_ = st.text(alphabet="0123456789abcdef", min_size=SECRET_LEN, max_size=SECRET_LEN)


@given(public_ids, secrets_)
def test_format_then_parse_round_trips(public_id: str, secret: str) -> None:
    parsed = parse_key(format_key(public_id, secret))
    assert parsed is not None
    assert (parsed.public_id, parsed.secret) == (public_id, secret)


@given(st.text(alphabet=string.printable, max_size=120))
def test_parse_accepts_only_exact_shape(raw: str) -> None:
    parsed = parse_key(raw)
    if parsed is not None:
        assert format_key(parsed.public_id, parsed.secret) == raw.strip()


@given(hexchars, hexchars)
def test_parse_rejects_wrong_lengths(public_id: str, secret: str) -> None:
    raw = f"wfk_{public_id}_{secret}"
    ok = len(public_id) == PUBLIC_ID_LEN and len(secret) == SECRET_LEN
    assert (parse_key(raw) is not None) == ok


def test_parse_rejects_other_prefixes_and_case() -> None:
    good = "wfk_" + "a" * 12 + "_" + "b" * 48
    assert parse_key(good) is not None
    assert parse_key(good.upper()) is None
    assert parse_key("sk_" + good[4:]) is None
    assert parse_key(good + "c") is None
    assert parse_key("") is None


def test_hash_verify() -> None:
    stored = hash_secret("c" * 48)
    assert len(stored) == 64
    assert verify_secret("c" * 48, stored)
    assert not verify_secret("d" * 48, stored)


def test_repr_never_shows_the_secret() -> None:
    parsed = parse_key("wfk_" + "a" * 12 + "_" + "b" * 48)
    assert "b" * 48 not in repr(parsed)


@given(public_ids, secrets_, st.text(max_size=30), st.text(max_size=30))
def test_redact_removes_every_secret(public_id: str, secret: str, pre: str, post: str) -> None:
    text = f"{pre} {format_key(public_id, secret)} {post}"
    clean = redact_keys(text)
    assert secret not in clean.replace(pre, "").replace(post, "")
    assert f"wfk_{public_id}_***" in clean
