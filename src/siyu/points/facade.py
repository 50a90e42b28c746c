"""What other modules may use of points (积分): batch earning and reversal, balances, history.

* :func:`earn_for_orders`, :func:`reverse_for_refunds`, :func:`earn_for_actions` — called by the
  loyalty glue once per ingested batch, inside the events' transaction; idempotent by order id,
  refund event id and action event id.
* :func:`balance_of`, :func:`history_of` — the member 360° view.
* :func:`expire_due`, :func:`liability` — the expiry job and the liability report (CLI, API).

The merge, export and erasure listeners are registered by ``siyu.points.service`` and
``siyu.points.rights`` (imported below, so importing the facade wires them too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:  # the schemas import this module's views
    from siyu.points.schemas import ItemOut, RuleOut

from siyu.kit import config_cache
from siyu.kit.orders import OrderFact
from siyu.kit.pagination import PageRequest
from siyu.points import mall, service
from siyu.points import repository as repo
from siyu.points.models import PointsEntry, PointsLot
from siyu.tenancy import facade as tenancy


@dataclass(frozen=True, slots=True)
class ActionFact:
    """An action event of a member that may earn points by the merchant's action rules."""

    member_id: str
    event_id: str
    type: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class LotView:
    id: str
    points: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ExpiringView:
    """Points that expire at one instant (the sum of the lots expiring then)."""

    expires_at: datetime | None
    points: int


@dataclass(frozen=True, slots=True)
class PointsBalanceView:
    member_id: str
    balance: int
    expiring: tuple[ExpiringView, ...]
    """The balance by expiry, soonest first (``expires_at`` null: never expires)."""
    next_expiry: ExpiringView | None


@dataclass(frozen=True, slots=True)
class PointsEntryView:
    id: str
    member_id: str
    kind: str
    points: int
    balance_after: int
    shortfall: int
    reason: str
    source: str
    order_id: str | None
    at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class LiabilityMonth:
    month: str | None
    """``YYYY-MM`` in the merchant's time zone; ``None`` for points that never expire."""
    points: int


@dataclass(frozen=True, slots=True)
class LiabilityView:
    """Outstanding points (积分负债) by expiry month, the total, debts and recorded shortfall."""

    total: int
    members: int
    by_expiry_month: tuple[LiabilityMonth, ...]
    negative_balances: int
    """The sum of negative balances (refund reversals the merchant let go below zero)."""
    shortfall: int
    """Points refund reversals could not take back (the balance was too low), in total."""
    timezone: str
    as_of: datetime


def entry_view(e: PointsEntry) -> PointsEntryView:
    return PointsEntryView(
        id=e.id,
        member_id=e.member_id,
        kind=e.kind,
        points=e.points,
        balance_after=e.balance_after,
        shortfall=e.shortfall,
        reason=e.reason,
        source=e.source,
        order_id=e.order_id,
        at=e.at,
        recorded_at=e.recorded_at,
    )


def lot_view(lot: PointsLot) -> LotView:
    return LotView(lot.id, lot.points, lot.remaining, lot.earned_at, lot.expires_at)


def earn_for_orders(
    session: Session,
    merchant_id: str,
    orders: Sequence[OrderFact],
    *,
    multipliers_bp: Mapping[str, int],
    now: datetime,
) -> None:
    """Points for PAID facts (× ``multipliers_bp[member]``, 10 000 = 1×); idempotent by order id."""
    service.earn_for_orders(session, merchant_id, orders, multipliers_bp=multipliers_bp, now=now)


def reverse_for_refunds(
    session: Session, merchant_id: str, refunds: Sequence[OrderFact], *, now: datetime
) -> None:
    """Take back points of REFUNDED facts, proportionally; idempotent by the refund's event id."""
    service.reverse_for_refunds(session, merchant_id, refunds, now=now)


def rewarded_actions(session: Session, merchant_id: str, actions: Sequence[ActionFact]) -> list[ActionFact]:
    """The actions an active earn rule of the merchant rewards (the others can earn nothing):
    lets the caller skip work per earning member — the tier multipliers — for a batch of
    page views and visits when no rule rewards them."""
    if not actions:
        return []
    rewarded = config_cache.cached(
        session,
        ("rewarded_event_types", merchant_id),
        lambda: frozenset(service.active_rules(session, merchant_id)),
    )
    return [action for action in actions if action.type in rewarded]


def earn_for_actions(
    session: Session,
    merchant_id: str,
    actions: Sequence[ActionFact],
    *,
    multipliers_bp: Mapping[str, int],
    now: datetime,
) -> None:
    """Points for actions by the merchant's action rules (others are ignored); idempotent by event id."""
    service.earn_for_actions(session, merchant_id, actions, multipliers_bp=multipliers_bp, now=now)


