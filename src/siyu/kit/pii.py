"""Personal identifiers at rest (ARCHITECTURE rule 8): encrypted, found by keyed hash, shown masked.

* :class:`IdentifierVault` encrypts each identifier with AES-256-GCM (``cryptography``) under a
  key derived from the instance secret, and computes a *blind index*: HMAC-SHA256 of the
  normalised value under a second derived key, scoped by merchant and identity kind. Lookups go
  by the blind index, so the database never holds a plaintext identifier, and the same phone
  number at two merchants gives two unrelated hashes.
* :func:`normalise_identifier` makes equal identifiers equal before hashing: phone numbers to
  E.164 with +86 as the default region (Google's ``phonenumbers``), e-mail lower-cased, others
  stripped.
* :func:`mask_identifier` is what views show (``138****0000``).

Changing ``SIYU_SECRET_KEY`` makes stored identifiers unreadable and unfindable: keep it with the
database backups.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
from enum import StrEnum

import phonenumbers
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from siyu.kit.crypto import derive_key

DEFAULT_PHONE_REGION = "CN"
_NONCE_BYTES = 12
_VERSION = b"\x01"


class IdentityKind(StrEnum):
    """The identities a member can have (SPEC §2)."""

    ALIPAY_USER_ID = "alipay_user_id"
    WECHAT_OPENID = "wechat_openid"
    WECHAT_UNIONID = "wechat_unionid"
    DOUYIN_OPENID = "douyin_openid"
    PHONE = "phone"
    MEMBER_NO = "member_no"
    DEVICE_ID = "device_id"
    EMAIL = "email"


class InvalidIdentifier(ValueError):
    """An identifier that cannot be normalised (say, a phone number with too few digits)."""


_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")
"""A mainland mobile number written plainly — most phones Siyu sees; skips the full parser."""


def normalise_phone(raw: str, default_region: str = DEFAULT_PHONE_REGION) -> str:
    """E.164 form (``+8613800138000``); numbers without a country code are taken as Chinese."""
    if default_region == "CN" and _CN_MOBILE.fullmatch(raw):
        return "+86" + raw  # what phonenumbers returns for these (a property test checks it)
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier("not a possible phone number (wrong length for its country)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=65_536)
def normalise_identifier(kind: IdentityKind, raw: str) -> str:
    """The canonical form of an identifier, so that equal people hash equally.

    Cached: a batch carries the same member's identifiers again and again."""
    value = raw.strip()
    if not value:
        raise InvalidIdentifier("empty identifier")
    if len(value) > 256:
        raise InvalidIdentifier("identifier longer than 256 characters")
    if kind == IdentityKind.PHONE:
        return normalise_phone(value)
    if kind == IdentityKind.EMAIL:
        if "@" not in value:
            raise InvalidIdentifier("not an e-mail address")
        return value.lower()
    return value


def mask_identifier(kind: IdentityKind, value: str) -> str:
    """What a person may see: ``138****0000``, ``z***@example.com``, ``2088****1234``."""
    if kind == IdentityKind.PHONE:
        digits = value[3:] if value.startswith("+86") else value.lstrip("+")
        if len(digits) >= 7:
            return f"{digits[:3]}****{digits[-4:]}"
        return "*" * len(digits)
    if kind == IdentityKind.EMAIL and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if len(value) <= 4:
        return "*" * len(value)
    if len(value) <= 8:
        return f"{value[:1]}***{value[-1:]}"
    return f"{value[:4]}****{value[-4:]}"


class IdentifierVault:
    """Encrypt, decrypt and blind-index identifiers with keys derived from the instance secret."""

    def __init__(self, secret_key: str) -> None:
        self._aead = AESGCM(derive_key(secret_key, "identifiers:encryption"))
        self._index_key = derive_key(secret_key, "identifiers:blind-index")

    def blind_index(self, merchant_id: str, kind: IdentityKind, normalised: str) -> str:
        """Hex HMAC-SHA256 of ``merchant|kind|value``: equality lookups without the plaintext."""
        message = f"{merchant_id}|{kind.value}|{normalised}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

    def encrypt(self, merchant_id: str, kind: IdentityKind, normalised: str) -> str:
        """URL-safe text ``v1 || nonce || ciphertext``; bound to merchant and kind (AEAD data)."""
        nonce = os.urandom(_NONCE_BYTES)
        associated = f"{merchant_id}|{kind.value}".encode()
        sealed = self._aead.encrypt(nonce, normalised.encode(), associated)
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()

    def seal(self, merchant_id: str, purpose: str, plaintext: str) -> str:
        """Encrypt free text that may hold identifiers (a rejected import row), bound to
        merchant and ``purpose``; same key as identifiers, different associated data."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), f"{merchant_id}|sealed:{purpose}".encode())
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()

    def unseal(self, merchant_id: str, purpose: str, token: str) -> str:
        """The text back; raises ``ValueError`` if the token was altered or moved."""
        raw = base64.urlsafe_b64decode(token.encode())
        if raw[:1] != _VERSION:
            raise ValueError("unknown encryption version")
        nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, f"{merchant_id}|sealed:{purpose}".encode())
        except InvalidTag:
            raise ValueError("text does not decrypt under this secret, merchant and purpose") from None
        return plain.decode()

    def decrypt(self, merchant_id: str, kind: IdentityKind, token: str) -> str:
        """The identifier back; raises ``ValueError`` if the token was altered or moved."""
        raw = base64.urlsafe_b64decode(token.encode())
        if raw[:1] != _VERSION:
            raise ValueError("unknown identifier encryption version")
        nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, f"{merchant_id}|{kind.value}".encode())
        except InvalidTag:
            raise ValueError("identifier does not decrypt under this secret, merchant and kind") from None
        return plain.decode()
