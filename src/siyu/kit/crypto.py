"""Secrets: password hashing, API-key secrets, and keys derived from the instance secret.

* Passwords are hashed with Argon2id (``argon2-cffi``), which salts and tunes itself.
* API-key secrets carry 256 random bits, so a single SHA-256 is the right store: it is fast to
  look up by hash, and a slow KDF adds nothing against brute force of a 256-bit value.
* Keys for other purposes (sessions, identifier hashing, encryption) are derived from the one
  instance secret with HKDF, each under its own label, so no two uses share key material.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "sy_"
_API_KEY_RANDOM_BYTES = 32
MIN_API_KEY_LENGTH = 24

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (salted, self-describing)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises for a wrong or malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_api_key_secret() -> str:
    """A new API-key secret: ``sy_`` followed by 43 URL-safe characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_API_KEY_RANDOM_BYTES)


def hash_api_key(secret: str) -> str:
    """The stored form of an API-key secret (hex SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_hint(secret: str) -> str:
    """The part of a secret that may be shown again, to tell keys apart (``sy_AbC1…``)."""
    return secret[:8] + "…"


def generate_password(length: int = 16) -> str:
    """A random password without look-alike characters, for bootstrap accounts."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def derive_key(secret_key: str, label: str, length: int = 32) -> bytes:
    """A key for one purpose (``label``) derived from the instance secret with HKDF-SHA256."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"siyu:{label}".encode())
    return hkdf.derive(secret_key.encode())


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two secrets without leaking where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())
