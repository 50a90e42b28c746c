"""A member's recent events in brief: what its stage row keeps so that classifying it reads no
events (see :class:`siyu.lifecycle.models.MemberStage`).

Events are counted per type and quarter hour (``slot`` = Unix seconds // 900), with the total
amount: the stage rules only ask how many events of a kind fell on a local day and what they
added up to, and every time zone in use today is a whole number of quarter hours from UTC, so a
slot never straddles a local midnight. A heavy member's brief is bounded by the quarter hours it
was active in the look-back window, not by its number of events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from siyu.kit.bulk import COMPACT_JSON
from siyu.lifecycle.rules import Happening

SLOT_SECONDS = 900


def _local_day(slot: int, zone: ZoneInfo) -> date:
    """The local day a quarter hour falls on (cached by :func:`_days_in`: a batch's members share
    their recent days)."""
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
        return [Happening(*c) for c in self.counts(zone)]

    def counts(self, zone: ZoneInfo) -> list[tuple[date, str, int, int]]:
        """The :meth:`happenings` as ``(day, type, amount_fen, count)`` tuples, for
        :meth:`siyu.lifecycle.rules.History.of_counts` (no object per entry)."""
        day_of = _days_in(zone)
        counts: list[tuple[date, str, int, int]] = []
        for (type_, slot), (count, amount) in self.entries.items():
            day = day_of.get(slot)
            if day is None:
                day = day_of[slot] = _local_day(slot, zone)
            counts.append((day, type_, amount, count))
        return counts

    def dump(self) -> list[list[Any]]:
        return [[t, slot, count, amount] for (t, slot), (count, amount) in sorted(self.entries.items())]

    def dumps(self) -> str:
        """Compact JSON text, as stored (text, not JSONB: PostgreSQL parsing a JSONB value on
        every write cost ~50 µs per member on the ingestion path). ``kit.bulk.COMPACT_JSON``:
        ``json.dumps`` with these options builds a new encoder per call, a fifth of the cost here."""
        return COMPACT_JSON.encode(self.dump())


_DAYS: dict[ZoneInfo, dict[int, date]] = {}


def _days_in(zone: ZoneInfo) -> dict[int, date]:
    """Quarter hour → local day in ``zone``, filled as met (a plain dict: this runs per brief
    entry of every member a batch touches). Bounded: emptied when it grows past a year's slots."""
    days = _DAYS.get(zone)
    if days is None or len(days) > 366 * 96:
        days = _DAYS[zone] = {}
    return days
