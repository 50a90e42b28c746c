"""What the member models read from the state store: one SQL statement per feature set.

Both statements group the merchant's events by member in the database (no per-member Python) and
count days in the merchant's time zone with :func:`siyu.analytics.relations.local_date`, the same
day the dashboards use, on SQLite and PostgreSQL alike. Exact definitions: docs/models.md.

**Purchase history (BG/NBD, Gamma-Gamma)** as of a local day ``as_of`` (included):

* an *order* is an ``order_paid`` event on or before ``as_of``; its *net value* is its
  ``amount_fen`` minus the ``order_refunded`` amounts of the same member and ``order_id`` on or
  before ``as_of``. An order refunded in full (net ≤ 0) is not a purchase; refunds naming no known
  order are ignored;
* a *purchase day* is a local day with at least one purchase; its value is the sum of that day's
  net values (orders of one day are one transaction, as in ``lifetimes``' daily summaries);
* ``frequency`` = purchase days − 1; ``recency`` = days from the first purchase day to the last;
  ``T`` = days from the first purchase day to ``as_of``; ``monetary`` = mean value (fen) of the
  purchase days after the first (0 when there is none).

**Engagement** (high-potential) of the members with no order on or before ``as_of``, from their
events on or before ``as_of``: counts per event type, active days, days since first and last seen.
Reachability enters through the events that create it (favourite, subscribe, follow): the reach
state itself is only known *now*, so training on it at a past cutoff would read the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Date, and_, case, func, literal, select
from sqlalchemy.orm import Session

from siyu.analytics.relations import days_between, local_date
from siyu.events.models import Event
from siyu.members.models import Member, MemberStatus

ORDER_PAID = "order_paid"
ORDER_REFUNDED = "order_refunded"

ENGAGEMENT_COUNTS: dict[str, tuple[str, ...]] = {
    "visits": ("visit",),
    "scans": ("scan",),
    "search_direct": ("search_direct",),
    "favourites": ("favorite",),
    "subscriptions": ("subscribe",),
    "follows": ("follow",),
    "shares": ("share",),
    "checkins": ("checkin",),
    "messages_engaged": ("message_opened", "message_clicked"),
    "page_views": ("payment_page_view", "custom.page_view"),
    "coupons_claimed": ("coupon_claimed",),
}
"""Engagement feature → the event types it counts."""
ENGAGEMENT_FEATURES = (*ENGAGEMENT_COUNTS, "active_days", "days_since_first_seen", "days_since_last_seen")

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class PurchaseHistory:
    """Each buyer's BG/NBD summary in days, aligned arrays (``member_ids[i]`` ↔ row ``i``)."""

    as_of: date
    member_ids: tuple[str, ...]
    frequency: Floats
    recency: Floats
    T: Floats
    monetary: Floats
    """Mean value of the repeat purchase days, fen (0 for one-time buyers)."""

    def __len__(self) -> int:
        return len(self.member_ids)


@dataclass(frozen=True)
class Engagement:
    """Engagement of the members without an order, one row per member, columns ``ENGAGEMENT_FEATURES``.

    ``converted[i]`` is set when asked for a label: the member's first order fell in the
    ``label_days`` local days after ``as_of``."""

    as_of: date
    member_ids: tuple[str, ...]
    values: Floats
    converted: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.member_ids)

    def column(self, name: str) -> Floats:
        return self.values[:, ENGAGEMENT_FEATURES.index(name)]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _day(value: date) -> Any:
    return literal(value, Date)


