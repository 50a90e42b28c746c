"""The pure rules of tiers: assessment periods in the merchant's time zone, qualification, and
the effective tier. No database here; :mod:`siyu.tiers.service` feeds these from rows.

The rule in one sentence: a member's **earned** tier is the best tier whose threshold either the
value of the *current* period or that of the *previous* period reaches. So a tier reached during
a period holds at once (upgrade at once), for the rest of that period and all of the next one;
it can only go down when a period ends (downgrade only at period end), and then only to what the
period just ended earned. For ``spend_365`` the two values are the rolling 365-day spend now and
at the start of the current period. The **effective** tier is the best of the earned tier, a paid
tier until its end, and the floors of the member's joint-membership links.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIOD_MONTHS = (1, 2, 3, 4, 6, 12)
"""Assessment periods that tile the calendar year (a period always starts on a local 1st)."""

ROLLING_DAYS = 365


@dataclass(frozen=True, slots=True)
class Rung:
    """One tier of the ladder, as the rules need it."""

    id: str
    name: str
    rank: int
    threshold: int
    multiplier_bp: int = 10_000


class Ladder:
    """A merchant's tiers, ordered by rank. Empty: the merchant has no tiers."""

    def __init__(self, rungs: Iterable[Rung]) -> None:
        self.rungs: tuple[Rung, ...] = tuple(sorted(rungs, key=lambda r: r.rank))
        self._by_id = {r.id: r for r in self.rungs}

    def __bool__(self) -> bool:
        return bool(self.rungs)

    @property
    def entry(self) -> Rung | None:
        """The lowest tier: every member holds at least this one."""
        return self.rungs[0] if self.rungs else None

    def get(self, tier_id: str | None) -> Rung | None:
        return self._by_id.get(tier_id) if tier_id else None

    def qualified(self, value: int) -> Rung | None:
        """The best tier whose threshold ``value`` reaches (the entry tier at the least)."""
        best = self.entry
        for rung in self.rungs:
            if value >= rung.threshold:
                best = rung
        return best

    def best(self, tier_ids: Iterable[str | None]) -> Rung | None:
        """The highest-ranked of ``tier_ids`` (unknown and ``None`` ignored), else the entry tier."""
        found = [r for r in (self.get(t) for t in tier_ids) if r is not None]
        return max(found, key=lambda r: r.rank) if found else self.entry

    def next_above(self, rung: Rung | None) -> Rung | None:
        """The next tier up, or ``None`` at the top."""
        rank = rung.rank if rung else -1
        return next((r for r in self.rungs if r.rank > rank), None)


@dataclass(frozen=True, slots=True)
class Periods:
    """The previous, current and next assessment period starts (UTC instants) around a moment."""

    previous: datetime
    current: datetime
    next: datetime
    label: str
    """``YYYY-MM`` (local) of the current period's first month."""


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def periods_at(now: datetime, zone: ZoneInfo, months: int) -> Periods:
    """The assessment periods around ``now``: they start at local midnight of the 1st of every
    ``months``-th month counted from January (12: calendar years, 3: quarters)."""
    if months not in PERIOD_MONTHS:
        raise ValueError(f"period_months must be one of {PERIOD_MONTHS}")
    local = now.astimezone(zone)
    first = date(local.year, (local.month - 1) // months * months + 1, 1)
    return Periods(
        previous=_local_midnight(_add_months(first, -months), zone),
        current=_local_midnight(first, zone),
        next=_local_midnight(_add_months(first, months), zone),
        label=first.strftime("%Y-%m"),
    )


def rolling_start(moment: datetime) -> datetime:
    """The start of the rolling 365-day window that ends at ``moment``."""
    return moment - timedelta(days=ROLLING_DAYS)


def earned(ladder: Ladder, previous_value: int, current_value: int) -> Rung | None:
    """The earned tier from the two qualifying values (see the module docstring)."""
    return ladder.best(r.id for r in (ladder.qualified(previous_value), ladder.qualified(current_value)) if r)


def growth_of(amount_fen: int, growth_per_yuan: int) -> int:
    """Growth value for an amount: ``growth_per_yuan`` per 100 fen, rounded down."""
    return amount_fen * growth_per_yuan // 100


def refund_growth(
    paid_fen: int, refunded_before: int, refund_fen: int, growth_per_yuan: int
) -> tuple[int, int]:
    """(growth to take back, fen counted) for a refund of an order paid ``paid_fen``.

    Cumulative, like points: after all refunds the order keeps the growth of what stayed paid,
    rounded down once — two half refunds take back exactly what one full refund would. Refunds
    beyond the paid amount take nothing more."""
    counted = max(0, min(refund_fen, paid_fen - refunded_before))
    kept_before = growth_of(paid_fen - refunded_before, growth_per_yuan)
    kept_after = growth_of(paid_fen - refunded_before - counted, growth_per_yuan)
    return kept_before - kept_after, counted


def month_days_for(day: date) -> Sequence[str]:
    """The ``MM-DD`` birthdays celebrated on ``day``: 29 February is celebrated on 28 February
    in years without one."""
    days = [day.strftime("%m-%d")]
    if day.month == 2 and day.day == 28 and not _is_leap(day.year):
        days.append("02-29")
    return days


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
