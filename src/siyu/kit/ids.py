"""Opaque, prefixed, time-ordered identifiers (``mch_01jd…``).

The body is a ULID-style value: 48 bits of milliseconds since the epoch followed by 80 random
bits, written in lower-case Crockford base32 (26 characters). Sorting ids sorts by creation
time, which is what cursor pagination relies on; the random part makes them unguessable.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _encode_80(value: int) -> str:
    """The low 80 bits of ``value`` as 16 Crockford characters (:func:`_encode` unrolled: an id's
    random part, encoded for every new id)."""
    p = _PAIRS
    return (
        p[(value >> 70) & 1023]
        + p[(value >> 60) & 1023]
        + p[(value >> 50) & 1023]
        + p[(value >> 40) & 1023]
        + p[(value >> 30) & 1023]
        + p[(value >> 20) & 1023]
        + p[(value >> 10) & 1023]
        + p[value & 1023]
    )


_PREFIXES = {kind: f"{kind.value}_" for kind in IdKind}


class IdGenerator:
    """Monotonic within one process, even inside one millisecond or if the clock steps back.

    Ingestion makes ids by the thousand (members, points entries and lots, tier progress), so a
    new id costs what it must and no more: within one millisecond the random part is the last one
    plus one (no system randomness read), and the time part's text is kept while the millisecond
    lasts.

    ``randbits`` is the source of the random part (the system's by default). A generator given a
    seeded source and a fixed ``now_ms`` on every call makes the same ids every run, which is
    what :func:`replayable` uses."""

    def __init__(self, *, randbits: Callable[[int], int] = secrets.randbits) -> None:
        self._randbits = randbits
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_rand = 0
        self._last_ms_text = ""

    def new(self, kind: IdKind, *, now_ms: int | None = None) -> str:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if ms <= self._last_ms:
                ms = self._last_ms
                rand = self._last_rand + 1
                ms_text = self._last_ms_text
            else:
                rand = self._randbits(79)  # top bit left clear so +1 never overflows into the time
                # The body's first 10 characters carry bits 129…80: two zero bits, then the time.
                ms_text = self._last_ms_text = _encode(ms, _BODY_LENGTH - 16)
            self._last_ms, self._last_rand = ms, rand
        return _PREFIXES[kind] + ms_text + _encode_80(rand)


_default = IdGenerator()


def new_id(kind: IdKind) -> str:
    """A new id of ``kind`` from the process-wide generator."""
    return _default.new(kind)


class _Replaying(IdGenerator):
    """Ids from a seeded source at one fixed instant: the n-th id of a run is the same every run."""

    def __init__(self, seed: int, at_ms: int) -> None:
        super().__init__(randbits=random.Random(seed).getrandbits)
        self._at_ms = at_ms

    def new(self, kind: IdKind, *, now_ms: int | None = None) -> str:
        return super().new(kind, now_ms=self._at_ms)


@contextmanager
def replayable(seed: int, *, at_ms: int = 1_750_000_000_000) -> Iterator[None]:
    """Within the block, :func:`new_id` makes the same sequence of ids on every run of the same
    code (same seed, same calls in the same order).

    For simulations and statistical tests: campaign groups are a hash of the campaign's and the
    member's ids (``siyu.campaigns.assignment``), so with system randomness a seeded simulation
    still splits its members differently each run. Never for production ids: they are guessable,
    and all carry the instant ``at_ms``. Not for threads that make ids concurrently (their order,
    and so their ids, would vary)."""
    global _default
    saved, _default = _default, _Replaying(seed, at_ms)
    try:
        yield
    finally:
        _default = saved


def looks_like_id(value: str, kind: IdKind) -> bool:
    """Cheap shape check used to reject garbage before it reaches a query."""
    prefix = f"{kind.value}_"
    body = value[len(prefix) :]
    return value.startswith(prefix) and len(body) == _BODY_LENGTH and all(c in CROCKFORD for c in body)
