"""The stage rules: which stage a member is in on a local day, and when that changes by itself.

Pure functions over a member's recent history — no database, no clock — so the listener, the
daily sweep and the tests all classify the same way. Windows are whole days of the merchant's
time zone: "in the last 30 days" on day ``D`` means local days ``D-29 … D``.

Stages, checked in this order (each rule configurable per merchant, :class:`StageRules`):

1. **lost** (流失) — no activity in the last ``lost_after_days`` days;
2. **dormant** (沉睡) — no activity in the last ``dormant_after_days`` days;
3. **super** (超级用户) — ``super_orders``+ orders and ``super_net_spend_fen``+ spent net of
   refunds, both within the last ``super_window_days``;
4. **repeat** (复购) — ``repeat_orders``+ orders ever;
5. **first-order** (首购) — one order or more, fewer than ``repeat_orders``;
6. **high-potential** (高潜) — no order yet, ``high_potential_engagements``+ engagement events
   (visit, scan, favourite…) in the last ``high_potential_window_days``;
7. **stranger** (陌生/新客) — known to us, none of the above.

"Activity" is any event except the ``inactive_types`` (a refund or an unsubscribe is not the
member coming back); a member's first event counts as activity, so inactivity is measured from
when the member was first seen. Order counts are paid orders (a refund does not un-count an order;
it lowers the net spend).
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from itertools import accumulate
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Stage(StrEnum):
    """A lifecycle stage (生命周期阶段)."""

    STRANGER = "stranger"
    HIGH_POTENTIAL = "high_potential"
    FIRST_ORDER = "first_order"
    REPEAT = "repeat"
    SUPER = "super"
    DORMANT = "dormant"
    LOST = "lost"


STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)

DEFAULT_ENGAGEMENT_TYPES = (
    "visit",
    "scan",
    "search_direct",
    "favorite",
    "follow",
    "subscribe",
    "member_joined",
    "share",
    "checkin",
    "message_clicked",
    "payment_page_view",
)
DEFAULT_INACTIVE_TYPES = ("order_refunded", "unsubscribe", "unfollow", "unfavorite")
MAX_WINDOW_DAYS = 3 * 366


class StageRules(BaseModel):
    """A merchant's stage rules; the defaults suit a café or a retail chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_potential_engagements: int = Field(3, ge=1, le=1000, description="engagement events needed")
    high_potential_window_days: int = Field(30, ge=1, le=MAX_WINDOW_DAYS)
    engagement_types: tuple[str, ...] = Field(
        DEFAULT_ENGAGEMENT_TYPES, min_length=1, description="event types that count as engagement"
    )
    repeat_orders: int = Field(2, ge=2, le=1000, description="orders (ever) that make a repeat customer")
    super_orders: int = Field(6, ge=2, le=10_000, description="orders within the super window")
    super_net_spend_fen: int = Field(60_000, ge=0, description="net spend (fen) within the super window")
    super_window_days: int = Field(180, ge=1, le=MAX_WINDOW_DAYS)
    dormant_after_days: int = Field(60, ge=1, le=MAX_WINDOW_DAYS, description="days without activity")
    lost_after_days: int = Field(180, ge=2, le=MAX_WINDOW_DAYS, description="days without activity")
    inactive_types: tuple[str, ...] = Field(
        DEFAULT_INACTIVE_TYPES, description="event types that do not count as activity"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.lost_after_days <= self.dormant_after_days:
            raise ValueError("lost_after_days must be greater than dormant_after_days")
        if self.super_orders < self.repeat_orders:
            raise ValueError("super_orders must be at least repeat_orders")
        return self

    @property
    def lookback_days(self) -> int:
        """How many days of history decide the stage (older events only count through totals)."""
        return max(self.high_potential_window_days, self.super_window_days, self.lost_after_days)


@functools.lru_cache(maxsize=64)
def _type_sets(
    engagement: tuple[str, ...], inactive: tuple[str, ...]
) -> tuple[frozenset[str], frozenset[str]]:
    """The rules' type lists as sets, made once per distinct rules rather than once per member."""
    return frozenset(engagement), frozenset(inactive)


@dataclass(frozen=True, slots=True)
class Happening:
    """``count`` events of one type on one local day, as the rules see them; ``amount_fen`` is
    their total (paid or refunded orders)."""

    day: date
    type: str
    amount_fen: int | None = None
    count: int = 1


@dataclass(slots=True)
class History:
    """A member's events from ``since`` on (sorted per kind for window counts by bisection),
    plus the totals that reach further back.

    ``orders_total`` counts every paid order the member has, including any after the day being
    classified; ``first_seen`` is the local day of the member's first event (``None``: none yet).
    """

    rules: StageRules
    first_seen: date | None
    orders_total: int
    active_days: list[date] = field(default_factory=list)
    engagement_days: list[date] = field(default_factory=list)
    order_days: list[date] = field(default_factory=list)
    money_days: list[date] = field(default_factory=list)
    money_prefix: list[int] = field(default_factory=list)
    """Running sum of paid minus refunded fen over ``money_days``."""

    @classmethod
    def build(
        cls, rules: StageRules, happenings: Iterable[Happening], *, first_seen: date | None, orders_total: int
    ) -> History:
        return cls.of_counts(
            rules,
            ((h.day, h.type, h.amount_fen, h.count) for h in happenings),
            first_seen=first_seen,
            orders_total=orders_total,
        )

    @classmethod
    def of_counts(
        cls,
        rules: StageRules,
        counts: Iterable[tuple[date, str, int | None, int]],
        *,
        first_seen: date | None,
        orders_total: int,
    ) -> History:
        """:meth:`build` from ``(day, type, amount_fen, count)`` tuples, the fields of a
        :class:`Happening`: what the lifecycle listener classifies every touched member from (a
        ``Happening`` per brief entry cost more than the classification itself)."""
        engagement, inactive = _type_sets(rules.engagement_types, rules.inactive_types)
        active: list[date] = []
        engaged: list[date] = []
        orders: list[date] = []
        money: list[tuple[date, int]] = []
        for day, type_, amount_fen, count in counts:
            if type_ not in inactive:
                if count == 1:
                    active.append(day)
                else:
                    active.extend([day] * count)
            if type_ in engagement:
                if count == 1:
                    engaged.append(day)
                else:
                    engaged.extend([day] * count)
            if type_ == "order_paid":
                orders.extend([day] * count)
                money.append((day, amount_fen or 0))
            elif type_ == "order_refunded":
                money.append((day, -(amount_fen or 0)))
        money.sort()
        return cls(
            rules,
            first_seen,
            orders_total,
            sorted(active),
            sorted(engaged),
            sorted(orders),
            [d for d, _ in money],
            list(accumulate(a for _, a in money)),
        )

    def _count(self, days: list[date], first: date, last: date) -> int:
        return bisect_right(days, last) - bisect_left(days, first)

    def _money(self, first: date, last: date) -> int:
        hi, lo = bisect_right(self.money_days, last), bisect_left(self.money_days, first)
        if hi <= lo:
            return 0
        return self.money_prefix[hi - 1] - (self.money_prefix[lo - 1] if lo else 0)

    def _last_active(self, day: date) -> date | None:
        at = bisect_right(self.active_days, day)
        last = self.active_days[at - 1] if at else None
        if (
            self.first_seen is not None
            and self.first_seen <= day
            and (last is None or self.first_seen > last)
        ):
            return self.first_seen
        return last

    def stage_on(self, day: date) -> Stage | None:
        """The stage at the end of local ``day``; ``None`` if the member was not seen by then."""
        r = self.rules
        if self.first_seen is None:
            return Stage.STRANGER  # known (created) but no event at all yet
        if self.first_seen > day:
            return None
        last = self._last_active(day)
        if last is None or (day - last).days >= r.lost_after_days:
            return Stage.LOST
        if (day - last).days >= r.dormant_after_days:
            return Stage.DORMANT
        orders = self.orders_total - self._count(self.order_days, day + timedelta(days=1), date.max)
        if orders >= 1:
            window = day - timedelta(days=r.super_window_days - 1)
            if (
                orders >= r.super_orders
                and self._count(self.order_days, window, day) >= r.super_orders
                and self._money(window, day) >= r.super_net_spend_fen
            ):
                return Stage.SUPER
            return Stage.REPEAT if orders >= r.repeat_orders else Stage.FIRST_ORDER
        window = day - timedelta(days=r.high_potential_window_days - 1)
        if self._count(self.engagement_days, window, day) >= r.high_potential_engagements:
            return Stage.HIGH_POTENTIAL
        return Stage.STRANGER

    def next_change(self, day: date) -> date | None:
        """The first day after ``day`` on which the stage differs with no new event arriving
        (windows let old events go; events already dated later come in), or ``None``."""
        current = self.stage_on(day)
        r = self.rules
        candidates: set[date] = set()
        last = self._last_active(day)
        for active in [last, self.first_seen, *self.active_days[bisect_right(self.active_days, day) :]]:
            if active is not None:  # the last activity so far, or one dated later, growing old
                candidates.add(active + timedelta(days=r.dormant_after_days))
                candidates.add(active + timedelta(days=r.lost_after_days))
        # Windows letting events go only matter to the rule that counts them: engagements to
        # high-potential, which needs no order by then (orders never go away); money to super,
        # which needs ``super_orders`` orders in all. Skipping the rest keeps the day the same
        # (the rules' property test compares with a day-by-day scan) and the classification of
        # a busy member cheap.
        orders_by_day = self.orders_total - self._count(self.order_days, day + timedelta(days=1), date.max)
        if orders_by_day == 0:
            for d in self.engagement_days:
                candidates.add(d + timedelta(days=r.high_potential_window_days))
        if self.orders_total >= r.super_orders:
            for d in self.money_days:
                candidates.add(d + timedelta(days=r.super_window_days))
        for days in (self.active_days, self.engagement_days, self.money_days):
            candidates.update(days[bisect_right(days, day) :])  # dated after ``day``: they arrive
        if self.first_seen is not None and self.first_seen > day:
            candidates.add(self.first_seen)
        for candidate in sorted(c for c in candidates if c > day):
            if self.stage_on(candidate) != current:
                return candidate
        return None
