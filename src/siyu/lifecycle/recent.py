"""A member's recent events in brief: what its stage row keeps so that classifying it reads no
events (see :class:`siyu.lifecycle.models.MemberStage`).

Events are counted per type and quarter hour (``slot`` = Unix seconds // 900), with the total
amount: the stage rules only ask how many events of a kind fell on a local day and what they
added up to, and every time zone in use today is a whole number of quarter hours from UTC, so a
slot never straddles a local midnight. A heavy member's brief is bounded by the quarter hours it
was active in the look-back window, not by its number of events.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from siyu.lifecycle.rules import Happening

SLOT_SECONDS = 900


@functools.lru_cache(maxsize=1 << 16)
def _local_day(slot: int, zone: ZoneInfo) -> date:
    """The local day a quarter hour falls on (cached: a batch's members share their recent days)."""
    return datetime.fromtimestamp(slot * SLOT_SECONDS, zone).date()


class Recent:
    """``(type, slot) -> [count, amount_fen]``; stored as ``[[type, slot, count, amount], …]``."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], list[int]] = {}

    @classmethod
    def load(cls, stored: str | None) -> Recent:
        """From :meth:`dumps` (``None``: empty)."""
        recent = cls()
        for type_, slot, count, amount in json.loads(stored) if stored else ():
            recent.entries[(type_, slot)] = [count, amount]
        return recent

    @classmethod
    def of(cls, events: Iterable[tuple[str, datetime, int | None]]) -> Recent:
        recent = cls()
        for type_, at, amount in events:
            recent.add(type_, at, amount)
        return recent

    def add(self, type_: str, at: datetime, amount_fen: int | None) -> None:
        key = (type_, int(at.timestamp()) // SLOT_SECONDS)
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = [1, amount_fen or 0]
        else:
            entry[0] += 1
            entry[1] += amount_fen or 0

    def prune(self, before: datetime) -> None:
        """Forget the quarter hours that ended by ``before``."""
        limit = before.timestamp()
        for key in [k for k in self.entries if (k[1] + 1) * SLOT_SECONDS <= limit]:
            del self.entries[key]

    def happenings(self, zone: ZoneInfo) -> list[Happening]:
        return [
            Happening(_local_day(slot, zone), type_, amount, count)
            for (type_, slot), (count, amount) in self.entries.items()
        ]

    def dump(self) -> list[list[Any]]:
        return [[t, slot, count, amount] for (t, slot), (count, amount) in sorted(self.entries.items())]

    def dumps(self) -> str:
        """Compact JSON text, as stored (text, not JSONB: PostgreSQL parsing a JSONB value on
        every write cost ~50 µs per member on the ingestion path)."""
        return json.dumps(self.dump(), ensure_ascii=False, separators=(",", ":"))