def balance_of(session: Session, merchant_id: str, member_id: str, *, now: datetime) -> PointsBalanceView:
    lots = repo.lots_of(session, merchant_id, member_id)
    by_expiry: dict[datetime | None, int] = defaultdict(int)
    for lot in lots:
        if lot.expires_at is None or lot.expires_at > now:
            by_expiry[lot.expires_at] += lot.remaining
    expiring = tuple(
        ExpiringView(at, n)
        for at, n in sorted(by_expiry.items(), key=lambda kv: (kv[0] is None, kv[0] or now))
    )
    dated = [e for e in expiring if e.expires_at is not None]
    return PointsBalanceView(
        member_id=member_id,
        balance=repo.balance_of(session, merchant_id, member_id),
        expiring=expiring,
        next_expiry=dated[0] if dated else None,
    )


def history_of(
    session: Session, merchant_id: str, member_id: str, *, limit: int = 20
) -> list[PointsEntryView]:
    """The member's latest entries, newest first."""
    return [entry_view(e) for e in repo.recent_entries(session, merchant_id, member_id, limit)]


def lots_of(session: Session, merchant_id: str, member_id: str) -> list[LotView]:
    return [lot_view(lot) for lot in repo.lots_of(session, merchant_id, member_id)]


def expire_due(session: Session, *, now: datetime, limit: int = 5000) -> int:
    """Expire lots past their expiry (every merchant); the number of lots expired (≤ ``limit``)."""
    return service.expire_due(session, now=now, limit=limit)


def liability(session: Session, merchant_id: str, *, now: datetime) -> LiabilityView:
    zone = tenancy.merchant_zone(session, merchant_id)
    months: dict[str | None, int] = defaultdict(int)
    for expires_at, points in repo.outstanding_by_expiry(session, merchant_id):
        months[expires_at.astimezone(zone).strftime("%Y-%m") if expires_at else None] += points
    positive, negative, members = repo.balance_totals(session, merchant_id)
    return LiabilityView(
        total=positive,
        members=members,
        by_expiry_month=tuple(
            LiabilityMonth(m, n)
            for m, n in sorted(months.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ),
        negative_balances=negative,
        shortfall=repo.shortfall_total(session, merchant_id),
        timezone=str(zone),
        as_of=now,
    )


def adjust(
    session: Session,
    merchant_id: str,
    member_id: str,
    *,
    points: int,
    reason: str,
    key: str,
    source: str,
    now: datetime,
) -> PointsEntryView:
    """A manual adjustment (CLI, console); a replayed key returns the first entry."""
    posted = service.adjust(
        session, merchant_id, member_id, points=points, reason=reason, key=key, source=source, now=now
    )
    return entry_view(posted.entry)


# ---------------------------------------------------------------- settings, rules and the mall (console)


def settings_of(session: Session, merchant_id: str) -> PointsSettingsView:
    """The merchant's earn rate and expiry policy."""
    found = service.settings_of(session, merchant_id)
    return PointsSettingsView(
        points_per_yuan=found.points_per_yuan,
        expiry_policy=str(found.expiry_policy),
        expiry_days=found.expiry_days,
        allow_negative=found.allow_negative,
    )


@dataclass(frozen=True, slots=True)
class PointsSettingsView:
    points_per_yuan: int
    expiry_policy: str
    expiry_days: int | None
    allow_negative: bool


def list_rules(session: Session, merchant_id: str) -> list[RuleOut]:
    """The action rules (points per event type)."""
    from siyu.points.schemas import RuleOut

    return [RuleOut.model_validate(r, from_attributes=True) for r in repo.list_rules(session, merchant_id)]


def create_rule(
    session: Session, merchant_id: str, values: Mapping[str, object], *, now: datetime
) -> RuleOut:
    """Add an action rule, validated like ``POST /points/rules`` (pydantic ``ValidationError``)."""
    from siyu.points.schemas import RuleIn, RuleOut

    body = RuleIn.model_validate(dict(values))
    return RuleOut.model_validate(
        service.create_rule(session, merchant_id, **body.model_dump(), now=now), from_attributes=True
    )


def list_items(session: Session, merchant_id: str, *, limit: int = 200) -> list[ItemOut]:
    """The points-mall items, by id."""
    from siyu.points.schemas import ItemOut

    rows = repo.list_items(session, merchant_id, PageRequest(limit=limit))
    return [ItemOut.model_validate(i, from_attributes=True) for i in rows[:limit]]


def create_item(
    session: Session, merchant_id: str, values: Mapping[str, object], *, now: datetime
) -> ItemOut:
    """Add a mall item, validated like ``POST /mall/items``."""
    from siyu.points.schemas import ItemIn, ItemOut

    body = ItemIn.model_validate(dict(values))
    return ItemOut.model_validate(
        mall.create_item(session, merchant_id, body.model_dump(), now=now), from_attributes=True
    )
