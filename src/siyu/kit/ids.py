"""Opaque, prefixed, time-ordered identifiers (``mch_01jd…``).

The body is a ULID-style value: 48 bits of milliseconds since the epoch followed by 80 random
bits, written in lower-case Crockford base32 (26 characters). Sorting ids sorts by creation
time, which is what cursor pagination relies on; the random part makes them unguessable.
"""

from __future__ import annotations

import secrets
import threading
import time
from enum import StrEnum

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_BODY_LENGTH = 26


class IdKind(StrEnum):
    """The prefix of each kind of id."""

    PROVIDER = "prv"
    MERCHANT = "mch"
    STORE = "str"
    STAFF = "stf"
    API_KEY = "key"
    GRANT = "grt"
    AUDIT = "aud"


_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: IdKind, *, now_ms: int | None = None) -> str:
    """A new id of ``kind``; monotonic within one process even inside the same millisecond."""
    global _last_ms, _last_rand
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = secrets.randbits(80)
        _last_ms, _last_rand = ms, rand
    return f"{kind.value}_{_encode((ms << 80) | (rand & ((1 << 80) - 1)), _BODY_LENGTH)}"


def looks_like_id(value: str, kind: IdKind) -> bool:
    """Cheap shape check used to reject garbage before it reaches a query."""
    prefix = f"{kind.value}_"
    body = value[len(prefix) :]
    return value.startswith(prefix) and len(body) == _BODY_LENGTH and all(c in CROCKFORD for c in body)