def purchase_history(session: Session, merchant_id: str, zone: ZoneInfo, as_of: date) -> PurchaseHistory:
    """Every active member's purchase summary as of the local day ``as_of`` (one statement)."""
    dialect = _dialect(session)
    e = Event.__table__.c
    day = local_date(e.occurred_at, zone, dialect)
    order_id = Event.properties["order_id"].as_string()
    mine = and_(e.merchant_id == merchant_id, day <= _day(as_of))
    orders = (
        select(e.member_id, day.label("day"), order_id.label("order_id"), e.amount_fen)
        .where(mine, e.type == ORDER_PAID)
        .subquery("orders")
    )
    refunds = (
        select(
            e.member_id,
            order_id.label("order_id"),
            func.sum(func.coalesce(e.amount_fen, 0)).label("refunded"),
        )
        .where(mine, e.type == ORDER_REFUNDED)
        .group_by(e.member_id, order_id)
        .subquery("refunds")
    )
    net = func.coalesce(orders.c.amount_fen, 0) - func.coalesce(refunds.c.refunded, 0)
    days = (
        select(orders.c.member_id, orders.c.day, func.sum(net).label("value"))
        .select_from(
            orders.outerjoin(
                refunds,
                and_(refunds.c.member_id == orders.c.member_id, refunds.c.order_id == orders.c.order_id),
            )
        )
        .where(net > 0)
        .group_by(orders.c.member_id, orders.c.day)
        .subquery("days")
    )
    ranked = select(
        days.c.member_id,
        days.c.day,
        days.c.value,
        func.min(days.c.day).over(partition_by=days.c.member_id).label("first_day"),
    ).subquery("ranked")
    m = Member.__table__.c
    statement = (
        select(
            ranked.c.member_id,
            (func.count() - 1).label("frequency"),
            days_between(func.min(ranked.c.day), func.max(ranked.c.day)).label("recency"),
            days_between(func.min(ranked.c.day), _day(as_of)).label("T"),
            func.sum(case((ranked.c.day != ranked.c.first_day, ranked.c.value), else_=0)).label("repeat"),
        )
        .join(Member.__table__, and_(m.merchant_id == merchant_id, m.id == ranked.c.member_id))
        .where(m.status == MemberStatus.ACTIVE)
        .group_by(ranked.c.member_id)
        .order_by(ranked.c.member_id)
    )
    rows = session.execute(statement).all()
    frequency = np.array([r.frequency for r in rows], dtype=np.float64)
    repeat = np.array([r.repeat for r in rows], dtype=np.float64)
    monetary = np.divide(repeat, frequency, out=np.zeros_like(repeat), where=frequency > 0)
    return PurchaseHistory(
        as_of=as_of,
        member_ids=tuple(r.member_id for r in rows),
        frequency=frequency,
        recency=np.array([r.recency for r in rows], dtype=np.float64),
        T=np.array([r.T for r in rows], dtype=np.float64),
        monetary=monetary,
    )


def engagement(
    session: Session, merchant_id: str, zone: ZoneInfo, as_of: date, *, label_days: int | None = None
) -> Engagement:
    """The engagement of every active member seen on or before ``as_of`` with no order by then
    (one statement). With ``label_days``, also whether their first order came in the next
    ``label_days`` local days (the training label of the high-potential model)."""
    dialect = _dialect(session)
    e = Event.__table__.c
    day = local_date(e.occurred_at, zone, dialect)
    before = day <= _day(as_of)
    end = as_of + timedelta(days=label_days or 0)

    def count(types: tuple[str, ...]) -> Any:
        return func.count(case((and_(before, e.type.in_(types)), 1)))

    columns = [count(types).label(name) for name, types in ENGAGEMENT_COUNTS.items()]
    first, last = func.min(case((before, day))), func.max(case((before, day)))
    columns += [
        func.count(func.distinct(case((before, day)))).label("active_days"),
        days_between(first, _day(as_of)).label("days_since_first_seen"),
        days_between(last, _day(as_of)).label("days_since_last_seen"),
        func.count(case((and_(day > _day(as_of), e.type == ORDER_PAID), 1))).label("converted"),
    ]
    m = Member.__table__.c
    statement = (
        select(e.member_id, *columns)
        .join(Member.__table__, and_(m.merchant_id == e.merchant_id, m.id == e.member_id))
        .where(e.merchant_id == merchant_id, m.status == MemberStatus.ACTIVE, day <= _day(end))
        .group_by(e.member_id)
        .having(
            and_(
                func.count(case((before, 1))) > 0,
                func.count(case((and_(before, e.type == ORDER_PAID), 1))) == 0,
            )
        )
        .order_by(e.member_id)
    )
    rows = session.execute(statement).all()
    values = np.array(
        [[float(getattr(r, name)) for name in ENGAGEMENT_FEATURES] for r in rows], dtype=np.float64
    ).reshape(len(rows), len(ENGAGEMENT_FEATURES))
    converted = np.array([r.converted > 0 for r in rows], dtype=np.bool_) if label_days else None
    return Engagement(
        as_of=as_of, member_ids=tuple(r.member_id for r in rows), values=values, converted=converted
    )


__all__ = [
    "ENGAGEMENT_COUNTS",
    "ENGAGEMENT_FEATURES",
    "Engagement",
    "PurchaseHistory",
    "engagement",
    "purchase_history",
]
