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
    MEMBER = "mbr"
    MERGE = "mrg"
    IMPORT = "imp"
    CONSENT = "cns"
    REACH_CHANGE = "rch"
    COUPON_TEMPLATE = "cpt"
    COUPON = "cpn"
    REDEMPTION = "rdm"
    POINTS_RULE = "ptr"
    POINTS_ENTRY = "pte"
    POINTS_LOT = "ptl"
    MALL_ITEM = "mli"
    MALL_EXCHANGE = "mlx"
    VOUCHER = "gvc"
    TIER = "tir"
    TIER_CHANGE = "tch"
    TIER_PROGRESS = "tpg"
    CAMPAIGN = "cmp"
    CAMPAIGN_TREATMENT = "ctr"
    OUTBOX_ITEM = "obx"
    OUTBOX_ATTEMPT = "oba"
    CHANNEL_DELIVERY = "dlv"
    SEGMENT = "seg"
    SEGMENT_SNAPSHOT = "sns"
    DECISION = "dec"
    MESSAGE_TEMPLATE = "tpl"
    MESSAGE = "msg"
    GUIDE_TASK = "gdt"
    MODEL_FIT = "fit"


_PAIRS = [a + b for a in CROCKFORD for b in CROCKFORD]
"""Every 10-bit value as two characters: encoding takes half as many steps as character by character."""


def _encode(value: int, length: int) -> str:
    """``value`` as ``length`` Crockford characters, most significant first."""
    pairs, odd = divmod(length, 2)
    chars = [_PAIRS[(value >> (10 * i)) & 1023] for i in range(pairs - 1, -1, -1)]
    text = "".join(chars)
    return CROCKFORD[(value >> (10 * pairs)) & 31] + text if odd else text


class IdGenerator:
    """Monotonic within one process, even inside one millisecond or if the clock steps back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_rand = 0

    def new(self, kind: IdKind, *, now_ms: int | None = None) -> str:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if ms <= self._last_ms:
                ms = self._last_ms
                rand = self._last_rand + 1
            else:
                rand = secrets.randbits(79)  # top bit left clear so +1 never overflows into the time
            self._last_ms, self._last_rand = ms, rand
        return f"{kind.value}_{_encode((ms << 80) | rand, _BODY_LENGTH)}"


_default = IdGenerator()


def new_id(kind: IdKind) -> str:
    """A new id of ``kind`` from the process-wide generator."""
    return _default.new(kind)


def looks_like_id(value: str, kind: IdKind) -> bool:
    """Cheap shape check used to reject garbage before it reaches a query."""
    prefix = f"{kind.value}_"
    body = value[len(prefix) :]
    return value.startswith(prefix) and len(body) == _BODY_LENGTH and all(c in CROCKFORD for c in body)
