"""Secrets at rest: sealed with Fernet under a key derived from the server secret.

Access tokens, app secrets and provider passwords are stored only sealed. The key is
HKDF-SHA256 of `WAFILE_SECRET_KEY` with a purpose label, so it is never the secret
itself and never reused for signing links. Changing the server secret makes sealed
values unreadable: `Unsealable` says so instead of returning garbage.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Sealer", "Unsealable", "mask", "sealer_for"]

_INFO = b"wafile/secrets-at-rest/v1"


class Unsealable(ValueError):
    """A sealed value that this server secret cannot open (altered, or another secret)."""


class Sealer:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("a server secret is needed to seal secrets")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def __repr__(self) -> str:
        return "<Sealer>"

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise Unsealable(
                "a stored secret cannot be decrypted: was WAFILE_SECRET_KEY changed?"
            ) from exc


@lru_cache(maxsize=4)  # a process has one server secret; tests use a few
def sealer_for(secret_key: str) -> Sealer:
    """The process's sealer for this secret, made once: deriving the key costs an HKDF,
    which jobs that open a sender's token for every send paid each time."""
    return Sealer(secret_key)


def mask(secret: str, *, visible: int = 1) -> str:
    """What an API may show of a secret: bullets and its last character(s)."""
    if len(secret) <= 4 * visible:
        return "••••"
    return "••••" + secret[-visible:]
