"""X-Hub-Signature-256: known vectors (computed with `openssl dgst -sha256 -hmac`) and
the verifier's properties."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import assume, given
from hypothesis import strategies as st

from wafile.core.meta_signature import SIGNATURE_HEADER, hub_signature, verify_hub_signature

# printf '%s' BODY | openssl dgst -sha256 -hmac SECRET
VECTORS = [
    (
        "app-secret-1001",
        b'{"object":"whatsapp_business_account","entry":[]}',
        "9f29abec364f6f5ea0a2a2ce44707aa005cf249f6679b32bfd34edf146407483",
    ),
    (
        "s3cr3t",
        b"caf\\u00e9 \\/ ok",
        "b862d3949363b37f96a811455e36daeb18158191a015952fb583f7d94f669cd1",
    ),
    ("key", b"", "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"),
]


def test_known_vectors() -> None:
    assert SIGNATURE_HEADER == "X-Hub-Signature-256"
    for secret, body, hexdigest in VECTORS:
        assert hub_signature(secret, body) == f"sha256={hexdigest}"
        assert verify_hub_signature(secret, body, f"sha256={hexdigest}")
        assert verify_hub_signature(secret, body, f"SHA256={hexdigest.upper()}")


def test_malformed_headers_are_false_not_errors() -> None:
    secret, body, hexdigest = VECTORS[0]
    for header in (
        None,
        "",
        hexdigest,
        f"sha1={hexdigest}",
        "sha256=",
        f"sha256={hexdigest[:-1]}",
        "sha256=ünïcode",
        f"sha256={hexdigest}00",
    ):
        assert not verify_hub_signature(secret, body, header), header


@given(secret=st.text(min_size=1), body=st.binary())
def test_signature_is_hmac_sha256_and_verifies(secret: str, body: bytes) -> None:
    header = hub_signature(secret, body)
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"
    assert verify_hub_signature(secret, body, header)


@given(secret=st.text(min_size=1), body=st.binary(min_size=1), index=st.integers(min_value=0))
def test_any_changed_byte_fails(secret: str, body: bytes, index: int) -> None:
    header = hub_signature(secret, body)
    i = index % len(body)
    changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    assert not verify_hub_signature(secret, changed, header)


@given(secret=st.text(min_size=1), other=st.text(min_size=1), body=st.binary())
def test_another_secret_fails(secret: str, other: str, body: bytes) -> None:
    # HMAC pads short keys with zero bytes, so "k" and "k\0" are the same key.
    assume(secret.encode().rstrip(b"\0") != other.encode().rstrip(b"\0"))
    assert not verify_hub_signature(other, body, hub_signature(secret, body))
